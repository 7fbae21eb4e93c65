import ArgumentParser
import Billing
import Contract
import Foundation
import Kafka
import Logging
import ServerKit
import Store

/// Options shared by the commands that talk to Kafka: the same flags and
/// variables the workers take.
struct ClusterOptions: ParsableArguments {
    @OptionGroup var kafka: KafkaClientOptions

    var topics: Topics { Topics(prefix: kafka.prefix()) }

    func settings() throws -> KafkaClientSettings {
        let connection = try kafka.resolve()
        var settings = KafkaClientSettings(bootstrapServers: connection.bootstrapServers)
        settings.clientID = "matomete-cli"
        settings.rawProperties = connection.properties
        return settings
    }

    func admin() throws -> KafkaAdmin {
        try KafkaAdmin(settings: try settings(), requestTimeout: .seconds(15), logger: DatabaseOptions.logger)
    }

    func producer() throws -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(bootstrapServers: [])
        configuration.client = try settings()
        configuration.messageTimeout = .seconds(30)
        return try KafkaProducer(configuration: configuration, logger: DatabaseOptions.logger)
    }

    /// Every message on `topic` now, oldest first per partition, read without
    /// joining a consumer group.
    func readAll(_ topic: String) async throws -> [KafkaConsumerMessage] {
        let admin = try admin()
        let ranges = try await admin.watermarks(try await admin.partitions(of: [topic])).filter { !$0.value.isEmpty }
        guard !ranges.isEmpty else { return [] }
        var configuration = KafkaConsumerConfiguration(bootstrapServers: [], groupID: "matomete-cli")
        configuration.client = try settings()
        let consumer = try KafkaConsumer(configuration: configuration, logger: DatabaseOptions.logger)
        try await consumer.assign(ranges.mapValues { .offset($0.lowerBound) })
        var remaining = ranges
        var messages: [KafkaConsumerMessage] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while !remaining.isEmpty {
            guard ContinuousClock.now < deadline else {
                await consumer.close()
                throw KafkaError(code: .timedOut, message: "could not read \(topic) to its end within 60 s")
            }
            for case .messages(let batch) in try await consumer.poll(timeout: .milliseconds(200)) {
                for message in batch {
                    messages.append(message)
                    if let range = remaining[message.topicPartition], message.offset + 1 >= range.upperBound {
                        remaining[message.topicPartition] = nil
                    }
                }
            }
        }
        await consumer.close()
        return messages.sorted { ($0.topicPartition, $0.offset) < ($1.topicPartition, $1.offset) }
    }
}

