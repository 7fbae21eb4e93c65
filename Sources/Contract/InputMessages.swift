import Billing
import Foundation
import JSON

/// What a message read from `matomete.charges` or `matomete.cancellations` turned out to be.
public enum DecodedMessage: Sendable, Hashable {
    /// A well-formed request for the billing rules.
    case request(BillingRequest)
    /// A request that names its merchant and kind but cannot be accepted as it
    /// stands: it gets a rejection result with this reason, and changes nothing.
    case refused(RefusedRequest)
    /// Not a request at all (not JSON, no type, wrong field types, unknown
    /// type, no merchant to answer): it goes to the dead-letter topic with its
    /// original bytes and this reason.
    case deadLetter(reason: String)
}

/// A request refused before the rules saw it, with what is needed to answer the merchant.
public struct RefusedRequest: Sendable, Hashable {
    /// The merchant to answer, as written in the request.
    public var merchantID: String?
    /// The request's `type`, for example `charge` or `subscription-cancel`.
    public var requestType: String
    /// The charge or subscription id as written; empty when missing.
    public var requestID: String
    /// The line id as written; empty when missing.
    public var lineID: String
    /// Why it was refused.
    public var reason: RejectionReason

    /// A refusal of the request described, for `reason`.
    public init(merchantID: String?, requestType: String, requestID: String, lineID: String, reason: RejectionReason) {
        self.merchantID = merchantID
        self.requestType = requestType
        self.requestID = requestID
        self.lineID = lineID
        self.reason = reason
    }
}

/// Reads the JSON requests of the message contract (`docs/merchants.md`).
public struct RequestDecoder: Sendable {
    /// Until purchase authentication verifies it, a charge or subscription
    /// must at least carry an `authorization`.
    public var requireAuthorization: Bool

    /// Reads every message with Foundation's `JSONDecoder` alone, without the
    /// one-pass reader it otherwise tries first (for tests comparing the two).
    var foundationOnly = false

    /// A decoder; with `requireAuthorization`, a charge or subscription without an `authorization` is refused
    /// (`authorization_missing`).
    public init(requireAuthorization: Bool = true) {
        self.requireAuthorization = requireAuthorization
    }

    /// The fields any request may carry; which are required depends on `type`.
    private struct Fields: Decodable {
        var type: String?
        var merchantId: String?
        var chargeId: String?
        var subscriptionId: String?
        var lineId: String?
        var amount: Int64?
        var monthlyAmount: Int64?
        var description: String?
        var occurredAt: String?
        var authorization: String?
    }

    /// The fields of a flat object, when each field present has its type
    /// (`nil` otherwise: `JSONDecoder` then names the field at fault).
    private static func fields(_ object: FlatJSONObject) -> Fields? {
        try? Fields(
            type: object.string("type"), merchantId: object.string("merchantId"), chargeId: object.string("chargeId"),
            subscriptionId: object.string("subscriptionId"), lineId: object.string("lineId"),
            amount: object.integer("amount"), monthlyAmount: object.integer("monthlyAmount"),
            description: object.string("description"), occurredAt: object.string("occurredAt"),
            authorization: object.string("authorization"))
    }

    /// Decodes one message. `key` is the Kafka key, which must be the line id.
    public func decode(value: some Collection<UInt8>, key: (some Collection<UInt8>)?) -> DecodedMessage {
        decodeWithAuthorization(value: value, key: key).message
    }

