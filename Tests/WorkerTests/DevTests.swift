import Foundation
import MatometeTestSupport
import PostgresNIO
import Store
import Testing

extension ScenarioTests {
    @Test(
        "matomete dev starts everything, every process is ready, and Ctrl-C stops it all and cleans up (with --keep: keeps the logs and the database)",
        arguments: [false, true])
    func dev(keep: Bool) async throws {
        let process = Process()
        process.executableURL = try Processes.builtExecutable("matomete")
        process.arguments = keep ? ["dev", "--keep"] : ["dev"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        var text = ""
        let deadline = ContinuousClock.now + .seconds(120)
        while !text.contains("Ready."), ContinuousClock.now < deadline, process.isRunning {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        #expect(text.contains("Ready."), "\(text)")
        let ports = text.split(separator: "\n").compactMap { line -> Int? in
            guard !line.hasPrefix("Merchant site:"), !line.hasPrefix("Support desk:"),
                let range = line.range(of: "http://127.0.0.1:")
            else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        #expect(
            ports.count == 9,
            "two charge workers, one of each other worker (collection included), the gateway, the merchant site and the support desk"
        )
        #expect(text.contains("Merchant site: http://127.0.0.1:"), "the site's address")
        #expect(text.contains("log in as admin@demo-shop.example, password "), "the site's demo login")
        #expect(text.contains("Support desk: http://127.0.0.1:"), "the desk's address")
        #expect(text.contains("log in as agent@support.example, password "), "the desk's demo agent")
        for port in ports { #expect(try await HTTP.get(port: port, path: "/healthz").status == 200) }
        let logs = text.split(separator: "\n").first { $0.hasPrefix("Logs: ") }.map { String($0.dropFirst(6)) }
        let pids = text.split(separator: "\n").compactMap { line -> Int32? in
            let fields = line.split(separator: " ")
            return fields.count > 2 && ports.contains(where: { line.contains(":\($0)/") }) ? Int32(fields[1]) : nil
        }
        #expect(pids.count == 9)
        // The private signing key is in the gateway's environment only; the logs are the user's alone.
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 2, let pid = Int32(fields[1]), pids.contains(pid) else { continue }
            let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            let hasKey = String(decoding: environ, as: UTF8.self).contains("MATOMETE_SIGNING_KEY=")
            #expect(hasKey == (fields[0] == "auth-gateway"), "\(fields[0]): signing key in its environment: \(hasKey)")
        }
        // The database takes its password only (it used to trust every local user); its directory is its own.
        let url = try #require(
            text.split(separator: "\n").first { $0.hasPrefix("MATOMETE_DATABASE_URL=") }.map {
                String($0.dropFirst("MATOMETE_DATABASE_URL=".count))
            })
        let database = try DatabaseConfiguration(url: url)
        #expect(database.password?.count == 32)
        func connect(password: String?) async throws {
            let connection = try await PostgresConnection.connect(
                configuration: PostgresConnection.Configuration(
                    host: database.host, port: database.port, username: database.username, password: password,
                    database: database.database, tls: .disable),
                id: 1, logger: TestSystem.logger)
            try await connection.close()
        }
        try await connect(password: database.password)
        await #expect(throws: (any Error).self) { try await connect(password: nil) }
        await #expect(throws: (any Error).self) { try await connect(password: "not the password") }
        if let logs {
            for (path, expected) in [("", 0o711), ("/postgres", 0o700), ("/postgres/password", 0o600)] {
                let mode = (try? FileManager.default.attributesOfItem(atPath: logs + path)[.posixPermissions]) as? Int
                #expect(mode == expected, "\(logs + path): \(String(mode ?? 0, radix: 8))")
            }
            let files =
                (try? FileManager.default.contentsOfDirectory(atPath: logs))?.filter { $0.hasSuffix(".log") } ?? []
            #expect(!files.isEmpty)
            for file in files {
                let mode =
                    (try? FileManager.default.attributesOfItem(atPath: logs + "/" + file)[.posixPermissions]) as? Int
                #expect(mode == 0o600, "\(file): \(String(mode ?? 0, radix: 8))")
            }
        }

        kill(process.processIdentifier, SIGINT)
        #expect(try await Processes.waitForExit(process, within: .seconds(60)))
        #expect(process.terminationStatus == 0)
        for pid in pids { #expect(kill(pid, 0) != 0, "process \(pid) stopped") }
        let logDirectory = try #require(logs)
        guard keep else {
            #expect(!FileManager.default.fileExists(atPath: logDirectory), "the scratch directory is removed")
            return
        }
        // The database's watchdog has a second to notice this process ended; it must leave the data alone.
        try await Task.sleep(for: .seconds(3))
        let scratch = URL(fileURLWithPath: logDirectory)
        let version = scratch.appendingPathComponent("postgres/data/PG_VERSION").path
        #expect(FileManager.default.fileExists(atPath: version), "the database is kept")
        try? FileManager.default.removeItem(at: scratch)
    }
}
