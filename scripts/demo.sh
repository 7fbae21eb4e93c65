#!/usr/bin/env bash
# Runs a month of Matomete on the embedded default and prints the settlements.
# Installs librdkafka and PostgreSQL when they are missing.
#
# Starts librdkafka's mock cluster (3 brokers) and a private PostgreSQL, every
# worker and the auth gateway as separate processes, buys through the gateway
# and Kafka, closes the month and prints each merchant's settlement and the
# reconciliation. Options: `matomete demo --help` (for example --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-dependencies.sh
ensure_dependencies

echo "Building Matomete (the first build takes several minutes)…"
swift build
exec .build/debug/matomete demo "$@"
