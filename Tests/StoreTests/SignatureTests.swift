import Authorization
import Foundation
import Kafka
import MatometeTestSupport
import Processing
import Store
import Testing

/// Who signed a request, decided before anything else is read from it
/// (`docs/merchants.md`, "Signing requests"): every way a signature can be
/// refused, with its code, and the signer checked against the sender.
@Suite("Signed requests")
struct SignatureTests {
    static let shop = RequestSigner.generate(keyIDPrefix: "mk-")
    static let shopNext = RequestSigner.generate(keyIDPrefix: "mk-")
    static let game = RequestSigner.generate(keyIDPrefix: "mk-")
    static let lineSystem = RequestSigner.generate(keyIDPrefix: "lk-")
    static let revoked = RequestSigner.generate(keyIDPrefix: "mk-")

    /// m-shop holds two valid keys (a rotation), m-game one, the line system one; `revoked` is in no ring.
    static let ring = SigningKeyRing([
        shop.keyID: .init(owner: .merchant("m-shop"), secret: shop.secret),
        shopNext.keyID: .init(owner: .merchant("m-shop"), secret: shopNext.secret),
        game.keyID: .init(owner: .merchant("m-game"), secret: game.secret),
        lineSystem.keyID: .init(owner: .lineSystem, secret: lineSystem.secret),
    ])

    /// The time Kafka gives every message here, in milliseconds.
    static let kafkaTime: Int64 = 1_796_000_000_000

    /// A cancellation worker's applier: preparing a message needs no database, applying it would.
    static func withApplier(_ body: @Sendable (RequestApplier) throws -> Void) async throws {
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withStore { store in
            try body(
                RequestApplier(
                    processor: RequestProcessor(store: store), group: "g",
                    accepts: [.chargeCancellation, .subscriptionCancellation, .lineTermination],
                    signatures: RequestSignatureVerifier(ring: ring, window: .seconds(300))))
        }
    }

    static let topic = "matomete.cancellations"
    static let cancelShop =
        #"{"type":"charge-cancel","merchantId":"m-shop","chargeId":"c-1","lineId":"L0000001"}"#
    static let termination = #"{"type":"line-termination","lineId":"L0000001"}"#

    /// `value` signed by `signer` at `signedAt` (Kafka's time by default), with its headers changed by `edit`.
    static func message(
        _ value: String, signedBy signer: RequestSigner?, signedAt: Int64 = kafkaTime, topic: String = topic,
        kafkaTime: Int64 = kafkaTime, edit: (inout [KafkaHeader]) -> Void = { _ in }
    ) -> KafkaConsumerMessage {
        var headers =
            signer?.headers(topic: topic, key: Array("L0000001".utf8), value: Array(value.utf8), timestamp: signedAt)
            .map { KafkaHeader(name: $0.name, text: $0.value) } ?? []
        edit(&headers)
        return KafkaConsumerMessage(
            topicPartition: KafkaTopicPartition(topic: Self.topic, partition: 0), offset: 0,
            key: ArraySlice("L0000001".utf8), value: ArraySlice(value.utf8), headers: headers,
            timestampMilliseconds: kafkaTime)
    }

    /// What became of `message`: `accepted` when it reaches the rules or
    /// their refusals, else the signature refusal's code.
    static func fate(of message: KafkaConsumerMessage, _ applier: RequestApplier) -> String {
        switch applier.prepare(message) {
        case .request, .refused: "accepted"
        case .deadLetter(let reason, _): "dead letter: \(reason)"
        case .unsigned(let failure, _): failure.refusal.code
        }
    }

