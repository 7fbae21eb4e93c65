import Authorization
import Crypto
import Foundation
import Kafka
import Logging
import Store
import Synchronization

/// The message-signing keys the workers accept, opened once and kept in
/// memory: every valid key of every merchant and of the line system. A
/// ``run()`` loop reads them again every ``interval``, so a key created or
/// revoked with `matomete merchants keys …` counts from the next refresh,
/// without a restart.
public final class SigningKeyRing: Sendable {
    /// A key the ring holds: whose it is and its secret, opened.
    public struct Key: Sendable {
        /// Who signs with it.
        public var owner: KeyOwner
        /// The HMAC secret, ready for use.
        public var secret: SymmetricKey

        /// A key of `owner`.
        public init(owner: KeyOwner, secret: [UInt8]) {
            self.owner = owner
            self.secret = SymmetricKey(data: secret)
        }
    }

    /// The keys held, with the number of the refresh that read them.
    private let keys: Mutex<(generation: Int, byID: [String: Key])>
    /// Refreshes begun: a refresh stores what it read only if no later one has stored already.
    private let refreshes = Atomic<Int>(0)
    private let store: BillingStore?
    private let sealer: SecretSealer?
    /// How often the keys are read again.
    public let interval: Duration
    private let logger: Logger

    /// A ring of the valid keys in `store`, opened with `sealer`; call
    /// ``refresh()`` before using it.
    public init(store: BillingStore, sealer: SecretSealer, interval: Duration, logger: Logger) {
        self.keys = Mutex((0, [:]))
        self.store = store
        self.sealer = sealer
        self.interval = interval
        self.logger = logger
    }

    /// A ring that holds exactly `keys`, by key id (for tools and tests that
    /// sign and check without a database).
    public init(_ keys: [String: Key]) {
        self.keys = Mutex((0, keys))
        self.store = nil
        self.sealer = nil
        self.interval = .seconds(3600)
        self.logger = Logger(label: "matomete.signing-keys")
    }

    /// The valid key `keyID`, if the ring holds it.
    public func key(_ keyID: String) -> Key? {
        keys.withLock { $0.byID[keyID] }
    }

    /// How many keys the ring holds.
    public var count: Int { keys.withLock { $0.byID.count } }

    /// Reads every valid key again. A key whose secret does not open (sealed
    /// under another key-encryption key) is left out and logged: messages
    /// signed with it are refused, never applied.
    public func refresh() async throws {
        guard let store, let sealer else { return }
        let generation = refreshes.add(1, ordering: .relaxed).newValue
        var fresh: [String: Key] = [:]
        for stored in try await store.signingKeys() where stored.revokedAt == nil {
            do {
                fresh[stored.keyID] = Key(
                    owner: stored.owner,
                    secret: try sealer.open(
                        stored.sealedSecret, boundTo: stored.owner.sealingContext(keyID: stored.keyID)))
            } catch {
                logger.error(
                    "A signing key does not open with this key-encryption key; messages signed with it are refused",
                    metadata: ["key.id": "\(stored.keyID)", "key.owner": "\(stored.owner)"])
            }
        }
        // A refresh begun earlier that ends later (the timer's, beside one a batch asked for) must not
        // bring back a key the later one no longer read.
        let previous = keys.withLock { keys -> Set<String>? in
            guard generation > keys.generation else { return nil }
            defer { keys = (generation, fresh) }
            return Set(keys.byID.keys)
        }
        if let previous, previous != Set(fresh.keys) {
            logger.info("Signing keys read", metadata: ["keys": "\(fresh.count)"])
        }
    }

