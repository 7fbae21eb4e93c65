import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A private, throwaway PostgreSQL server: `initdb` and `pg_ctl` from the
/// installed server binaries, in a scratch directory, on loopback.
///
/// Tests and `matomete dev` use it. PostgreSQL refuses to run as root, so when
/// this process is root the server runs as the `postgres` user (or `nobody`).
public final class EmbeddedPostgres: Sendable {
    /// Where clients connect: database `postgres`, user `matomete` with a
    /// random password (SCRAM-SHA-256), on loopback only. No local user is
    /// trusted: the socket (peer authentication, and no OS user is named
    /// `matomete`) takes nobody; `pg_ctl` only pings it.
    public let configuration: DatabaseConfiguration
    /// The scratch directory holding the data, the socket and the server log.
    public let directory: URL
    private let binaries: URL
    private let runAs: String?
    private let logger: Logger

    private init(configuration: DatabaseConfiguration, directory: URL, binaries: URL, runAs: String?, logger: Logger) {
        self.configuration = configuration
        self.directory = directory
        self.binaries = binaries
        self.runAs = runAs
        self.logger = logger
    }

    /// Initialises and starts a server in a new scratch directory (or in
    /// `directory`, reusing its data if it holds some).
    ///
    /// - Parameter durable: `false` (the default) turns off `fsync` and
    ///   synchronous commit: fast, and fine for data that is thrown away.
    /// - Parameter stopWhenProcessExits: also start a small watchdog that stops
    ///   the server and removes its directory when this process exits, however
    ///   it exits (even `SIGKILL`).
    public static func start(
        directory: URL? = nil, durable: Bool = false, stopWhenProcessExits: Bool = false, logger: Logger
    ) async throws -> EmbeddedPostgres {
        let binaries = try findBinaries()
        let directory =
            directory
            ?? URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
                "matomete-pg-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let data = directory.appendingPathComponent("data")
        let fresh = !FileManager.default.fileExists(atPath: data.appendingPathComponent("PG_VERSION").path)
        // The password lives beside the data, readable by this user only (a kept directory reuses it).
        let passwordFile = directory.appendingPathComponent("password")
        let password: String
        if !fresh {
            // Data from before passwords trusted every local user: refused rather than left open.
            guard let kept = try? String(contentsOf: passwordFile, encoding: .utf8) else {
                throw StoreError(
                    .unavailable,
                    "\(directory.path) holds a database without a password file (made by an earlier version, which "
                        + "trusted every local user); remove the directory to start afresh")
            }
            password = kept
        } else {
            var generator = SystemRandomNumberGenerator()
            password = (0..<32).map { _ in String(UInt8.random(in: 0...15, using: &generator), radix: 16) }.joined()
            guard
                FileManager.default.createFile(
                    atPath: passwordFile.path, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
            else { throw StoreError(.unavailable, "cannot write \(passwordFile.path)") }
        }
        let runAs = getuid() == 0 ? unprivilegedUser() : nil
        let serverFile = directory.appendingPathComponent("initdb-password")
        if fresh {
            // initdb reads the password from a file; the server's user must be able to, for that moment.
            guard
                FileManager.default.createFile(
                    atPath: serverFile.path, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
            else { throw StoreError(.unavailable, "cannot write \(serverFile.path)") }
        }
        if let runAs {
            try runProcess("/bin/chown", [runAs, directory.path])
            if fresh { try runProcess("/bin/chown", [runAs, serverFile.path]) }
            if FileManager.default.fileExists(atPath: data.path) {
                try runProcess("/bin/chown", ["-R", runAs, data.path])
            }
        }
        let server = EmbeddedPostgres(
            configuration: DatabaseConfiguration(
                host: "127.0.0.1", port: try freePort(), username: "matomete", password: password,
                database: "postgres"),
            directory: directory, binaries: binaries, runAs: runAs, logger: logger)
        if fresh {
            defer { try? FileManager.default.removeItem(at: serverFile) }
            try await server.run(
                "initdb",
                [
                    "-D", data.path, "-U", "matomete", "--pwfile=\(serverFile.path)", "--auth-host=scram-sha-256",
                    "--auth-local=peer", "--encoding=UTF8", "--locale=C", "-N",
                ])
        }
        var options = [
            "-p \(server.configuration.port)", "-k \(directory.path)", "-c listen_addresses=127.0.0.1",
            "-c max_connections=200", "-c shared_buffers=256MB",
        ]
        if !durable { options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"] }
        try await server.run(
            "pg_ctl",
            [
                "-D", data.path, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "60", "-o",
                options.joined(separator: " "), "start",
            ])
        if stopWhenProcessExits { try server.startWatchdog() }
        logger.info(
            "Embedded PostgreSQL started",
            metadata: ["postgres.address": "\(server.configuration)", "postgres.directory": "\(directory.path)"])
        return server
    }

    /// Stops the server (fast shutdown: open transactions roll back) and, unless
    /// `keepData`, removes the scratch directory.
    public func stop(keepData: Bool = false) async throws {
        if keepData {
            // The watchdog, when there is one, leaves the directory alone too.
            _ = FileManager.default.createFile(
                atPath: directory.appendingPathComponent(Self.keepMarker).path, contents: nil)
        }
        try await run("pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-m", "fast", "-w", "stop"])
        if !keepData { try? FileManager.default.removeItem(at: directory) }
        logger.info("Embedded PostgreSQL stopped", metadata: ["postgres.address": "\(configuration)"])
    }

    /// Restarts the server on the same port: every connection is cut.
    public func restart() async throws {
        let data = directory.appendingPathComponent("data").path
        try await run("pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "60", "restart"])
    }

    /// Left in the scratch directory by ``stop(keepData:)`` with `keepData`:
    /// the watchdog then does not remove it.
    private static let keepMarker = "keep"

    /// A shell loop that waits for this process to end, then stops the server
    /// at once and removes the scratch directory (unless it was stopped
    /// keeping its data).
    private func startWatchdog() throws {
        let pgCtl = binaries.appendingPathComponent("pg_ctl").path
        let data = directory.appendingPathComponent("data").path
        let stop = (runAs.map { "/usr/sbin/runuser -u \($0) -- " } ?? "") + "'\(pgCtl)' -D '\(data)' -m immediate stop"
        let script = """
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            \(stop) >/dev/null 2>&1
            [ -e '\(directory.appendingPathComponent(Self.keepMarker).path)' ] || rm -rf '\(directory.path)'
            """
        let watchdog = Process()
        watchdog.executableURL = URL(fileURLWithPath: "/bin/sh")
        watchdog.arguments = ["-c", script]
        watchdog.standardOutput = FileHandle.nullDevice
        watchdog.standardError = FileHandle.nullDevice
        try watchdog.run()
    }

    /// Runs a server binary (as the unprivileged user when root), off the
    /// cooperative thread pool.
    private func run(_ tool: String, _ arguments: [String]) async throws {
        let executable = binaries.appendingPathComponent(tool).path
        let runAs = self.runAs
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                do {
                    if let runAs {
                        try runProcess("/usr/sbin/runuser", ["-u", runAs, "--", executable] + arguments)
                    } else {
                        try runProcess(executable, arguments)
                    }
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// The newest installed server's `bin` directory.
    private static func findBinaries() throws -> URL {
        var candidates: [URL] = []
        if let environment = ProcessInfo.processInfo.environment["MATOMETE_POSTGRES_BIN"] {
            candidates.append(URL(fileURLWithPath: environment))
        }
        let debian = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: debian.path)) ?? []
        candidates += versions.compactMap(Int.init).sorted(by: >).map {
            debian.appendingPathComponent("\($0)/bin")
        }
        candidates += ["/opt/homebrew/bin", "/usr/local/bin", "/usr/bin"].map(URL.init(fileURLWithPath:))
        for candidate in candidates
        where FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("initdb").path) {
            return candidate
        }
        throw StoreError(
            .unavailable,
            "no PostgreSQL server binaries (initdb) found; install the postgresql package or set MATOMETE_POSTGRES_BIN")
    }

    private static func unprivilegedUser() -> String {
        getpwnam("postgres") != nil ? "postgres" : "nobody"
    }

    /// A TCP port on loopback that is free right now.
    public static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw StoreError(.unavailable, "cannot open a socket") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else { throw StoreError(.unavailable, "cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Runs a program to completion; throws with its output when it fails.
///
/// Uses `posix_spawn` and a blocking `waitpid` (callers run it on a thread of
/// its own): Foundation's `Process` did not always notice that `runuser`
/// ended. Output goes to a temporary file, not a pipe, because `pg_ctl start`
/// leaves a server running that could inherit a pipe and keep it open.
private func runProcess(_ executable: String, _ arguments: [String]) throws {
    let outputPath = NSTemporaryDirectory() + "matomete-\(UUID().uuidString).out"
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // Start in a directory every user may enter (the server may run as another user).
    let argv = ["/bin/sh", "-c", "cd / && exec \"$0\" \"$@\"", executable] + arguments
    var cArguments = argv.map { strdup($0) }
    cArguments.append(nil)
    defer { cArguments.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/bin/sh", &actions, nil, &cArguments, environ)
    guard spawned == 0 else {
        throw StoreError(.unavailable, "cannot start \(executable): \(String(cString: strerror(spawned)))")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    guard exitCode == 0 else {
        let name = URL(fileURLWithPath: executable).lastPathComponent
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        throw StoreError(.unavailable, "\(name) failed with status \(exitCode): \(text.suffix(2000))")
    }
}
