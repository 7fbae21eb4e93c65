#!/usr/bin/env bash
# Runs Matomete on the embedded default. Installs librdkafka and PostgreSQL
# when they are missing.
#
# Today this starts the embedded Kafka cluster (librdkafka's mock brokers,
# 3 of them on loopback) with Matomete's topics, prints where it listens and
# serves until Ctrl-C. The workers and the full demo join it as they are built.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-dependencies.sh
ensure_dependencies

swift build --product matomete-broker
exec .build/debug/matomete-broker --brokers 3 \
    --topic matomete.charges:12 --topic matomete.cancellations:12 \
    --topic matomete.billing-cycles:1 --topic matomete.merchant-results:12 \
    --topic matomete.line-bills:12 --topic matomete.settlements:3 \
    --topic matomete.dead-letters:3 "$@"