    /// Refreshes every ``interval`` until cancelled. A failed refresh keeps
    /// the keys already held and is logged; the next one tries again.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
                try await refresh()
            } catch is CancellationError {
                return
            } catch {
                logger.warning(
                    "Could not read the signing keys; keeping the ones held", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Why a request's signature is refused. The request is dead-lettered, for
/// the carrier's operators, with the code first in its `error` header: its
/// sender is not known to be who it claims, so no results topic hears of it.
public enum SignatureRefusal: String, Sendable, CaseIterable {
    /// A signing header is missing, or repeated.
    case missing = "signature_missing"
    /// The headers are malformed, the key is not a valid one, or the
    /// signature does not match the message.
    case invalid = "signature_invalid"
    /// Signed too long before (or after) the time Kafka gives the message.
    case stale = "signature_stale"
    /// A valid signature, but by someone other than the request's sender: a
    /// key of another merchant than the request's `merchantId`, or a
    /// line termination not signed by the line system.
    case wrongSigner = "signature_wrong_signer"

    /// The stable code.
    public var code: String { rawValue }
}

/// Checks the signature headers of a request (`docs/merchants.md`, "Signing
/// requests") against a ``SigningKeyRing``.
public struct RequestSignatureVerifier: Sendable {
    /// The keys accepted.
    public var ring: SigningKeyRing
    /// How far the signed timestamp may be from the message's Kafka
    /// timestamp, either way, in milliseconds.
    public var window: Int64
    /// Now, in milliseconds since 1970: the reference when Kafka gives a message no timestamp.
    public var now: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The signing headers, in the order they are read.
    private static let headerNames = [
        MessageSignature.Header.keyID, MessageSignature.Header.timestamp, MessageSignature.Header.signature,
    ]

    /// The longest `matomete-timestamp` header read: 19 digits hold any `Int64`.
    private static let timestampDigitsAtMost = 19

    /// A verifier over `ring`, with a window of `window` either way.
    public init(ring: SigningKeyRing, window: Duration) {
        self.ring = ring
        self.window = window.components.seconds * 1000 + window.components.attoseconds / 1_000_000_000_000_000
    }

    /// Whose valid key signed `message`, or why its signature is refused
    /// (with a detail for the operators). Checked in this order: the three
    /// headers present once each; the key known and valid; the timestamp
    /// within the window; the signature.
    public func signer(of message: KafkaConsumerMessage) -> Result<KeyOwner, SignatureFailure> {
        // The three headers, each once; a header without a value reads as empty.
        var found: [[UInt8]?] = [nil, nil, nil]
        for header in message.headers {
            guard let index = Self.headerNames.firstIndex(of: header.name) else { continue }
            guard found[index] == nil else {
                return .failure(SignatureFailure(.missing, "the header \(header.name) is given twice"))
            }
            found[index] = header.value ?? []
        }
        guard let keyIDBytes = found[0], let digits = found[1], let signatureBytes = found[2] else {
            let absent = zip(Self.headerNames, found).filter { $0.1 == nil }.map(\.0)
            return .failure(SignatureFailure(.missing, "no \(absent.joined(separator: ", ")) header"))
        }
        guard let keyID = String(validating: keyIDBytes, as: UTF8.self), keyID.utf8.count <= 64 else {
            return .failure(SignatureFailure(.invalid, "matomete-key-id is not a key id"))
        }
        guard let key = ring.key(keyID) else {
            var failure = SignatureFailure(.invalid, "\(keyID) is not a valid key (unknown or revoked)")
            failure.keyUnknown = true
            return .failure(failure)
        }
        // Decimal digits as the number prints (no sign, no leading zero): the text signed is that number.
        guard !digits.isEmpty, digits.count <= Self.timestampDigitsAtMost, digits == [0x30] || digits[0] != 0x30,
            digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let timestamp = Int64(String(decoding: digits, as: UTF8.self))
        else {
            return .failure(
                SignatureFailure(.invalid, "matomete-timestamp is not milliseconds in decimal, without leading zeros"))
        }
        let reference = message.timestampMilliseconds ?? now()
        // Far-off times on either side must not overflow: a difference that does is out of any window.
        let (difference, overflow) = reference.subtractingReportingOverflow(timestamp)
        guard !overflow, difference.magnitude <= UInt64(window) else {
            return .failure(
                SignatureFailure(
                    .stale,
                    "signed at \(timestamp) ms, \(overflow ? "beyond any window" : "\(difference / 1000) s") from the message's time \(reference) ms; the window is ±\(window / 1000) s"
                ))
        }
        let signature = String(decoding: signatureBytes.prefix(100), as: UTF8.self)
        guard
            MessageSignature.isValid(
                signature, key: key.secret, topic: message.topicPartition.topic, timestamp: timestamp,
                keyID: keyID, messageKey: message.key, value: message.value)
        else {
            return .failure(SignatureFailure(.invalid, "the signature does not match key \(keyID)"))
        }
        return .success(key.owner)
    }
}

/// A refused signature, with what the operators are told.
public struct SignatureFailure: Error, Sendable, Hashable {
    /// The code.
    public var refusal: SignatureRefusal
    /// What exactly is wrong, for the dead letter's `error` header.
    public var detail: String
    /// The key named is not among those held: it may have been created
    /// since they were last read.
    public var keyUnknown = false

    /// A refusal for `refusal`, saying `detail`.
    public init(_ refusal: SignatureRefusal, _ detail: String) {
        self.refusal = refusal
        self.detail = detail
    }

    /// The dead letter's reason: the code, then the detail.
    public var reason: String { "\(refusal.code): \(detail)" }
}