struct TopicCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics", abstract: "Matomete's Kafka topics, and who may use them.",
        subcommands: [Create.self, List.self, ACLs.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create every topic Matomete uses; topics that exist are left as they are.",
            discussion: """
                The request topics and the output topics keyed by line take --partitions each: the \
                most worker processes of one kind that can share the work. billing-cycles has one \
                partition (closes run in order); settlements, payouts and dead-letters have three. With \
                --merchant, also that merchant's own topics (its results, with --partitions, and \
                its settlements and payouts, one each): run it when a merchant is added.
                """)
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Partitions of the request topics (the most workers of one kind that share work).")
        var partitions = 48
        @Option(help: "Also create this merchant's own topics. Repeatable.") var merchant: [String] = []
        @Option(help: "Copies of each partition (3 in production; 1 for a single broker).")
        var replicationFactor = 3

        func validate() throws {
            guard (1...10_000).contains(partitions) else { throw ValidationError("Partitions must be 1 to 10000.") }
            guard (1...10).contains(replicationFactor) else {
                throw ValidationError("The replication factor must be 1 to 10.")
            }
            for id in merchant where !MerchantID(rawValue: id).isWellFormed {
                throw ValidationError("\(id) is not a merchant id: 1 to 64 letters, digits, - and _.")
            }
        }

        func run() async throws {
            try await Exit.mapping {
                let admin = try cluster.admin()
                let created = try await admin.createTopics(
                    (cluster.topics.layout(partitions: partitions)
                        + merchant.flatMap { cluster.topics.merchantLayout($0, partitions: partitions) }).map {
                            KafkaTopicSpecification(
                                name: $0.name, partitions: $0.partitions, replicationFactor: replicationFactor,
                                configuration: $0.configuration)
                        })
                if !output.json {
                    say("Created \(created.count) topics; the others existed already and are left as they are.")
                }
                try await TopicCommands.List.show(admin: admin, topics: cluster.topics, output: output)
            }
        }
    }

    struct ACLs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "acls",
            abstract: "Print the kafka-acls.sh commands that grant each party its access, and no more.",
            discussion: """
                One principal per party: each worker kind reads its input topic in its own group; the \
                relay writes every output; operators (User:matomete-operator) create topics, write \
                billing-cycles (nobody else may close a month) and replay dead letters; the line \
                system writes cancellations and reads its results; the billing system reads \
                line-bills; finance reads settlements. With --merchant, each merchant's principal \
                (User:merchant-<id>) writes the two request topics and reads only the topics under \
                <prefix>.merchant.<id>. in groups named merchant-<id>.…; run it for every merchant added. The \
                commands read the broker from $BOOTSTRAP and the admin's client settings from \
                $ADMIN_CONFIG (deploy/kafka/README.md). The brokers must refuse what no ACL allows \
                (allow.everyone.if.no.acl.found=false).
                """)
        @Option(
            name: .customLong("topic-prefix"),
            help: ArgumentHelp(
                "Prefix of every topic name. [env: MATOMETE_TOPIC_PREFIX] (default: matomete)", valueName: "prefix"))
        var topicPrefix: String?
        @Option(help: "A merchant whose ACLs to print. Repeatable.") var merchant: [String] = []
        @Flag(help: "Only the merchants' ACLs, not the carrier's parties'.") var merchantsOnly = false
        @OptionGroup var output: OutputOptions

        func validate() throws {
            for id in merchant where !MerchantID(rawValue: id).isWellFormed {
                throw ValidationError("\(id) is not a merchant id: 1 to 64 letters, digits, - and _.")
            }
        }

        func run() throws {
            let access = KafkaAccess(
                topics: Topics(
                    prefix: topicPrefix ?? ProcessInfo.processInfo.environment["MATOMETE_TOPIC_PREFIX"] ?? "matomete"))
            let entries = (merchantsOnly ? [] : access.carrier) + merchant.flatMap(access.merchant)
            if output.json {
                struct Row: Encodable {
                    var principal, operation, resource, pattern, name: String
                }
                try output.print(
                    entries.map {
                        Row(
                            principal: $0.principal, operation: $0.operation, resource: $0.resource.rawValue,
                            pattern: $0.pattern.rawValue, name: $0.name)
                    })
            } else {
                writeOut(entries.map(\.command).joined(separator: "\n") + "\n")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each topic's partitions, replicas and messages.")
        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await Exit.mapping {
                try await Self.show(admin: try cluster.admin(), topics: cluster.topics, output: output)
            }
        }

        struct Row: Encodable {
            var topic: String
            var partitions: Int
            var replicationFactor: Int
            var messages: Int64
            var purpose: String
        }

        static func show(admin: KafkaAdmin, topics: Topics, output: OutputOptions) async throws {
            // The shared topics, then every merchant's own that exists.
            let merchants = Set(
                try await admin.topicNames(startingWith: "\(topics.prefix).merchant.").compactMap { name in
                    name.dropFirst(topics.prefix.count + ".merchant.".count).split(separator: ".").first.map(
                        String.init)
                })
            let wanted =
                topics.layout(partitions: 0) + merchants.sorted().flatMap { topics.merchantLayout($0, partitions: 0) }
            let existing = Set(try await admin.topicNames(startingWith: "\(topics.prefix)."))
            let plan = wanted.filter { existing.contains($0.name) || !$0.name.hasPrefix("\(topics.prefix).merchant.") }
            let descriptions = try await admin.describeTopics(plan.map(\.name))
            var rows: [Row] = []
            for (entry, description) in zip(plan, descriptions) {
                let ranges = try await admin.watermarks(
                    description.partitions.map { KafkaTopicPartition(topic: description.name, partition: $0.id) })
                rows.append(
                    Row(
                        topic: entry.name, partitions: description.partitions.count,
                        replicationFactor: description.partitions.first?.replicas.count ?? 0,
                        messages: ranges.values.reduce(0) { $0 + Int64($1.count) }, purpose: entry.purpose))
            }
            if output.json { return try output.print(rows) }
            printTable(
                header: ["topic", "partitions", "replicas", "messages", "what it carries"],
                rows: rows.map {
                    [$0.topic, "\($0.partitions)", "\($0.replicationFactor)", $0.messages.formatted(), $0.purpose]
                })
        }
    }
}

