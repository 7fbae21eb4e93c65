#!/usr/bin/env bash
# Runs every test. Installs librdkafka, PostgreSQL, and chromium with chromedriver
# (the site tests' real browser) when they are missing.
# With CI=true it also checks formatting and treats warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-dependencies.sh
ensure_dependencies browser

if [ "${CI:-}" = "true" ]; then
    echo "== Checking formatting (swift format, then git diff)"
    swift format -i -r Sources Tests Benchmarks Package.swift
    git diff --exit-code -- Sources Tests Benchmarks Package.swift
    # Sources/.swift-format also asks for `///` on every public declaration.
    echo "== Linting (swift format lint --strict)"
    swift format lint --strict -r Sources Tests Benchmarks Package.swift
fi

echo "== Building (warnings are errors when CI=true)"
swift build --build-tests
echo "== Testing"
# One test at a time: the end-to-end suites run a dozen processes each, and
# timing-sensitive Kafka tests beside them would only share two cores.
swift test --skip-build --no-parallel
