#ifndef MATOMETE_RAW_BENCH_H
#define MATOMETE_RAW_BENCH_H

#include <stddef.h>

/// Figures of one raw librdkafka run.
typedef struct {
    double seconds;   ///< Wall time of the measured part.
    long messages;    ///< Messages delivered (produce) or read (consume).
    long failed;      ///< Messages whose delivery failed.
} raw_bench_result;

/// Produces `count` messages of `value_size` bytes, keyed "line-%07ld" (i % 100000),
/// with the same settings as the Swift producer's defaults, and waits for every
/// delivery report. Returns 0 on success; otherwise writes a reason to `error`.
int raw_bench_produce(const char *bootstrap, const char *topic, long count, int value_size,
                      raw_bench_result *result, char *error, size_t error_size);

/// Reads `count` messages from `topic` in consumer group `group`, timing from
/// the partition assignment (the end of the group join) to the last message.
/// The prefetch limits are `queued.max.messages.kbytes` and `queued.min.messages`.
/// Returns 0 on success.
int raw_bench_consume(const char *bootstrap, const char *topic, const char *group, long count,
                      long queued_kilobytes, long queued_messages, raw_bench_result *result, char *error,
                      size_t error_size);

/// Reads `count` messages from `in_topic` in consumer group `group` and
/// produces each one again, same key and value, to the same partition of
/// `out_topic`, with no processing: the most a consume-apply-produce worker
/// could do on this cluster. Times from the assignment to the last delivery.
int raw_bench_pipe(const char *bootstrap, const char *in_topic, const char *out_topic, const char *group,
                   long count, raw_bench_result *result, char *error, size_t error_size);

#endif