struct LineCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lines", abstract: "Access lines, from the line system.",
        subcommands: [Import.self, DefaultLimit.self, ShowLine.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add lines, or update the type, status and limit of lines that exist, from CSV.",
            discussion: """
                CSV as RFC 4180 writes it (quoted fields may hold commas, quotes written twice and line \
                breaks). The header names line_id and line_type (hikari-next, hikari-light, b-flets or \
                adsl), and optionally flets_net (true or false, exactly; empty for false), status (active, suspended, terminated; default active) and \
                spending_limit (whole yen; empty for the default, see `lines default-limit`; 0 for no \
                limit). New lines start in --cycle: by default the cycle after the latest close, or the \
                current month when none has closed (months close in order, so an earlier --cycle means \
                closing every month from it on). Lines that exist keep their cycle and what they have \
                spent. Rows go in 100,000 at a time, each batch in one transaction: re-running an import is \
                safe. Exits 65 at the first malformed row, naming it (rows before its batch stay imported), \
                and for any column not named here, a column named twice, or a row with another number of \
                fields than the header.
                """)
        @OptionGroup var database: DatabaseOptions
        @Option(
            help: ArgumentHelp(
                "The cycle new lines start in (their first bill), for example 2026-10: after the latest closed cycle, and not after the current month.",
                valueName: "yyyy-mm"))
        var cycle: String?
        @Argument(help: "The CSV file, or - for standard input.") var file: String

        func validate() throws {
            if let cycle, BillingCycle(cycle) == nil {
                throw ValidationError("--cycle \(cycle): expected a month such as 2026-10.")
            }
        }

        func run() async throws {
            try await Exit.mapping {
                let handle =
                    file == "-" ? FileHandle.standardInput : try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
                let size = file == "-" ? nil : (try? FileManager.default.attributesOfItem(atPath: file)[.size]) as? Int
                let asked = self.cycle.flatMap(BillingCycle.init)
                let (total, cycle) = try await database.withStore { store in
                    let current = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
                    let latestClose = try await store.latestClose()
                    let cycle = asked ?? latestClose?.next ?? current
                    if let latestClose, cycle <= latestClose {
                        throw StoreError(
                            .invalidInput,
                            "--cycle \(cycle): \(latestClose) is closed already; new lines can start in \(latestClose.next) at the earliest"
                        )
                    }
                    if cycle > current {
                        throw StoreError(.invalidInput, "--cycle \(cycle): that month has not begun (it is \(current))")
                    }
                    var reader = CSVChunks(handle: handle, rowsPerChunk: 100_000)
                    var bar = size.map { ProgressBar(title: "Importing lines", total: $0, unit: .bytes) }
                    var total = 0
                    while let (text, firstLine, bytesRead) = try reader.next() {
                        let lines = try LineCSV.parse(text, firstLine: firstLine)
                        total += try await store.importLines(lines, openCycle: cycle)
                        bar?.set(bytesRead)
                    }
                    bar?.finish()
                    return (total, cycle)
                }
                say("Imported \(total.formatted()) lines; new lines start in \(cycle).")
            }
        }
    }

    struct DefaultLimit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "default-limit",
            abstract: "Show or set the monthly spending limit of lines without one of their own.",
            discussion: """
                A line's limit counts its one-time charges and subscriptions in the open month. A line \
                with a spending_limit of its own (lines import) keeps it; every other line has this one: \
                ¥50,000 until set. 0 means no limit. The workers apply a new value from their next batch, \
                to the rest of the open month too; requests already answered stay as they were.
                """)
        @OptionGroup var database: DatabaseOptions
        @Argument(
            help: ArgumentHelp(
                "The new limit in whole yen (0: none). Without it, the current one is shown.", valueName: "yen"))
        var yen: Int64?

        func validate() throws {
            if let yen, yen < 0 { throw ValidationError("The limit is 0 (none) or more yen, not \(yen).") }
        }

        func run() async throws {
            try await Exit.mapping {
                let limit = try await database.withStore { store in
                    if let yen { try await store.setDefaultSpendingLimit(Yen(yen)) }
                    return try await store.defaultSpendingLimit() ?? BillingLimits().defaultSpendingLimit
                }
                let text = limit == 0 ? "none" : "¥\(limit.amount.formatted())"
                say(yen == nil ? "Default spending limit: \(text)." : "Default spending limit set: \(text).")
            }
        }
    }
}

