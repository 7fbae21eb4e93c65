// Raw librdkafka: the baseline the Swift Kafka module is measured against.
#include "raw_bench.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    long delivered;
    long failed;
} delivery_counts;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque) {
    (void)rk;
    delivery_counts *counts = opaque;
    if (message->err) counts->failed++; else counts->delivered++;
}

static int set_all(rd_kafka_conf_t *conf, const char *const *pairs, char *error, size_t error_size) {
    for (; pairs[0]; pairs += 2) {
        if (rd_kafka_conf_set(conf, pairs[0], pairs[1], error, error_size) != RD_KAFKA_CONF_OK) return -1;
    }
    return 0;
}

int raw_bench_produce(const char *bootstrap, const char *topic, long count, int value_size,
                      raw_bench_result *result, char *error, size_t error_size) {
    const char *const settings[] = {
        "bootstrap.servers", bootstrap, "client.id", "raw-bench",
        "enable.idempotence", "true", "acks", "all", "linger.ms", "5",
        "batch.size", "1048576", "queue.buffering.max.messages", "100000",
        "message.timeout.ms", "300000", "compression.codec", "none", NULL};
    delivery_counts counts = {0, 0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set_all(conf, settings, error, error_size) != 0) { rd_kafka_conf_destroy(conf); return -1; }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &counts);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, error_size);
    if (!rk) { rd_kafka_conf_destroy(conf); return -1; }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    char *value = malloc((size_t)value_size);
    memset(value, 'x', (size_t)value_size);
    char key[32];

    double start = now_seconds();
    for (long i = 0; i < count; i++) {
        int key_len = snprintf(key, sizeof key, "line-%07ld", i % 100000);
        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value, (size_t)value_size,
                                key, (size_t)key_len, NULL) == -1) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                snprintf(error, error_size, "produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
                return -1;
            }
            rd_kafka_poll(rk, 1);
        }
        rd_kafka_poll(rk, 0);
    }
    while (counts.delivered + counts.failed < count) rd_kafka_poll(rk, 10);
    result->seconds = now_seconds() - start;
    result->messages = counts.delivered;
    result->failed = counts.failed;

    free(value);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return 0;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *partitions,
                         void *opaque) {
    double *assigned_at = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (*assigned_at == 0) *assigned_at = now_seconds();
        rd_kafka_assign(rk, partitions);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

int raw_bench_consume(const char *bootstrap, const char *topic, const char *group, long count,
                      long queued_kilobytes, long queued_messages, raw_bench_result *result, char *error,
                      size_t error_size) {
    char kilobytes[24];
    char messages[24];
    snprintf(kilobytes, sizeof kilobytes, "%ld", queued_kilobytes);
    snprintf(messages, sizeof messages, "%ld", queued_messages);
    const char *const settings[] = {
        "bootstrap.servers", bootstrap, "client.id", "raw-bench", "group.id", group,
        "partition.assignment.strategy", "roundrobin", "session.timeout.ms", "10000",
        "heartbeat.interval.ms", "1000", "auto.offset.reset", "earliest",
        "queued.max.messages.kbytes", kilobytes, "queued.min.messages", messages, "fetch.wait.max.ms", "100",
        "enable.auto.commit", "false", "enable.auto.offset.store", "false",
        "enable.partition.eof", "false", NULL};
    double start = 0;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set_all(conf, settings, error, error_size) != 0) { rd_kafka_conf_destroy(conf); return -1; }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, &start);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, error_size);
    if (!rk) { rd_kafka_conf_destroy(conf); return -1; }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(rk);

    rd_kafka_message_t *batch[1000];
    long read = 0;
    long bytes = 0;
    double deadline = now_seconds() + 120;
    while (read < count && now_seconds() < deadline) {
        ssize_t n = rd_kafka_consume_batch_queue(queue, 100, batch, 1000);
        for (ssize_t i = 0; i < n; i++) {
            if (!batch[i]->err) {
                read++;
                bytes += (long)batch[i]->len;
            }
            rd_kafka_message_destroy(batch[i]);
        }
    }
    result->seconds = now_seconds() - start;
    result->messages = read;
    result->failed = count - read;

    rd_kafka_queue_destroy(queue);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (read < count) {
        snprintf(error, error_size, "read %ld of %ld messages before the deadline", read, count);
        return -1;
    }
    return 0;
}

