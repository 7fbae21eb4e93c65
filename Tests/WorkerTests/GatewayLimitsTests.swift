import Billing
import Foundation
import Gateway
import MatometeTestSupport
import Store
import Synchronization
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

@Suite("The gateway's bound on password checks")
struct PasswordCheckGateTests {
    /// A check that runs until the test lets it finish.
    final class Hold: Sendable {
        private let released = Mutex(false)
        func release() { released.withLock { $0 = true } }
        func wait() async {
            while !released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) }
        }
    }

    static func until(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TestFailure("the gate never got there") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("Beyond the running bound a check waits its turn; the queue full or the wait over, it is turned away unrun")
    func admission() async throws {
        let gate = PasswordCheckGate(maxConcurrent: 1, maxWaiting: 1, maxWait: .seconds(30))
        let first = Hold()
        let running = Task {
            await gate.run {
                await first.wait(); return "first"
            }
        }
        try await Self.until { gate.load == (1, 0) }
        let queued = Task { await gate.run { "queued" } }
        try await Self.until { gate.load == (1, 1) }
        // The queue holds one: a third check is turned away at once, without running.
        let ran = Mutex(false)
        #expect(await gate.run { ran.withLock { $0 = true } } == nil)
        #expect(!ran.withLock { $0 })
        // The first finishes: the waiting one gets its place.
        first.release()
        #expect(await running.value == "first")
        #expect(await queued.value == "queued")
        #expect(gate.load == (0, 0))

        // A waiter whose request is cancelled (its client gone) leaves the queue at once, unrun, long
        // before its 30 s wait would end.
        let third = Hold()
        let busy = Task {
            await gate.run {
                await third.wait(); return "busy"
            }
        }
        try await Self.until { gate.load == (1, 0) }
        let abandoned = Task { await gate.run { "abandoned" } }
        try await Self.until { gate.load == (1, 1) }
        abandoned.cancel()
        #expect(await abandoned.value == nil)
        #expect(gate.load == (1, 0))
        third.release()
        #expect(await busy.value == "busy")

        // A wait longer than the gate allows ends unrun, and frees its place in the queue.
        let brief = PasswordCheckGate(maxConcurrent: 1, maxWaiting: 4, maxWait: .milliseconds(100))
        let second = Hold()
        let holding = Task {
            await brief.run {
                await second.wait(); return 1
            }
        }
        try await Self.until { brief.load == (1, 0) }
        #expect(await brief.run { 2 } == nil)
        #expect(brief.load == (1, 0))
        second.release()
        #expect(await holding.value == 1)
        #expect(await brief.run { 3 } == 3)
    }
}

/// A TCP connection to a local port, written to by hand: for clients that
/// behave badly (send nothing, or their request a byte at a time).
final class RawConnection {
    let socket: Int32

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard socket >= 0, connected == 0 else { throw TestFailure("cannot connect to port \(port)") }
    }

    deinit { close(socket) }

    /// Sends `text`; false once the peer has closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } > 0
    }

    /// Whether the peer has closed the connection (read end of file or a reset).
    var isClosed: Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count == 0 { return true }
            if count < 0 { return errno != EAGAIN && errno != EWOULDBLOCK }
        }
    }
}

extension ScenarioTests {
    @Test("The gateway closes idle and drip-fed connections, and sheds password checks beyond its bound with 503 busy")
    func gatewayLimits() async throws {
        let system = try await TestSystem.start("gateway-limits")
        defer { Task { await system.shutDown() } }
        try await system.setUp(
            merchants: [Merchant(id: MerchantID(rawValue: "m-shop"), name: "Shop")],
            lines: [Line(id: LineID(rawValue: "L0000001"), type: .hikariNext)], openCycle: .september)
        let addresses = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID()).csv")
        try "line_id,prefixes\nL0000001,10.0.1.0/24\n".write(to: addresses, atomically: true, encoding: .utf8)
        #expect(try await Self.matomete(system, ["addresses", "import", addresses.path]).1 == 0)
        let issued = try await Self.matomete(
            system, ["credentials", "issue", "--line", "L0000001", "--purchase-id", "P-1", "--password-stdin"],
            input: "the secret 1")
        #expect(issued.1 == 0, "\(issued.0)")
        let port = try EmbeddedPostgres.freePort()
        let (gateway, _) = try Self.gateway(
            system, trustedProxies: "127.0.0.1/32", port: port,
            arguments: [
                "--idle-timeout-seconds", "1", "--request-read-timeout-seconds", "2", "--max-password-checks", "1",
                "--password-check-queue", "0",
            ])
        defer { gateway.terminate() }
        try await Self.waitUntilServing(port: port)