/// Reads a CSV file a chunk of records at a time, each chunk with the header
/// record. A record ends at a line break outside double quotes (a quoted
/// field may hold line breaks).
struct CSVChunks {
    let handle: FileHandle
    let rowsPerChunk: Int
    private var header: String?
    private var pending: [UInt8] = []
    private var position = 0
    private var finished = false
    private var bytesRead = 0
    /// The file's line number of the next record.
    private var line = 1

    init(handle: FileHandle, rowsPerChunk: Int) {
        self.handle = handle
        self.rowsPerChunk = rowsPerChunk
    }

    /// The next chunk as CSV text with the header, the file's line number of its first record after the
    /// header, and the bytes read so far.
    mutating func next() throws -> (String, Int, Int)? {
        if header == nil {
            guard let (record, lines) = try nextRecord() else { return nil }
            header = record
            line += lines
        }
        let firstLine = line
        var rows: [String] = []
        while rows.count < rowsPerChunk, let (record, lines) = try nextRecord() {
            rows.append(record)
            line += lines
        }
        guard let header, !rows.isEmpty else { return nil }
        return (([header] + rows).joined(separator: "\n"), firstLine, bytesRead)
    }

    /// The next record's text and the lines it spans; `nil` at the end of the file.
    private mutating func nextRecord() throws -> (String, Int)? {
        var quoted = false
        var lines = 1
        var index = position
        while true {
            if index == pending.count {
                if finished {
                    guard position < pending.count else { return nil }
                    let record = String(decoding: pending[position...], as: UTF8.self)
                    position = pending.count
                    return (record, lines)
                }
                // Keep the unread tail only, then read on: no record is moved twice.
                pending = Array(pending[position...])
                index -= position
                position = 0
                let data = try handle.read(upToCount: 4 << 20) ?? Data()
                if data.isEmpty { finished = true } else { pending.append(contentsOf: data) }
                bytesRead += data.count
                continue
            }
            let byte = pending[index]
            if byte == UInt8(ascii: "\"") {
                quoted.toggle()
            } else if byte == UInt8(ascii: "\n") {
                if !quoted {
                    // CRLF ends a record too: its CR is not part of the last field.
                    let end = index > position && pending[index - 1] == UInt8(ascii: "\r") ? index - 1 : index
                    let record = String(decoding: pending[position..<end], as: UTF8.self)
                    position = index + 1
                    return (record, lines)
                }
                lines += 1
            }
            index += 1
        }
    }
}

