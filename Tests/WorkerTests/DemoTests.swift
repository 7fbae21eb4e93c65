import Foundation
import MatometeTestSupport
import Testing

extension ScenarioTests {
    /// `matomete demo`, as the README's first command runs it, smaller.
    @Test("matomete demo runs a month end to end; its table follows the fee rule and every yen reconciles")
    func demo() async throws {
        let process = Process()
        process.executableURL = try Processes.builtExecutable("matomete")
        process.arguments = ["demo", "--lines", "1000", "--buyers", "100", "--purchases", "300"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        _ = try await Processes.waitForExit(process, within: .seconds(240))
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("Every yen reconciles."))

        // The settlement table: merchant, lines, gross, average, rule, fee, net.
        func number(_ cell: Substring) -> Int64? { Int64(cell.replacingOccurrences(of: ",", with: "")) }
        let lines = text.split(separator: "\n")
        let start = try #require(lines.firstIndex { $0.hasPrefix("merchant") })
        var rows: [[Substring]] = []
        for line in lines[(start + 2)...] {
            if line.hasPrefix("total") || line.isEmpty { break }
            // The name may hold spaces: the six figures are the last fields.
            let fields = line.split(separator: " ")
            rows.append(Array(fields.suffix(6)))
        }
        #expect(rows.count == 4, "one row per merchant")
        var gross: Int64 = 0
        for row in rows {
            let (lineCount, rowGross, average, rule, fee, net) = (
                try #require(number(row[0])), try #require(number(row[1])), try #require(number(row[2])), row[3],
                try #require(number(row[4])), try #require(number(row[5]))
            )
            #expect(average == rowGross / lineCount)
            let perLine = rowGross < 600 * lineCount
            #expect(rule == (perLine ? "per-line" : "percentage"))
            #expect(fee == (perLine ? 315 * lineCount / 10 : rowGross * 500 / 10_000))
            #expect(net == rowGross - fee)
            gross += rowGross
        }
        let reconciliation = lines.filter {
            $0.hasPrefix("= expected") || $0.hasPrefix("line bills") || $0.hasPrefix("merchants' gross")
        }.compactMap { $0.split(separator: " ").last.flatMap(number) }
        #expect(reconciliation == [gross, gross, gross])
    }
}
