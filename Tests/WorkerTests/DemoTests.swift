import Contract
import Foundation
import Kafka
import MatometeTestSupport
import Testing

extension ScenarioTests {
    /// `matomete demo`, as the README's first command runs it, smaller, on a
    /// cluster this test holds so that it can read the settlements published.
    @Test("matomete demo runs a month end to end; its table is the settlements on the topic and every yen reconciles")
    func demo() async throws {
        let cluster = try EmbeddedKafkaCluster(brokers: 3, logger: TestSystem.logger)
        let topics = Topics()
        for topic in [
            topics.charges, topics.cancellations, topics.lineSystemResults, topics.lineBills, topics.collections,
            topics.collectionResults,
        ] {
            try cluster.createTopic(topic, partitions: 6)
        }
        // `matomete demo` creates each merchant's topics as it adds the merchant; this mock takes no CreateTopics.
        for merchant in ["points-shop", "farm-game", "video", "fan-club"] {
            for topic in topics.merchantLayout(merchant, partitions: 3) {
                try cluster.createTopic(topic.name, partitions: topic.partitions)
            }
        }
        for topic in [topics.billingCycles, topics.settlements, topics.payouts, topics.deadLetters] {
            try cluster.createTopic(topic, partitions: 1)
        }
        let process = Process()
        process.executableURL = try Processes.builtExecutable("matomete")
        // --serve: it stays up at the end, for the merchant site's walk in a real browser.
        process.arguments = [
            "demo", "--lines", "1000", "--buyers", "100", "--purchases", "300", "--bootstrap-servers",
            cluster.bootstrapServers, "--serve",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let reader = OutputReader(output.fileHandleForReading)
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let serving = try await reader.wait(for: "Serving until Ctrl-C", within: .seconds(240)) { !process.isRunning }
        if serving {
            let site = try #require(MerchantSiteWalk.Site(demoOutput: reader.text), "\(reader.text)")
            let video = try #require(
                try await Self.readSettlements(cluster, topic: topics.settlements).first { $0.merchantId == "video" })
            try await MerchantSiteWalk.walk(site, settlement: video)
        }
        process.interrupt()
        _ = try await Processes.waitForExit(process, within: .seconds(60))
        let text = reader.text
        #expect(serving, "the demo never served: \(text)")
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("Every yen reconciles."))
        // After the close, the bills are collected and the month's money paid out, every yen of it once.
        #expect(text.contains("all accepted") && text.contains("1 bounced"), "\(text)")
        #expect(text.contains("Every collected yen is paid out once."))
        #expect(!text.contains("MISMATCH"))

        // The settlement table: merchant, lines, gross, average, rule, band, fee, tax, net.
        func number(_ cell: Substring) -> Int64? { Int64(cell.replacingOccurrences(of: ",", with: "")) }
        let lines = text.split(separator: "\n")
        let start = try #require(lines.firstIndex { $0.hasPrefix("merchant") })
        var rows: [[Substring]] = []
        var names: [String] = []
        for line in lines[(start + 2)...] {
            if line.hasPrefix("total") || line.isEmpty { break }
            // The name may hold spaces: the eight figures are the last fields.
            let fields = line.split(separator: " ")
            rows.append(Array(fields.suffix(8)))
            names.append(fields.dropLast(8).joined(separator: " "))
        }
        #expect(rows.count == 4, "one row per merchant")
        var gross: Int64 = 0
        for (name, row) in zip(names, rows) {
            let (lineCount, rowGross, average, rule, band, fee, tax, net) = (
                try #require(number(row[0])), try #require(number(row[1])), try #require(number(row[2])), row[3],
                row[4], try #require(number(row[5])), try #require(number(row[6])), try #require(number(row[7]))
            )
            #expect(average == rowGross / lineCount)
            if name == "Video Service" {
                // Banded, tax added (10 % this month): ¥25, ¥35, ¥45.5 a line from ¥0, ¥601, ¥901; 3 % from ¥1,501.
                let bounds: [Int64] = [0, 601, 901, 1_501]
                let index = bounds.lastIndex { rowGross >= $0 * lineCount }!
                let expected = index == 3 ? rowGross * 300 / 10_000 : lineCount * [2_500, 3_500, 4_550][index] / 100
                #expect(band == "\(index + 1)/4" && rule == (index == 3 ? "percentage" : "per-line"))
                #expect(fee == expected && tax == expected * 1_000 / 10_000, "\(row)")
            } else {
                let perLine = rowGross < 600 * lineCount
                #expect(rule == (perLine ? "per-line" : "percentage") && band == (perLine ? "1/2" : "2/2"))
                #expect(fee == (perLine ? 315 * lineCount / 10 : rowGross * 500 / 10_000) && tax == 0)
            }
            #expect(net == rowGross - fee - tax)
            gross += rowGross
        }
        #expect(text.contains("Video Service is on a 2012-style banded tariff, tax added"))
        // The same rows as the settlements on the topic, read here.
        let published = try await Self.readSettlements(cluster, topic: topics.settlements)
        #expect(published.count == 4)
        func figures(_ values: [Int64], _ rule: Substring) -> String {
            values.map(String.init).joined(separator: " ") + " \(rule)"
        }
        let printed = rows.compactMap { row -> String? in
            let values = [0, 1, 2, 5, 6, 7].compactMap { number(row[$0]) }
            return values.count == 6 ? figures(values, row[3]) : nil
        }.sorted()
        let onTopic = published.map {
            figures(
                [$0.lines, $0.grossAmount, $0.averagePerLine, $0.feeBeforeTax, $0.tax, $0.netAmount],
                Substring($0.feeRule))
        }.sorted()
        #expect(printed == onTopic)
        let reconciliation = lines.filter {
            $0.hasPrefix("= expected") || $0.hasPrefix("line bills") || $0.hasPrefix("merchants' gross")
        }.compactMap { $0.split(separator: " ").last.flatMap(number) }
        #expect(reconciliation == [gross, gross, gross])
    }

    /// Every settlement on `topic`, each id once.
    static func readSettlements(_ cluster: EmbeddedKafkaCluster, topic: String) async throws -> [SettlementMessage] {
        var configuration = KafkaConsumerConfiguration(
            bootstrapServers: cluster.bootstrapServerList, groupID: "demo-test")
        configuration.readBatchFill = .milliseconds(1)
        let consumer = try KafkaConsumer(configuration: configuration, logger: TestSystem.logger)
        let partition = KafkaTopicPartition(topic: topic, partition: 0)
        try await consumer.assign([partition: .beginning])
        let admin = try KafkaAdmin(
            settings: KafkaClientSettings(bootstrapServers: cluster.bootstrapServerList), logger: TestSystem.logger)
        let end = try await admin.highWatermarks([partition])[partition] ?? 0
        var settlements: [String: SettlementMessage] = [:]
        var next: KafkaOffset = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while next < end, ContinuousClock.now < deadline {
            for case .messages(let messages) in try await consumer.poll(timeout: .milliseconds(100)) {
                for message in messages {
                    let settlement = try JSONDecoder().decode(SettlementMessage.self, from: Data(message.value))
                    settlements[settlement.id] = settlement
                    next = message.offset + 1
                }
            }
        }
        await consumer.close()
        return Array(settlements.values)
    }
}
