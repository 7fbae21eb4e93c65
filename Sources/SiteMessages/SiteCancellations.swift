import Authorization
import Billing
import Contract
import Foundation
import Kafka
import Logging
import ServerKit
import Store

/// Sends the cancellations staff ask for on a site (a merchant's admin on the merchants' site, an agent on the
/// support desk on the line user's behalf) to the cancellations topic, exactly as the merchant's own system would:
/// the same JSON, keyed by the line, signed with the merchant's newest valid key (`docs/merchants.md`, "Signing
/// requests"). The worker that owns the line applies it and answers on the merchant's results topic; the sites
/// show that answer once it is stored.
public struct SiteCancellations: Sendable {
    /// What the site asks to cancel.
    public enum Target: String, Sendable {
        /// A one-time charge, by its `chargeId`.
        case charge
        /// A subscription, by its `subscriptionId`.
        case subscription

        var requestKind: RequestKind { self == .charge ? .chargeCancellation : .subscriptionCancellation }
        var idField: String { self == .charge ? "chargeId" : "subscriptionId" }
    }

    /// Why a cancellation could not be sent.
    public enum Failure: Error, Sendable {
        /// The merchant holds no valid signing key (or none opens with this key-encryption key).
        case noSigningKey
        /// Kafka did not take the message.
        case notDelivered(String)
    }

    let producer: KafkaProducer
    let topic: String
    let sealer: SecretSealer
    let logger: Logger

    /// Sends to `topics.cancellations` through `producer`, opening the merchants' keys with `sealer`.
    public init(producer: KafkaProducer, topics: Topics, sealer: SecretSealer, logger: Logger) {
        self.producer = producer
        self.topic = topics.cancellations
        self.sealer = sealer
        self.logger = logger
    }

    /// A site's cancellations on `connection`, with the producer that sends them (run it as a service): named
    /// `clientID`, each message sent at once (1 ms linger) and given up after 30 seconds; the merchants' keys opened
    /// with `sealer`.
    public static func start(
        _ connection: KafkaConnection, clientID: String, sealer: SecretSealer, logger: Logger
    ) throws -> (producer: KafkaProducer, cancellations: SiteCancellations) {
        var client = KafkaClientSettings(bootstrapServers: connection.bootstrapServers)
        client.clientID = clientID
        client.rawProperties = connection.properties
        var configuration = KafkaProducerConfiguration(bootstrapServers: [])
        configuration.client = client
        configuration.linger = .milliseconds(1)
        configuration.messageTimeout = .seconds(30)
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        return (
            producer,
            SiteCancellations(
                producer: producer, topics: Topics(prefix: connection.topicPrefix), sealer: sealer, logger: logger)
        )
    }

    /// The message's value: the cancellation as a merchant writes it (keys sorted, no spaces).
    static func value(_ target: Target, id: String, merchant: MerchantID, line: LineID) -> [UInt8] {
        let fields: [String: String] = [
            "type": target.requestKind.rawValue, "merchantId": merchant.rawValue, target.idField: id,
            "lineId": line.rawValue,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data()
        return Array(data)
    }

    /// Signs and sends the cancellation of `target` `id` on `line` for `merchant`, waiting until Kafka has it.
    public func send(
        _ target: Target, id: String, merchant: MerchantID, line: LineID, store: BillingStore
    ) async throws(Failure) {
        let keys: [StoredSigningKey]
        do {
            keys = try await store.signingKeys(of: .merchant(merchant.rawValue))
        } catch {
            throw .notDelivered("the signing keys could not be read")
        }
        // The newest valid key that opens: a merchant rolling its key over signs with the new one first.
        let usable = keys.filter { $0.revokedAt == nil }.sorted { $0.createdAt > $1.createdAt }.lazy.compactMap {
            stored -> (String, [UInt8])? in
            guard
                let secret = try? sealer.open(
                    stored.sealedSecret, boundTo: stored.owner.sealingContext(keyID: stored.keyID))
            else { return nil }
            return (stored.keyID, secret)
        }.first
        guard let (keyID, secret) = usable else { throw .noSigningKey }
        let now = Date()
        let value = Self.value(target, id: id, merchant: merchant, line: line)
        let key = Array(line.rawValue.utf8)
        let timestamp = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        let signature = MessageSignature.signature(
            secret: secret, topic: topic, timestamp: timestamp, keyID: keyID, key: key, value: value)
        let message = KafkaProducerMessage(
            topic: topic, key: key, value: value,
            headers: [
                KafkaHeader(name: MessageSignature.Header.keyID, value: Array(keyID.utf8)),
                KafkaHeader(name: MessageSignature.Header.timestamp, value: Array(String(timestamp).utf8)),
                KafkaHeader(name: MessageSignature.Header.signature, value: Array(signature.utf8)),
            ])
        do {
            _ = try await producer.send(message)
        } catch {
            logger.error("A cancellation was not delivered", metadata: ["error": "\(error)", "topic": "\(topic)"])
            throw .notDelivered("\(error)")
        }
    }
}