        // Idle, a head sent a line at a time, a body a byte at a time: each closed within seconds, unanswered.
        let idle = try RawConnection(port: port)
        let slowHead = try RawConnection(port: port)
        let slowBody = try RawConnection(port: port)
        slowHead.send("POST /v1/authorizations HTTP/1.1\r\n")
        slowBody.send(
            "POST /v1/authorizations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        )
        let deadline = ContinuousClock.now + .seconds(20)
        var step = 0
        while ![idle, slowHead, slowBody].allSatisfy(\.isClosed) && ContinuousClock.now < deadline {
            slowHead.send("X-Drip-\(step): y\r\n")
            slowBody.send(" ")
            step += 1
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(idle.isClosed, "an idle connection stays open")
        #expect(slowHead.isClosed, "a drip-fed head keeps its connection")
        #expect(slowBody.isClosed, "a drip-fed body keeps its connection")
        // Closed: a well-behaved client is still served.
        #expect(try await HTTP.get(port: port, path: "/livez").status == 200)

        // One password check at a time and none waiting: of 12 at once, those that find it taken are turned
        // away with 503 busy and Retry-After; the others are decided (wrong guesses: 403).
        let answers = try await withThrowingTaskGroup(of: (Int, String?, String).self) { group in
            for index in 0..<12 {
                group.addTask {
                    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/authorizations")!)
                    request.httpMethod = "POST"
                    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                    request.setValue("10.0.1.7", forHTTPHeaderField: "X-Forwarded-For")
                    request.httpBody = Data(
                        #"{"purchaseId":"P-guess\#(index)","password":"a guess","merchantId":"m-shop","kind":"charge","amount":500,"reference":"c-\#(index)"}"#
                            .utf8)
                    let (data, response) = try await URLSession.shared.data(for: request)
                    let http = response as? HTTPURLResponse
                    return (
                        http?.statusCode ?? 0, http?.value(forHTTPHeaderField: "Retry-After"),
                        String(decoding: data, as: UTF8.self)
                    )
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let busy = answers.filter { $0.0 == 503 }
        #expect(!busy.isEmpty, "12 checks at once with room for one: none shed")
        #expect(busy.allSatisfy { $0.1 == "2" && $0.2 == #"{"error":"busy"}"# }, "\(busy)")
        #expect(answers.allSatisfy { [403, 503].contains($0.0) }, "\(answers.map(\.0))")
        #expect(answers.contains { $0.0 == 403 })
        // A guess turned away was never checked: its count is taken back. The line counts only those checked.
        let counted = try await system.database.withClient { client in
            try await client.query(
                "SELECT failed_attempts FROM line_lockouts WHERE line_id = 'L0000001'", logger: TestSystem.logger
            ).collect().map { try $0.decode(Int.self) }
        }
        #expect(counted == [answers.count - busy.count])
        // The owner, guessed at meanwhile, still buys.
        let (_, owner) = try await HTTP.post(
            port: port, path: "/v1/authorizations",
            json: [
                "purchaseId": "P-1", "password": "the secret 1", "merchantId": "m-shop", "kind": "charge",
                "amount": 500, "reference": "c-owner",
            ],
            headers: ["X-Forwarded-For": "10.0.1.7"])
        #expect(owner == 201)
        let metrics = try await HTTP.get(port: port, path: "/metrics").body
        #expect(metrics.contains(#"matomete_authorizations_total{outcome="busy"} \#(busy.count)"#))
    }
}
