import Foundation
import Kafka
import MatometeTestSupport
import Store
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

extension ScenarioTests {
    @Test("Not ready without a database; alive; stops on SIGTERM with exit 0 even while waiting")
    func readinessWithoutDatabase() async throws {
        let cluster = try EmbeddedKafkaCluster(brokers: 1, logger: TestSystem.logger)
        let process = Process()
        process.executableURL = try Processes.builtExecutable("charge-worker")
        let port = try EmbeddedPostgres.freePort()
        // Nothing listens on this database port.
        let unreachable = try EmbeddedPostgres.freePort()
        process.arguments = [
            "--bootstrap-servers", cluster.bootstrapServers, "--http-address", "127.0.0.1:\(port)",
            "--log-level", "critical",
        ]
        process.environment = [
            "MATOMETE_DATABASE_URL": "postgres://matomete:secret@127.0.0.1:\(unreachable)/nowhere",
            "MATOMETE_AUTHORIZATION_KEYS": TestKeys.acceptedKeys,
            "MATOMETE_KEY_ENCRYPTION_KEY": TestKeys.keyEncryptionKey,
        ]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        var health = ""
        var status = 0
        for _ in 0..<50 {
            if let answer = try? await HTTP.get(port: port, path: "/healthz") {
                (health, status) = answer
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status == 503)
        #expect(health.contains(#""database":{"ok":false"#))
        #expect(try await HTTP.get(port: port, path: "/livez").status == 200)
        process.terminate()
        #expect(try await Processes.waitForExit(process, within: .seconds(15)))
        #expect(process.terminationStatus == 0)
        let logged = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(!logged.contains("secret"), "the password never appears in the output")
    }

    @Test("--help explains every option; a bad option exits with a usage error")
    func help() async throws {
        for name in TestSystem.Role.allCases.map(\.rawValue) {
            let (output, status) = try await Self.run(name, ["--help"])
            #expect(status == 0)
            for option in [
                "--bootstrap-servers", "MATOMETE_DATABASE_URL", "--kafka", "--http-address", "--batch-size",
                "--database-connections", "--fetch-wait-ms",
            ] {
                #expect(output.contains(option), "\(name) --help mentions \(option)")
            }
        }
        for (name, option, message) in [
            ("charge-worker", "--batch-size", "batch size"),
            ("charge-worker", "--database-connections", "database connections must be 1 to 200"),
            ("charge-worker", "--fetch-wait-ms", "fetch wait must be 1 to 10000 ms"),
            ("billing-cycle-worker", "--close-concurrency", "--close-concurrency must be 1 to 32"),
            ("billing-cycle-worker", "--consumption-tax", #""0" is not MONTH=PERCENT"#),
            ("cancellation-worker", "--signature-window-seconds", "signature window must be 1 to 86400 s"),
            ("cancellation-worker", "--signing-key-refresh-seconds", "signing-key refresh must be 1 to 3600 s"),
        ] {
            let (output, status) = try await Self.run(name, [option, "0"])
            #expect(status == 64, "\(name) \(option) 0 is a usage error")
            #expect(output.contains(message), "\(name) \(option) 0 says why")
        }
        // The staff sites: their own options, and bounds on their session timeouts.
        for site in ["merchant-site", "support-desk"] {
            let (siteHelp, siteHelpStatus) = try await Self.run(site, ["--help"])
            #expect(siteHelpStatus == 0)
            for option in [
                "--database-url", "MATOMETE_DATABASE_URL", "--http-address", "--plain-http", "--idle-minutes",
                "--session-hours", "--log-level", "--bootstrap-servers", "--key-encryption-key-file",
            ] {
                #expect(siteHelp.contains(option), "\(site) --help mentions \(option)")
            }
            for (option, message) in [
                ("--idle-minutes", "The idle timeout must be 1 to 1440 minutes"),
                ("--session-hours", "The session length must be 1 to 168 hours"),
            ] {
                let (output, status) = try await Self.run(site, [option, "0"])
                #expect(status == 64, "\(site) \(option) 0 is a usage error")
                #expect(output.contains(message), "\(site) \(option) 0 says why: \(output)")
            }
        }
        let (noKeys, noKeysStatus) = try await Self.run("charge-worker", [])
        #expect(noKeysStatus == 64, "a charge worker without the gateway's keys does not start")
        #expect(noKeys.contains("MATOMETE_AUTHORIZATION_KEYS"))
        let (noSealer, noSealerStatus) = try await Self.run("cancellation-worker", [])
        #expect(noSealerStatus == 64, "a cancellation worker that cannot open the signing keys does not start")
        #expect(noSealer.contains("MATOMETE_KEY_ENCRYPTION_KEY"))
    }

    private static func run(_ name: String, _ arguments: [String]) async throws -> (String, Int32) {
        let process = Process()
        process.executableURL = try Processes.builtExecutable(name)
        process.arguments = arguments
        process.environment = [
            "MATOMETE_BOOTSTRAP_SERVERS": "127.0.0.1:1", "MATOMETE_DATABASE_URL": "postgres://u@127.0.0.1:1/d",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        _ = try await Processes.waitForExit(process, within: .seconds(10))
        return (text, process.terminationStatus)
    }
}
