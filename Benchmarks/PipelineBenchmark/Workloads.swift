import Authorization
import Billing
import Crypto
import Foundation
import Kafka
import Logging
import PostgresNIO
import Store

/// The charges every throughput phase sends: one-time charges of one merchant
/// spread over the lines, each with its own signed authorization. Signed once;
/// each phase has its own database, where every authorization is still unused.
struct Workload: Sendable {
    let lines: Int
    let requests: [ChargeRequest]
    let tokenIDs: [String]
    /// The signed authorizations, as the charges carry them.
    let tokens: [String]
    private let values: [[UInt8]]
    /// The merchant's message-signing key: every charge is signed with it when it is sent.
    let messageSigner = RequestSigner.generate(keyIDPrefix: "mk-")
    /// The workers' key-encryption key (base64), which the stored signing secret is sealed under.
    static let keyEncryptionKey = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()

    var count: Int { requests.count }

    init(charges: Int, lines: Int, signer: AuthorizationSigner) throws {
        self.lines = lines
        let expiry = Int64(Date().timeIntervalSince1970) + 6 * 3600
        var requests: [ChargeRequest] = []
        var tokens: [String] = []
        var signed: [String] = []
        var values: [[UInt8]] = []
        requests.reserveCapacity(charges)
        for index in 0..<charges {
            let line = String(format: "L%07d", index % lines)
            let amount = Int64(100 + index % 900)
            let request = ChargeRequest(
                merchantID: "m-bench", chargeID: ChargeID(rawValue: "c-\(index)"), lineID: LineID(rawValue: line),
                amount: Yen(amount), description: "bench item \(index % 50)")
            let tokenID = "t-\(index)"
            let token = try signer.token(
                for: PurchaseClaims(
                    tokenID: tokenID, lineID: line, merchantID: "m-bench", kind: "charge", amount: amount,
                    reference: request.chargeID.rawValue, expiresAt: expiry))
            requests.append(request)
            tokens.append(tokenID)
            signed.append(token)
            values.append(
                Array(
                    #"{"type":"charge","merchantId":"m-bench","chargeId":"\#(request.chargeID)","lineId":"\#(line)","amount":\#(amount),"description":"\#(request.description)","authorization":"\#(token)"}"#
                        .utf8))
        }
        self.requests = requests
        tokenIDs = tokens
        self.tokens = signed
        self.values = values
    }

    /// The charges as Kafka messages keyed by line, in order, signed now by the merchant.
    func messages(topic: String) -> [KafkaProducerMessage] {
        zip(requests, values).map { request, value in
            signed(KafkaProducerMessage(topic: topic, key: Array(request.lineID.rawValue.utf8), value: value))
        }
    }

    /// `message` with the merchant's signature headers, signed now.
    func signed(_ message: KafkaProducerMessage) -> KafkaProducerMessage {
        var message = message
        message.headers =
            messageSigner.headers(topic: message.topic, key: message.key, value: message.value).map {
                KafkaHeader(name: $0.name, text: $0.value)
            }
        return message
    }

    /// The lines (no spending limit) and the merchant.
    func load(_ database: DatabaseConfiguration, logger: Logger) async throws {
        let count = lines
        try await withPostgresClient(database, logger: logger) { client in
            let store = try await BillingStore.open(client: client, logger: logger)
            try await store.upsertMerchant(Merchant(id: "m-bench", name: "Benchmark"))
            let sealer = try SecretSealer(base64: Self.keyEncryptionKey)
            try await store.addSigningKey(
                keyID: messageSigner.keyID, owner: .merchant("m-bench"),
                sealedSecret: try sealer.seal(
                    messageSigner.secret,
                    boundTo: KeyOwner.merchant("m-bench").sealingContext(keyID: messageSigner.keyID)))
            try await store.importLines(
                (0..<count).map {
                    Line(id: LineID(rawValue: String(format: "L%07d", $0)), type: .hikariNext, spendingLimit: 0)
                }, openCycle: BillingCycle(containing: Int64(Date().timeIntervalSince1970)))
        }
    }
}

/// A month to close: `lines` lines with three one-time charges each from four
/// merchants, and a monthly subscription on every fourth line. Written with
/// set-based SQL in the database (what the charge path would have written
/// over the month), not through the workers: the phase measures the close.
/// The load ends vacuumed and checkpointed, like a month's data would be.
enum CloseWorkload {
    /// The merchants, and `lines` fibre lines `L0000000`… open in `cycle`, without a spending limit.
    static func addMerchantsAndLines(
        _ client: PostgresClient, merchants: [String], lines: Int, cycle: BillingCycle, logger: Logger
    ) async throws {
        let store = try await BillingStore.open(client: client, logger: logger)
        for merchant in merchants {
            try await store.upsertMerchant(Merchant(id: MerchantID(rawValue: merchant), name: merchant))
        }
        for start in stride(from: 0, to: lines, by: 200_000) {
            try await store.importLines(
                (start..<min(lines, start + 200_000)).map {
                    Line(id: LineID(rawValue: String(format: "L%07d", $0)), type: .hikariNext, spendingLimit: 0)
                }, openCycle: cycle)
        }
    }

    static func load(_ database: DatabaseConfiguration, lines: Int, cycle: BillingCycle, logger: Logger) async throws {
        try await withPostgresClient(database, logger: logger) { client in
            try await addMerchantsAndLines(
                client, merchants: ["m-points", "m-farm", "m-video", "m-fan"], lines: lines, cycle: cycle,
                logger: logger)
            let month = cycle.description
            _ = try await client.query(
                """
                INSERT INTO charges (line_id, merchant_id, charge_id, amount_yen, description, cycle, status)
                SELECT l.line_id, (ARRAY['m-points', 'm-farm', 'm-video', 'm-fan'])[1 + (n.n + substr(l.line_id, 2)::int) % 4],
                       'c-' || l.line_id || '-' || n.n, 100 + (substr(l.line_id, 2)::int * 7 + n.n * 131) % 900,
                       'bench item', \(month), 'active'
                FROM lines l CROSS JOIN generate_series(1, 3) AS n(n)
                """, logger: logger)
            _ = try await client.query(
                """
                INSERT INTO subscriptions (line_id, merchant_id, subscription_id, monthly_amount_yen, description, start_cycle)
                SELECT line_id, 'm-video', 's-' || line_id, 990, 'monthly plan', \(month)
                FROM lines WHERE substr(line_id, 2)::int % 4 = 0
                """, logger: logger)
            // Written over a month, these rows would have met autovacuum (hint
            // bits set, statistics known) and a checkpoint before the close:
            // do both now, so the close does not run beside them.
            _ = try await client.query("VACUUM ANALYZE", logger: logger)
            _ = try await client.query("CHECKPOINT", logger: logger)
        }
    }
}
