import Contract
import Foundation
import Kafka
import Logging
import PostgresNIO
import Store
import Synchronization

/// Worker processes started from the executables built next to this one, each
/// pointed at one topic prefix and one database.
final class Workers: @unchecked Sendable {
    // @unchecked Sendable: `processes` is only touched from the benchmark's task.
    struct Running {
        var name: String
        var process: Process
        var port: Int
    }

    let environment: [String: String]
    let logDirectory: URL
    private(set) var processes: [Running] = []

    init(bootstrapServers: String, database: DatabaseConfiguration, prefix: String, keys: String, logs: URL) {
        var environment = ProcessInfo.processInfo.environment
        environment["MATOMETE_BOOTSTRAP_SERVERS"] = bootstrapServers
        environment["MATOMETE_DATABASE_URL"] = database.url
        environment["MATOMETE_TOPIC_PREFIX"] = prefix
        environment["MATOMETE_AUTHORIZATION_KEYS"] = keys
        environment["MATOMETE_KEY_ENCRYPTION_KEY"] = Workload.keyEncryptionKey
        environment["MATOMETE_ALLOW_EARLY_CLOSE"] = "true"
        // Warnings only, unless the caller asks for more (MATOMETE_LOG_LEVEL=info
        // with --keep-logs to follow rebalances).
        environment["MATOMETE_LOG_LEVEL"] = environment["MATOMETE_LOG_LEVEL"] ?? "warning"
        // As `matomete dev` runs them: the mock brokers hold a fetch that finds
        // nothing for the whole wait.
        environment["MATOMETE_FETCH_WAIT_MS"] = "5"
        self.environment = environment
        logDirectory = logs
    }

    func launch(_ name: String, arguments: [String] = []) throws {
        let port = try EmbeddedPostgres.freePort()
        let process = Process()
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.executableURL = me.deletingLastPathComponent().appendingPathComponent(name)
        process.arguments = arguments
        var environment = self.environment
        environment["MATOMETE_HTTP_ADDRESS"] = "127.0.0.1:\(port)"
        process.environment = environment
        let log = logDirectory.appendingPathComponent("\(name)-\(processes.count).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        processes.append(Running(name: name, process: process, port: port))
        Self.launched.withLock { $0.append(process) }
    }

    /// Every process launched in this run, for ``killAll()``.
    private static let launched = Mutex<[Process]>([])

    /// SIGKILL to every process launched in this run that may still run: a
    /// failed run leaves no worker behind.
    static func killAll() {
        launched.withLock { processes in
            for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    /// Waits until every process answers 200 on /healthz.
    func waitUntilReady() async throws {
        let deadline = ContinuousClock.now + .seconds(90)
        for entry in processes {
            while !(await healthy(port: entry.port)) {
                guard entry.process.isRunning, ContinuousClock.now < deadline else {
                    throw BenchError("\(entry.name) did not become ready; see \(logDirectory.path)")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Peak resident memory (VmHWM) of each running process, in MiB, by name.
    func peakMemory() -> [(String, Double)] {
        processes.compactMap { entry in
            guard
                let status = try? String(
                    contentsOfFile: "/proc/\(entry.process.processIdentifier)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
            else { return nil }
            return (entry.name, kilobytes / 1024)
        }
    }

    /// SIGTERM to every process; waits for them.
    func stop() async {
        for entry in processes where entry.process.isRunning { entry.process.terminate() }
        for entry in processes {
            let deadline = ContinuousClock.now + .seconds(30)
            while entry.process.isRunning, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if entry.process.isRunning { kill(entry.process.processIdentifier, SIGKILL) }
        }
        processes.removeAll()
    }

    private func healthy(port: Int) async -> Bool {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { return false }
        let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        _ = request.withCString { send(socket, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = recv(socket, &buffer, buffer.count, 0)
        return count > 12 && String(decoding: buffer[0..<count], as: UTF8.self).contains(" 200 ")
    }
}

/// Creates Matomete's topics under `prefix` on the embedded cluster.
func createTopics(_ cluster: EmbeddedKafkaCluster, prefix: String, partitions: Int) throws -> Topics {
    let topics = Topics(prefix: prefix)
    for topic in [
        topics.charges, topics.cancellations, topics.merchantResults("m-bench"), topics.lineSystemResults,
        topics.lineBills,
    ] {
        try cluster.createTopic(topic, partitions: partitions)
    }
    for topic in [topics.billingCycles, topics.settlements, topics.merchantSettlements("m-bench"), topics.deadLetters] {
        try cluster.createTopic(topic, partitions: 1)
    }
    return topics
}

/// A fresh migrated database on the benchmark's server.
func freshDatabase(
    _ server: EmbeddedPostgres, name: String, partitions: Int, logger: Logger
) async throws -> DatabaseConfiguration {
    try await withPostgresClient(server.configuration, logger: logger) { client in
        // The name is a constant of this program, not input.
        _ = try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
    }
    let database = server.configuration.with(database: name)
    try await withPostgresClient(database, logger: logger) {
        try await Migrator().migrate($0, partitions: partitions, logger: logger)
    }
    return database
}

/// Drops the databases of finished phases and writes every dirty page out, so
/// a phase does not pay for the last one's checkpoint and autovacuum.
func settle(_ server: EmbeddedPostgres, dropping names: [String], logger: Logger) async throws {
    try await withPostgresClient(server.configuration, logger: logger) { client in
        for name in names {
            // The names are constants of this program, not input.
            _ = try await client.query(
                PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
        }
        _ = try await client.query("CHECKPOINT", logger: logger)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