int raw_bench_pipe(const char *bootstrap, const char *in_topic, const char *out_topic, const char *group,
                   long count, raw_bench_result *result, char *error, size_t error_size) {
    const char *const consumer_settings[] = {
        "bootstrap.servers", bootstrap, "client.id", "raw-pipe", "group.id", group,
        "partition.assignment.strategy", "roundrobin", "session.timeout.ms", "10000",
        "heartbeat.interval.ms", "1000", "auto.offset.reset", "earliest",
        "queued.max.messages.kbytes", "16384", "fetch.wait.max.ms", "100",
        "enable.auto.commit", "false", "enable.auto.offset.store", "false",
        "enable.partition.eof", "false", NULL};
    const char *const producer_settings[] = {
        "bootstrap.servers", bootstrap, "client.id", "raw-pipe", "enable.idempotence", "true", "acks", "all",
        "linger.ms", "5", "batch.size", "1048576", "queue.buffering.max.messages", "100000",
        "message.timeout.ms", "300000", "compression.codec", "none", NULL};
    double start = 0;
    delivery_counts counts = {0, 0};

    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    if (set_all(pconf, producer_settings, error, error_size) != 0) { rd_kafka_conf_destroy(pconf); return -1; }
    rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
    rd_kafka_conf_set_opaque(pconf, &counts);
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, error, error_size);
    if (!producer) { rd_kafka_conf_destroy(pconf); return -1; }
    rd_kafka_topic_t *out = rd_kafka_topic_new(producer, out_topic, NULL);

    rd_kafka_conf_t *cconf = rd_kafka_conf_new();
    if (set_all(cconf, consumer_settings, error, error_size) != 0) { rd_kafka_conf_destroy(cconf); return -1; }
    rd_kafka_conf_set_rebalance_cb(cconf, on_rebalance);
    rd_kafka_conf_set_opaque(cconf, &start);
    rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, error, error_size);
    if (!consumer) { rd_kafka_conf_destroy(cconf); return -1; }
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, in_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(consumer);

    // Each message read is produced again, same key and value, to the same partition number.
    rd_kafka_message_t *batch[1000];
    long read = 0;
    double deadline = now_seconds() + 300;
    while (read < count && now_seconds() < deadline) {
        ssize_t n = rd_kafka_consume_batch_queue(queue, 100, batch, 1000);
        for (ssize_t i = 0; i < n; i++) {
            if (!batch[i]->err) {
                read++;
                while (rd_kafka_produce(out, batch[i]->partition, RD_KAFKA_MSG_F_COPY, batch[i]->payload,
                                        batch[i]->len, batch[i]->key, batch[i]->key_len, NULL) == -1) {
                    if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        snprintf(error, error_size, "produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
                        return -1;
                    }
                    rd_kafka_poll(producer, 1);
                }
            }
            rd_kafka_message_destroy(batch[i]);
        }
        rd_kafka_poll(producer, 0);
    }
    while (counts.delivered + counts.failed < read && now_seconds() < deadline) rd_kafka_poll(producer, 10);
    result->seconds = now_seconds() - start;
    result->messages = counts.delivered;
    result->failed = counts.failed;

    rd_kafka_queue_destroy(queue);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    rd_kafka_topic_destroy(out);
    rd_kafka_destroy(producer);
    if (read < count) {
        snprintf(error, error_size, "read %ld of %ld messages before the deadline", read, count);
        return -1;
    }
    return 0;
}
