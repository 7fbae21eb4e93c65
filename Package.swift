// swift-tools-version: 6.2
import PackageDescription

/// Warnings are errors in CI (`CI=true`); locally they stay warnings so work in
/// progress still builds. Swift 6 language mode gives strict concurrency checking.
let strictness: [SwiftSetting] =
    Context.environment["CI"] == "true" ? [.treatAllWarnings(as: .error)] : []

let package = Package(
    name: "Matomete",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Kafka", targets: ["Kafka"]),
        .library(name: "Billing", targets: ["Billing"]),
        .library(name: "Store", targets: ["Store"]),
        .executable(name: "matomete-broker", targets: ["matomete-broker"]),
        .executable(name: "charge-worker", targets: ["charge-worker"]),
        .executable(name: "cancellation-worker", targets: ["cancellation-worker"]),
        .executable(name: "billing-cycle-worker", targets: ["billing-cycle-worker"]),
        .executable(name: "collection-worker", targets: ["collection-worker"]),
        .executable(name: "outbox-relay", targets: ["outbox-relay"]),
        .executable(name: "auth-gateway", targets: ["auth-gateway"]),
        .executable(name: "merchant-site", targets: ["merchant-site"]),
        .executable(name: "support-desk", targets: ["support-desk"]),
        .executable(name: "matomete", targets: ["matomete"]),
        .executable(name: "kafka-bench", targets: ["KafkaBenchmark"]),
        .executable(name: "store-bench", targets: ["StoreBenchmark"]),
        .executable(name: "pipeline-bench", targets: ["PipelineBenchmark"]),
        .executable(name: "site-bench", targets: ["SiteBenchmark"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // Tests only: reads deploy/'s YAML to check it against the executables.
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // The only C in the package: librdkafka, found through pkg-config.
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"]), .brew(["librdkafka"])]
        ),
        // The only module that imports CRdKafka.
        .target(
            name: "Kafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        // The billing rules: pure values in, values out. No I/O, no clock.
        .target(name: "Billing", swiftSettings: strictness),
        // Reading and writing the flat JSON of messages and tokens, fast. No dependencies.
        .target(name: "JSON", swiftSettings: strictness),
        // Purchase authorization: signed tokens (Ed25519) and password hashes (scrypt).
        .target(
            name: "Authorization",
            dependencies: [
                "JSON",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        // The message contract: topics and the JSON messages Matomete publishes.
        .target(name: "Contract", dependencies: ["Billing", "JSON"], swiftSettings: strictness),
        // The line-state store in PostgreSQL, and a private PostgreSQL for tests and `dev`.
        .target(
            name: "Store",
            dependencies: [
                "Billing",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        // What every server process shares, Kafka or not: logging, metrics,
        // readiness, /healthz and /metrics, options, retrying.
        .target(
            name: "ServerKit",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        // The partition engine: a pure state machine per consumer that plans
        // batches, retries, isolation and dead letters, and the thin loop that
        // drives it over Kafka and an applier.
        .target(
            name: "Consuming",
            dependencies: [
                "Kafka", "ServerKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        // What a message becomes: decoded and verified once, the used-once
        // authorization rule and the billing rules applied in the store's
        // transaction, results, bills, settlements and dead letters as the
        // contract publishes them.
        .target(
            name: "Processing",
            dependencies: [
                "Kafka", "Consuming", "Billing", "Contract", "Store", "Authorization",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        // The worker processes' wiring: options, the engine with each topic's
        // applier, the relay and the cycle closer.
        .target(
            name: "Workers",
            dependencies: [
                "Kafka", "Consuming", "Processing", "ServerKit", "Billing", "Contract", "Store", "Authorization",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        // One executable per worker: each its own process and consumer group.
        .executableTarget(
            name: "charge-worker", dependencies: ["Workers", "Authorization"], swiftSettings: strictness),
        .executableTarget(name: "cancellation-worker", dependencies: ["Workers"], swiftSettings: strictness),
        .executableTarget(name: "collection-worker", dependencies: ["Workers"], swiftSettings: strictness),
        .executableTarget(
            name: "billing-cycle-worker", dependencies: ["Workers", "ServerKit", "Billing"], swiftSettings: strictness),
        .executableTarget(name: "outbox-relay", dependencies: ["Workers"], swiftSettings: strictness),
        // The purchase authentication gateway: HTTP in front of the credentials and line addresses.
        .target(
            name: "Gateway",
            dependencies: [
                "Authorization", "Billing", "JSON", "Store", "ServerKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "auth-gateway",
            dependencies: [
                "Gateway", "Authorization", "Store", "ServerKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        // What the staff sites share: accounts and sessions, CSRF, security headers, languages, page
        // rendering (swift-mustache), formatting of money and dates.
        .target(
            name: "SiteKit",
            dependencies: [
                "Authorization", "Billing", "Store", "ServerKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictness
        ),
        // What the staff sites send to Kafka: cancellations signed as the merchant's own.
        .target(
            name: "SiteMessages",
            dependencies: [
                "Authorization", "Billing", "Contract", "Kafka", "ServerKit", "Store",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        // The merchants' data-management site: purchases, settlements, payouts, the audit log.
        .target(
            name: "MerchantSite",
            dependencies: [
                "SiteKit", "SiteMessages", "Billing", "Store", "ServerKit", "Authorization", "Contract", "Kafka",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "merchant-site",
            dependencies: [
                "MerchantSite", "SiteKit", "SiteMessages", "ServerKit", "Contract",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictness
        ),
        // The carrier's support desk: one line's whole story and a few recorded actions.
        .target(
            name: "SupportDesk",
            dependencies: [
                "SiteKit", "SiteMessages", "Billing", "Store", "ServerKit", "Authorization",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "support-desk",
            dependencies: [
                "SupportDesk", "SiteKit", "SiteMessages", "ServerKit", "Contract",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictness
        ),
        // The operators' command-line tool.
        .executableTarget(
            name: "matomete",
            dependencies: [
                "Store", "Authorization", "Kafka", "Contract", "Billing", "ServerKit", "SiteKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strictness
        ),
        // Hosts librdkafka's mock cluster as a stand-alone broker for other processes.
        .executableTarget(
            name: "matomete-broker",
            dependencies: [
                "Contract",
                "Kafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        // Benchmarks: raw librdkafka in C next to the Kafka module, same cluster, same run.
        .target(
            name: "CKafkaRawBench",
            dependencies: ["CRdKafka"],
            path: "Benchmarks/CKafkaRawBench"
        ),
        .target(
            name: "BenchmarkSupport",
            dependencies: [
                "Billing", "Contract", .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/BenchmarkSupport", swiftSettings: strictness),
        .executableTarget(
            name: "KafkaBenchmark",
            dependencies: [
                "Kafka", "BenchmarkSupport",
                "CKafkaRawBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/KafkaBenchmark",
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "StoreBenchmark",
            dependencies: [
                "Store", "Processing", "Billing", "Contract", "BenchmarkSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Benchmarks/StoreBenchmark",
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "SiteBenchmark",
            dependencies: [
                "Store", "Billing", "BenchmarkSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Benchmarks/SiteBenchmark",
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "PipelineBenchmark",
            dependencies: [
                "Kafka", "Store", "Billing", "Contract", "Authorization", "Processing", "BenchmarkSupport",
                "CKafkaRawBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Benchmarks/PipelineBenchmark",
            swiftSettings: strictness
        ),
        // What the test targets share: a real PostgreSQL, fresh databases, built executables.
        .target(
            name: "MatometeTestSupport",
            dependencies: [
                "Store", "Billing",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/Support",
            swiftSettings: strictness
        ),
        .testTarget(
            name: "AuthorizationTests",
            dependencies: ["Authorization", "MatometeTestSupport", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictness
        ),
        .testTarget(name: "BillingTests", dependencies: ["Billing"], swiftSettings: strictness),
        .testTarget(
            name: "ContractTests", dependencies: ["Contract", "JSON", "Billing", "MatometeTestSupport"],
            swiftSettings: strictness),
        .testTarget(
            name: "StoreTests",
            dependencies: [
                "Store", "Processing", "Consuming", "Kafka", "Billing", "Contract", "Authorization",
                "MatometeTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "WorkerTests",
            dependencies: [
                "Kafka", "Store", "Workers", "Consuming", "Processing", "ServerKit", "Billing", "Contract", "JSON",
                "MatometeTestSupport", "Authorization", "Gateway",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "SiteTests",
            dependencies: [
                "MerchantSite", "SupportDesk", "SiteKit", "SiteMessages", "Store", "Billing", "MatometeTestSupport",
                "Authorization", "ServerKit", "Kafka", "Contract",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "DeployTests",
            dependencies: [
                "MatometeTestSupport", .product(name: "Yams", package: "Yams"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "ArchitectureTests", dependencies: ["MatometeTestSupport"], swiftSettings: strictness),
        .testTarget(name: "ConsumingTests", dependencies: ["Consuming", "Kafka"], swiftSettings: strictness),
        .testTarget(
            name: "KafkaTests",
            dependencies: ["Kafka", "MatometeTestSupport"],
            swiftSettings: strictness
        ),
    ]
)
