import ArgumentParser
import Foundation
import Kafka
import Store

/// How the tool ends, for scripts (sysexits.h): 0 done, 1 not done (see the
/// message), 64 bad usage, 65 bad input data, 69 Kafka or PostgreSQL not
/// reachable, 75 still running when the wait ended (try again later).
enum Exit {
    static let dataError = ExitCode(65)
    static let unavailable = ExitCode(69)
    static let tryLater = ExitCode(75)

    /// Runs an operator command: a store or Kafka error becomes one line on
    /// standard error and the exit code that says what kind it was.
    static func mapping<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            complain(error.message)
            switch error.code {
            case .unavailable: throw unavailable
            case .invalidInput: throw dataError
            default: throw ExitCode.failure
            }
        } catch let error as KafkaError {
            complain("Kafka: \(error.message)")
            throw [.timedOut, .messageTimedOut, .transport, .allBrokersDown].contains(error.code)
                ? unavailable : ExitCode.failure
        }
    }

    static func complain(_ text: String) { FileHandle.standardError.write(Data("matomete: \(text)\n".utf8)) }
}

/// `--json`: the result as one JSON document on standard output instead of tables.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON (for scripts) instead of tables.") var json = false

    func print<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        say(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}

/// A one-line progress bar on standard output.
struct ProgressBar {
    /// What the numbers count.
    enum Unit {
        /// Things, shown as they are: `1,200/3,000`.
        case items
        /// Bytes read of a file, shown in KiB or MiB: `1.2 MiB/3.0 MiB`.
        case bytes
    }

    let title: String
    let total: Int
    let unit: Unit
    private var done = 0

    init(title: String, total: Int, unit: Unit = .items) {
        self.title = title
        self.total = max(total, 1)
        self.unit = unit
        draw()
    }

    /// Marks all of it done.
    mutating func complete() { set(total) }

    mutating func advance(by count: Int) { set(done + count) }

    mutating func set(_ value: Int) {
        guard value != done else { return }
        done = value
        draw()
    }

    func finish() {
        if Self.interactive {
            writeOut("\n")
        } else {
            say("\(title) … \(amount(done))/\(amount(total))")
        }
    }

    /// Redrawn in place on a terminal; one line at the end otherwise (logs, pipes).
    private static let interactive = isatty(STDOUT_FILENO) != 0

    private func draw() {
        guard Self.interactive else { return }
        let width = 30
        let filled = width * done / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let line =
            "\r\(title.padding(toLength: 28, withPad: " ", startingAt: 0)) \(bar) \(amount(done))/\(amount(total))"
        writeOut(line)
    }

    private func amount(_ value: Int) -> String {
        switch unit {
        case .items: return value.formatted()
        case .bytes:
            if total < 1 << 20 { return String(format: "%.1f KiB", Double(value) / 1024) }
            return String(format: "%.1f MiB", Double(value) / 1_048_576)
        }
    }
}

func say(_ text: String) { writeOut(text + "\n") }

/// Writes `text` to standard output whole. When the reader has gone (`matomete
/// status | head -1`), the tool ends at once, quietly, with 141 — what a shell
/// reports for a process ended by SIGPIPE — instead of crashing in
/// `FileHandle` (the process ignores SIGPIPE, as its network libraries need).
func writeOut(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            exit(errno == EPIPE ? 141 : 74)
        }
        bytes = bytes.dropFirst(written)
    }
}

/// A table with columns padded to their widest cell; numbers right-aligned.
func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    func format(_ row: [String]) -> String {
        let line = row.enumerated().map { column, cell in
            let pad = String(repeating: " ", count: widths[column] - cell.count)
            return column == 0 || cell.first?.isLetter == true ? cell + pad : pad + cell
        }.joined(separator: "  ")
        return String(line.reversed().drop { $0 == " " }.reversed())
    }
    say(format(header))
    say(widths.map { String(repeating: "─", count: $0) }.joined(separator: "  "))
    for row in rows { say(format(row)) }
}