struct MerchantCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merchants", abstract: "Merchants and their fee schedules.",
        subcommands: [Add.self, Update.self, List.self, Show.self, Tariffs.self, MerchantKeys.self, MerchantStaff.self])

    /// A fee schedule from the command line; each part defaults to the launch tariff.
    struct TariffOptions: ParsableArguments {
        @Option(help: ArgumentHelp("The percentage fee, e.g. 5 or 4.75 (default 5).", valueName: "percent"))
        var ratePercent: String?
        @Option(
            help: ArgumentHelp(
                "Average yen per line below which the per-line fee applies (default 600).", valueName: "yen"))
        var perLineThreshold: Int64?
        @Option(help: ArgumentHelp("The per-line fee in yen, to a tenth, e.g. 31.5 (default 31.5).", valueName: "yen"))
        var perLineFee: String?
        @Option(
            help: ArgumentHelp(
                "The first cycle the fee schedule applies to (default: the current month).", valueName: "YYYY-MM"))
        var from: String?

        var isGiven: Bool { ratePercent != nil || perLineThreshold != nil || perLineFee != nil }

        /// The first cycle the fee schedule applies to.
        func cycle() throws -> BillingCycle {
            guard let from else { return BillingCycle(containing: Int64(Date().timeIntervalSince1970)) }
            guard let cycle = BillingCycle(from) else { throw ValidationError("--from must be YYYY-MM.") }
            return cycle
        }

        /// The fee schedule from ``cycle()`` on: `base` with the parts given changed.
        func version(base: Tariff) throws -> TariffVersion {
            var tariff = base
            if let ratePercent {
                guard let points = FixedPoint.parse(ratePercent, decimals: 2), (0...10_000).contains(points) else {
                    throw ValidationError("--rate-percent must be 0 to 100 with at most two decimals.")
                }
                tariff.rateBasisPoints = points
            }
            if let perLineThreshold {
                guard perLineThreshold >= 0 else { throw ValidationError("--per-line-threshold must be 0 or more.") }
                tariff.perLineThreshold = Yen(perLineThreshold)
            }
            if let perLineFee {
                guard let tenths = FixedPoint.parse(perLineFee, decimals: 1), (0...10_000_000).contains(tenths) else {
                    throw ValidationError(
                        "--per-line-fee must be ¥0 to ¥1,000,000 with at most one decimal, e.g. 31.5.")
                }
                tariff.perLineFeeTenths = tenths
            }
            return TariffVersion(effectiveFrom: try cycle(), tariff: tariff)
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a merchant; it may charge as soon as this returns. Exits 1 if the id is taken.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "The merchant id merchants put in their messages.") var id: String
        @Option(help: "The name on settlements.") var name: String
        @OptionGroup var tariff: TariffOptions

        func run() async throws {
            let merchant = Merchant(
                id: MerchantID(rawValue: id), name: name,
                tariffs: TariffSchedule(versions: [try tariff.version(base: .standard)]))
            guard merchant.id.isWellFormed else {
                throw ValidationError("The id \(id) is not a merchant id: 1 to 64 letters, digits, - and _.")
            }
            guard Merchant.isWellFormedName(name) else { throw ValidationError(Merchant.nameRule) }
            try await Exit.mapping {
                let added = try await database.withStore { store in
                    guard try await store.merchants()[merchant.id] == nil else { return false }
                    try await store.upsertMerchant(merchant)
                    return true
                }
                guard added else {
                    Exit.complain("merchant \(id) exists; change it with `matomete merchants update`")
                    throw ExitCode.failure
                }
                say("Added \(id) (\(name)): \(describe(merchant.tariffs.versions[0])).")
                say(
                    "Next: its topics (matomete topics create --merchant \(id)), its Kafka ACLs (matomete topics acls --merchant \(id) --merchants-only) and its signing key (matomete merchants keys create --merchant \(id))."
                )
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename, suspend or resume a merchant, or give it a fee schedule from a cycle on.",
            discussion: """
                A suspended merchant's charges are refused (merchant_suspended); cancellations are still \
                accepted. A new fee schedule applies to settlements of its --from cycle and later; \
                settlements already made keep the fee they were made with. Exits 1 if no such merchant.
                """)
        @OptionGroup var database: DatabaseOptions
        @Option(help: "The merchant id.") var id: String
        @Option(help: "A new name.") var name: String?
        @Option(help: "active or suspended.") var status: MerchantStatus?
        @OptionGroup var tariff: TariffOptions

        func run() async throws {
            guard name != nil || status != nil || tariff.isGiven else {
                throw ValidationError(
                    "Give --name, --status or a fee (--rate-percent, --per-line-threshold, --per-line-fee).")
            }
            try await Exit.mapping {
                let updated = try await database.withStore { store -> Merchant? in
                    guard var merchant = try await store.merchants()[MerchantID(rawValue: id)] else { return nil }
                    if let name {
                        guard Merchant.isWellFormedName(name) else { throw ValidationError(Merchant.nameRule) }
                        merchant.name = name
                    }
                    if let status { merchant.status = status }
                    if tariff.isGiven {
                        // Parts not given keep what applies from that cycle on.
                        let current = merchant.tariffs.tariff(for: try tariff.cycle())
                        // Only a tariff of the launch's shape is changed part by part: a banded one would lose
                        // its bands and its tax treatment.
                        guard current.summary.banded == current else {
                            throw ValidationError(
                                "\(id)'s tariff from \(try tariff.cycle()) has bands (\(describe(current))): change it with a tariff file, matomete merchants tariffs FILE."
                            )
                        }
                        merchant.tariffs.versions.append(try tariff.version(base: current.summary))
                    }
                    try await store.upsertMerchant(merchant)
                    return merchant
                }
                guard let updated else {
                    Exit.complain("no merchant \(id)")
                    throw ExitCode.failure
                }
                say("Updated \(id): \(updated.name), \(updated.status.rawValue).")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A merchant: its status and every fee schedule it has had, band by band. Exits 1 if none.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The merchant id.") var id: String

        struct Version: Encodable {
            var from: String?
            var tariff: BandedTariff
            var description: String
        }

        struct Shown: Encodable {
            var id, name, status: String
            var schedules: [Version]
        }

        func run() async throws {
            try await Exit.mapping {
                guard
                    let merchant = try await database.withStore({ try await $0.merchants() })[MerchantID(rawValue: id)]
                else {
                    Exit.complain("no merchant \(id)")
                    throw ExitCode.failure
                }
                let versions = merchant.tariffs.versions.sorted { $0.effectiveFrom < $1.effectiveFrom }
                let schedules =
                    [
                        Version(
                            from: nil, tariff: merchant.tariffs.fallback,
                            description: describe(merchant.tariffs.fallback))
                    ]
                    + versions.map {
                        Version(from: $0.effectiveFrom.description, tariff: $0.tariff, description: describe($0.tariff))
                    }
                if output.json {
                    return try output.print(
                        Shown(
                            id: id, name: merchant.name, status: merchant.status.rawValue, schedules: schedules))
                }
                say("\(id): \(merchant.name), \(merchant.status.rawValue)")
                printTable(
                    header: ["from", "fee schedule"],
                    rows: schedules.map {
                        [
                            $0.from ?? (versions.isEmpty ? "always" : "before \(versions[0].effectiveFrom)"),
                            $0.description,
                        ]
                    })
            }
        }
    }

    struct Tariffs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give many merchants new fee schedules at once, from a tariff file.",
            discussion: """
                The file is strict JSON (docs/finance.md, "Tariff files"): {"tariffs": [{"merchant": …, \
                "from": "YYYY-MM", "tax": "included" or "added", "bands": [{"from": 0, "perLine": "25"}, \
                {"from": 1501, "percent": "3"}, …]}, …]}. Each schedule applies to settlements of its month \
                and later; settlements already made keep their fee. The whole file is checked first: an \
                error (naming the entry, the band and the field) exits 65, a merchant that does not exist \
                exits 1, and nothing is changed.
                """)
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The tariff file.") var file: String

        func run() async throws {
            let bytes: [UInt8]
            do {
                let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
                bytes = Array(try handle.read(upToCount: TariffFile.maximumBytes + 1) ?? Data())
            } catch {
                Exit.complain("cannot read \(file): \(error.localizedDescription)")
                throw Exit.dataError
            }
            let tariffs: TariffFile
            do {
                tariffs = try TariffFile(bytes)
            } catch {
                Exit.complain("\(file): \(error.description)")
                throw Exit.dataError
            }
            try await Exit.mapping {
                try await database.withStore { store in
                    var merchants = try await store.merchants()
                    let unknown = tariffs.entries.map(\.merchant).filter { merchants[$0] == nil }
                    guard unknown.isEmpty else {
                        Exit.complain("no merchant \(unknown.map(\.rawValue).joined(separator: ", ")); nothing changed")
                        throw ExitCode.failure
                    }
                    for entry in tariffs.entries {
                        merchants[entry.merchant]!.tariffs.versions.removeAll { $0.effectiveFrom == entry.from }
                        merchants[entry.merchant]!.tariffs.versions.append(
                            TariffVersion(effectiveFrom: entry.from, tariff: entry.tariff))
                    }
                    for merchant in Set(tariffs.entries.map(\.merchant)).sorted() {
                        try await store.upsertMerchant(merchants[merchant]!)
                    }
                }
                for entry in tariffs.entries {
                    say("\(entry.merchant) from \(entry.from): \(describe(entry.tariff))")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every merchant with the fee in force this month.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        struct Row: Encodable {
            var id: String
            var name: String
            var status: String
            /// The tariff in force this month, band by band.
            var tariff: String
            var rateBasisPoints: Int64
            var perLineThresholdYen: Int64
            var perLineFeeTenths: Int64
            var tariffVersions: Int
        }

        func run() async throws {
            try await Exit.mapping {
                let merchants = try await database.withStore { try await $0.merchants() }
                let cycle = BillingCycle(containing: Int64(Date().timeIntervalSince1970))
                let rows = merchants.values.sorted { $0.id.rawValue < $1.id.rawValue }.map { merchant in
                    let tariff = merchant.tariffs.tariff(for: cycle).summary
                    return Row(
                        id: merchant.id.rawValue, name: merchant.name, status: merchant.status.rawValue,
                        tariff: describe(merchant.tariffs.tariff(for: cycle)), rateBasisPoints: tariff.rateBasisPoints,
                        perLineThresholdYen: tariff.perLineThreshold.amount,
                        perLineFeeTenths: tariff.perLineFeeTenths, tariffVersions: merchant.tariffs.versions.count)
                }
                if output.json { return try output.print(rows) }
                printTable(
                    header: ["id", "name", "status", "fee this month", "versions"],
                    rows: rows.map { [$0.id, $0.name, $0.status, $0.tariff, "\($0.tariffVersions)"] })
            }
        }
    }
}

func describe(_ version: TariffVersion) -> String {
    "from \(version.effectiveFrom), \(describe(version.tariff))"
}

/// A tariff band by band: `¥31.5 a line from ¥0, 5% from ¥600; tax included`.
func describe(_ tariff: BandedTariff) -> String {
    let bands = tariff.bands.map { band in
        let rule =
            switch band.rule {
            case .perLine(let sen):
                "¥\(sen / 100)\(sen % 100 == 0 ? "" : String(format: ".%02d", sen % 100).replacing(/0$/, with: "")) a line"
            case .percentage(let points): "\(percent(points)) of gross"
            }
        return "\(rule) from ¥\(band.lowerBound.amount)"
    }
    return bands.joined(separator: ", ") + "; tax \(tariff.tax.rawValue)"
}

func percent(_ basisPoints: Int64) -> String {
    basisPoints % 100 == 0 ? "\(basisPoints / 100)%" : String(format: "%.2f%%", Double(basisPoints) / 100)
}

func tenths(_ value: Int64) -> String { value % 10 == 0 ? "\(value / 10)" : "\(value / 10).\(value % 10)" }

extension MerchantStatus: ExpressibleByArgument {}