    /// Decodes one message and returns the purchase authorization it carries,
    /// for the worker to verify.
    public func decodeWithAuthorization(
        value: some Collection<UInt8>, key: (some Collection<UInt8>)?
    ) -> (
        message: DecodedMessage, authorization: String?
    ) {
        if !foundationOnly, let object = FlatJSONObject(value), let fields = Self.fields(object) {
            return (decode(fields, key: key), fields.authorization)
        }
        // What the fast reader does not take: refused here if it breaks the one set of rules every input keeps
        // (a key twice, a BOM, not UTF-8, a number that is not an integer); else `JSONDecoder` names the field.
        if let problem = StrictJSON.problem(in: value) {
            return (.deadLetter(reason: "not strict JSON: \(problem)"), nil)
        }
        let fields: Fields
        do {
            fields = try JSONDecoder().decode(Fields.self, from: Data(value))
        } catch DecodingError.typeMismatch(_, let context) where !context.codingPath.isEmpty {
            return (
                .deadLetter(
                    reason: "wrong type for field \(context.codingPath.map(\.stringValue).joined(separator: "."))"), nil
            )
        } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
            return (
                .deadLetter(
                    reason: "invalid value for field \(context.codingPath.map(\.stringValue).joined(separator: "."))"),
                nil
            )
        } catch {
            return (.deadLetter(reason: "not a JSON object"), nil)
        }
        return (decode(fields, key: key), fields.authorization)
    }

    private func decode(_ fields: Fields, key: (some Collection<UInt8>)?) -> DecodedMessage {
        guard let type = fields.type else { return .deadLetter(reason: "no type") }
        let keyText = key.map { String(decoding: $0, as: UTF8.self) }

        guard let kind = RequestKind(rawValue: type) else { return .deadLetter(reason: "unknown type \(type)") }
        if kind == .lineTermination {
            guard let line = fields.lineId else { return .deadLetter(reason: "line-termination without lineId") }
            guard LineID(rawValue: line).isWellFormed, keyText == line else {
                return .deadLetter(reason: "line-termination: lineId malformed or not the message key")
            }
            // No merchant to answer: the line system reads the dead letters.
            guard fields.occurredAt.map(RFC3339.isDateTime) ?? true else {
                return .deadLetter(reason: "line-termination: occurredAt is not an RFC 3339 date-time")
            }
            return .request(.lineTermination(LineTermination(lineID: LineID(rawValue: line))))
        }
        guard let merchant = fields.merchantId, MerchantID(rawValue: merchant).isWellFormed else {
            return .deadLetter(reason: "\(type) without a well-formed merchantId")
        }
        let reference =
            (kind == .charge || kind == .chargeCancellation ? fields.chargeId : fields.subscriptionId) ?? ""
        func refuse(_ reason: RejectionReason) -> DecodedMessage {
            .refused(
                RefusedRequest(
                    merchantID: merchant, requestType: type, requestID: reference, lineID: fields.lineId ?? "",
                    reason: reason))
        }
        guard let line = fields.lineId, LineID(rawValue: line).isWellFormed, keyText == line,
            fields.occurredAt.map(RFC3339.isDateTime) ?? true
        else {
            return refuse(.invalidRequest)
        }
        let merchantID = MerchantID(rawValue: merchant)
        let lineID = LineID(rawValue: line)
        switch kind {
        case .charge, .subscription:
            let amount = kind == .charge ? fields.amount : fields.monthlyAmount
            // PostgreSQL's text cannot hold U+0000: refuse it here rather than fail the batch.
            guard let amount, !reference.isEmpty, isWellFormed(reference), let description = fields.description,
                description.utf8.count <= 512, !description.utf8.contains(0)
            else { return refuse(.invalidRequest) }
            if requireAuthorization, (fields.authorization ?? "").isEmpty { return refuse(.authorizationMissing) }
            if kind == .charge {
                return .request(
                    .charge(
                        ChargeRequest(
                            merchantID: merchantID, chargeID: ChargeID(rawValue: reference), lineID: lineID,
                            amount: Yen(amount), description: description)))
            }
            return .request(
                .subscription(
                    SubscriptionRequest(
                        merchantID: merchantID, subscriptionID: SubscriptionID(rawValue: reference), lineID: lineID,
                        monthlyAmount: Yen(amount), description: description)))
        case .chargeCancellation:
            guard isWellFormed(reference) else { return refuse(.invalidRequest) }
            return .request(
                .chargeCancellation(
                    ChargeCancellation(merchantID: merchantID, chargeID: ChargeID(rawValue: reference), lineID: lineID))
            )
        case .subscriptionCancellation, .lineTermination:
            guard isWellFormed(reference) else { return refuse(.invalidRequest) }
            return .request(
                .subscriptionCancellation(
                    SubscriptionCancellation(
                        merchantID: merchantID, subscriptionID: SubscriptionID(rawValue: reference), lineID: lineID)))
        }
    }

    private func isWellFormed(_ reference: String) -> Bool { ChargeID(rawValue: reference).isWellFormed }
}

extension MerchantResultMessage {
    /// The result of a request refused before the rules saw it. Its ids are
    /// echoed as the sender wrote them, cut to their first 64 bytes (a whole
    /// character at most): no input makes a result too large to publish.
    public init(id: String, refused: RefusedRequest) {
        self.id = id
        merchantId = refused.merchantID
        requestType = refused.requestType
        requestId = Self.echo(refused.requestID)
        lineId = Self.echo(refused.lineID)
        status = "rejected"
        reason = refused.reason.code
        message = refused.reason.sentence
        cycle = nil
    }

    /// At most the first 64 bytes of `text`, cut between characters.
    static func echo(_ text: String) -> String {
        guard text.utf8.count > 64 else { return text }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in text.unicodeScalars {
            bytes += UTF8.width(scalar)
            guard bytes <= 64 else { break }
            kept.append(scalar)
        }
        return String(kept)
    }
}