    /// Each case: what it is, the message, and its fate.
    static let table: [(String, KafkaConsumerMessage, String)] = [
        ("signed with the merchant's key", message(cancelShop, signedBy: shop), "accepted"),
        ("its second key, during a rotation", message(cancelShop, signedBy: shopNext), "accepted"),
        ("a termination by the line system", message(termination, signedBy: lineSystem), "accepted"),
        ("no headers", message(cancelShop, signedBy: nil), "signature_missing"),
        (
            "no signature header",
            message(cancelShop, signedBy: shop) { $0.removeAll { $0.name == "matomete-signature" } },
            "signature_missing"
        ),
        (
            "a header twice",
            message(cancelShop, signedBy: shop) { $0.append($0[0]) }, "signature_missing"
        ),
        (
            "a key not in the ring: unknown, or revoked (revoked keys leave it)",
            message(cancelShop, signedBy: revoked), "signature_invalid"
        ),
        (
            "a timestamp with a leading zero (the text signed is the number as it prints)",
            message(cancelShop, signedBy: shop) { headers in
                headers = headers.map {
                    $0.name == "matomete-timestamp" ? KafkaHeader(name: $0.name, text: "0\(kafkaTime)") : $0
                }
            }, "signature_invalid"
        ),
        (
            "the largest timestamp, against Kafka's time now: far off, no overflow",
            message(cancelShop, signedBy: shop, signedAt: Int64.max), "signature_stale"
        ),
        (
            "signed at 0 with a Kafka time of Int64.max",
            message(cancelShop, signedBy: shop, signedAt: 0, kafkaTime: Int64.max), "signature_stale"
        ),
        (
            "the largest timestamp with a Kafka time of Int64.min: the difference overflows, out of any window",
            message(cancelShop, signedBy: shop, signedAt: Int64.max, kafkaTime: Int64.min), "signature_stale"
        ),
        (
            "the largest timestamp at the same Kafka time",
            message(cancelShop, signedBy: shop, signedAt: Int64.max, kafkaTime: Int64.max), "accepted"
        ),
        (
            "a forged signature under a valid key id",
            message(cancelShop, signedBy: RequestSigner(keyID: shop.keyID, secret: game.secret)),
            "signature_invalid"
        ),
        (
            "the value changed after signing",
            message(cancelShop, signedBy: shop) { headers in
                headers = shop.headers(
                    topic: topic, key: Array("L0000001".utf8), value: Array(termination.utf8), timestamp: kafkaTime
                ).map { KafkaHeader(name: $0.name, text: $0.value) }
            }, "signature_invalid"
        ),
        (
            "signed for another topic",
            message(cancelShop, signedBy: shop, topic: "matomete.charges"), "signature_invalid"
        ),
        (
            "a timestamp that is not decimal milliseconds",
            message(cancelShop, signedBy: shop) { headers in
                headers = headers.map {
                    $0.name == "matomete-timestamp" ? KafkaHeader(name: $0.name, text: "+1796000000000") : $0
                }
            }, "signature_invalid"
        ),
        (
            "a malformed signature",
            message(cancelShop, signedBy: shop) { headers in
                headers = headers.map {
                    $0.name == "matomete-signature" ? KafkaHeader(name: $0.name, text: "v1=zz") : $0
                }
            }, "signature_invalid"
        ),
        (
            "signed 300 s before Kafka's time", message(cancelShop, signedBy: shop, signedAt: kafkaTime - 300_000),
            "accepted"
        ),
        (
            "signed 300.001 s before: a replay outside the window",
            message(cancelShop, signedBy: shop, signedAt: kafkaTime - 300_001), "signature_stale"
        ),
        (
            "signed 300.001 s after",
            message(cancelShop, signedBy: shop, signedAt: kafkaTime + 300_001), "signature_stale"
        ),
        (
            "another merchant's valid key on m-shop's cancellation",
            message(cancelShop, signedBy: game), "signature_wrong_signer"
        ),
        ("a merchant's key on a line termination", message(termination, signedBy: shop), "signature_wrong_signer"),
        (
            "the line system's key on a merchant's cancellation",
            message(cancelShop, signedBy: lineSystem), "signature_wrong_signer"
        ),
        (
            "a request naming no merchant: no one to answer, dead-lettered as the decoder says",
            message(#"{"type":"charge-cancel","chargeId":"c-1","lineId":"L0000001"}"#, signedBy: shop),
            "dead letter: charge-cancel without a well-formed merchantId"
        ),
        (
            "signed, but not a request: judged as one would be",
            message("not json", signedBy: game), "dead letter: not strict JSON: not JSON"
        ),
    ]

    @Test("Every refusal, with its code; a rotation's two keys both valid")
    func refusals() async throws {
        try await Self.withApplier { applier in
            for (name, message, expected) in Self.table {
                let fate = Self.fate(of: message, applier)
                #expect(fate.hasPrefix(expected), "\(name): \(fate)")
            }
        }
    }

    @Test("A refusal's reason names the code first, then what is wrong")
    func reasons() async throws {
        try await Self.withApplier { applier in try Self.reasons(applier) }
    }

    static func reasons(_ applier: RequestApplier) throws {
        guard case .unsigned(let failure, _) = applier.prepare(message(cancelShop, signedBy: game)) else {
            Issue.record("another merchant's key must be refused")
            return
        }
        #expect(
            failure.reason
                == "signature_wrong_signer: signed with a key of merchant m-game; the request is from merchant m-shop")
        guard
            case .unsigned(let stale, _) = applier.prepare(
                message(cancelShop, signedBy: shop, signedAt: kafkaTime - 600_000))
        else {
            Issue.record("a signature ten minutes old must be refused")
            return
        }
        #expect(stale.reason.hasPrefix("signature_stale: signed at 1795999400000 ms, 600 s from the message's time"))
    }
}
