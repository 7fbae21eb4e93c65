import Authorization
import Billing
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Store

/// A purchase the user confirms with their purchase ID and password.
public struct AuthorizationRequest: Codable, Sendable {
    /// The purchase ID the carrier issued for the user's line.
    public var purchaseId: String
    /// The purchase ID's password; never logged.
    public var password: String
    /// The merchant the purchase is for.
    public var merchantId: String
    /// `charge` or `subscription`.
    public var kind: String
    /// Yen, tax included: the charge's amount or the subscription's monthly amount.
    public var amount: Int64
    /// The merchant's charge id or subscription id.
    public var reference: String

    /// A purchase to authorize, as the user confirmed it.
    public init(
        purchaseId: String, password: String, merchantId: String, kind: String, amount: Int64, reference: String
    ) {
        self.purchaseId = purchaseId
        self.password = password
        self.merchantId = merchantId
        self.kind = kind
        self.amount = amount
        self.reference = reference
    }
}

/// The gateway's answer.
public enum AuthorizationDecision: Sendable, Equatable {
    /// A signed authorization for the merchant to send with the request.
    case issued(token: String, tokenID: String, lineID: String, expiresAt: Int64)
    /// Refused, with an HTTP status and a code. Authentication failures all
    /// say `authentication_failed`, whichever factor failed.
    case refused(status: Int, code: String)
    /// Not decided: too many password checks running and waiting; try again after this many seconds.
    case busy(retryAfterSeconds: Int)
}

/// Decides purchase authorizations: the password must be right, the purchase
/// ID must belong to the line the request comes from, the line must be
/// eligible and active, and the merchant active. Wrong attempts are counted
/// per purchase ID and line of origin, and per line, and lock either for a
/// while at its limit (``LockoutPolicy``).
public struct AuthorizationService: Sendable {
    /// Where credentials, line addresses, lock-outs and the states of lines and merchants are read and recorded.
    public var store: BillingStore
    /// Signs the authorizations issued.
    public var signer: AuthorizationSigner
    /// How long an issued authorization is valid (`--token-lifetime`, 5 minutes by default).
    public var lifetime: Duration
    /// How many wrong attempts lock a purchase ID or a line, and for how long.
    public var policy: LockoutPolicy
    /// Where decisions are logged: purchase IDs, lines and token ids, never passwords or tokens.
    public var logger: Logger
    /// The amount range a purchase must fall in (¥1 to ¥1,000,000 by default).
    public var limits = BillingLimits()
    /// Bounds the password checks running and waiting at once.
    public var gate: PasswordCheckGate

    /// A service; ``limits`` starts at the defaults; `gate` lets as many checks run as there are cores,
    /// and 64 wait up to 2 seconds each, unless given.
    public init(
        store: BillingStore, signer: AuthorizationSigner, lifetime: Duration, policy: LockoutPolicy,
        gate: PasswordCheckGate? = nil, logger: Logger
    ) {
        self.store = store
        self.signer = signer
        self.lifetime = lifetime
        self.policy = policy
        self.gate = gate ?? PasswordCheckGate(maxConcurrent: System.coreCount, maxWaiting: 64, maxWait: .seconds(2))
        self.logger = logger
    }

    /// Compared against when the purchase ID does not exist, so that an unknown
    /// ID takes as long to refuse as a wrong password.
    private static let decoy = try? PasswordHash.make(password: UUID().uuidString)

    /// Decides one purchase; `clientAddress` is the address the request comes from (`nil` when unknown,
    /// which no line holds). Refusals are returned as decisions; it throws only when the database or
    /// the signing fails.
    public func authorize(
        _ request: AuthorizationRequest, clientAddress: String?
    ) async throws
        -> AuthorizationDecision
    {
        guard RequestKind(rawValue: request.kind)?.isPurchase == true,
            ChargeID(rawValue: request.reference).isWellFormed,
            MerchantID(rawValue: request.merchantId).isWellFormed,
            // A purchase ID has the form of every other id (1 to 64 printable ASCII): anything else
            // (a NUL, a tab) is refused here, before the database is asked.
            LineID(rawValue: request.purchaseId).isWellFormed, !request.password.isEmpty,
            request.password.utf8.count <= 256,
            (limits.minimumAmount.amount...limits.maximumAmount.amount).contains(request.amount)
        else { return record(.refused(status: 400, code: "invalid_request")) }

        // Purchases are made from a line: from an address no line holds there is nothing to try, and
        // such a request is refused before any password work, counting against no ID.
        var lines: [String] = []
        if let clientAddress { lines = try await store.lines(at: clientAddress) }
        guard !lines.isEmpty else {
            WorkerMetricsBridge.noLineAttempts.increment()
            return record(.refused(status: 403, code: "authentication_failed"))
        }
        // Locked (the ID for this line, or the line): say so, but not why. Known and unknown IDs alike.
        if try await store.lockedUntil(purchaseID: request.purchaseId, lines: lines) != nil {
            WorkerMetricsBridge.lockedAttempts.increment()
            return record(.refused(status: 429, code: "locked"))
        }
        // Counted as failed before the password is checked, so that guesses sent at once cannot pass a limit
        // together; a success takes its count back.
        let counted = try await store.recordFailedAttempt(
            purchaseID: request.purchaseId, lines: lines, policy: policy)
        if counted.overLimit {
            WorkerMetricsBridge.lockedAttempts.increment()
            return record(.refused(status: 429, code: "locked"))
        }
        let credential = try await store.credential(purchaseID: request.purchaseId)
        let now = Date()
        let hash =
            credential.map {
                PasswordHash(
                    hash: $0.passwordHash, salt: $0.salt, logRounds: $0.logRounds, blockSize: $0.blockSize,
                    parallelism: $0.parallelism)
            } ?? Self.decoy
        let password = request.password
        // scrypt is deliberately slow: off the cooperative threads, and only so many at once. Turned away, the
        // request's count is taken back: it was never checked.
        let checked = try await gate.run {
            try await NIOThreadPool.singleton.runIfActive { hash?.matches(password) ?? false }
        }
        guard let matches = checked else {
            try await store.takeBackAttempt(purchaseID: request.purchaseId, lines: lines, policy: policy)
            return record(.busy(retryAfterSeconds: max(1, Int(gate.maxWait.components.seconds))))
        }
        guard let credential, matches, !credential.isRevoked, lines.contains(credential.lineID) else {
            if counted.reachedLimit { WorkerMetricsBridge.lockouts.increment() }
            logger.notice(
                "Purchase authentication failed",
                metadata: ["purchase.id": "\(request.purchaseId)", "lines.at.address": "\(lines.count)"])
            return record(
                .refused(
                    status: counted.reachedLimit ? 429 : 403,
                    code: counted.reachedLimit ? "locked" : "authentication_failed"))
        }
        try await store.recordSuccessfulAttempt(
            purchaseID: credential.purchaseID, lineID: credential.lineID, lines: lines, policy: policy)

        // Authenticated: the line and the merchant must be able to take the purchase.
        let context = try await store.purchaseContext(lineID: credential.lineID, merchantID: request.merchantId)
        if let refusal = refusal(context) { return record(.refused(status: 403, code: refusal.code)) }

        let expiresAt = Int64(now.timeIntervalSince1970) + lifetime.components.seconds
        let claims = PurchaseClaims(
            tokenID: UUID().uuidString.lowercased(), lineID: credential.lineID, merchantID: request.merchantId,
            kind: request.kind, amount: request.amount, reference: request.reference, expiresAt: expiresAt)
        let token = try signer.token(for: claims)
        logger.info(
            "Purchase authorized",
            metadata: [
                "purchase.id": "\(request.purchaseId)", "line": "\(credential.lineID)",
                "merchant": "\(request.merchantId)",
                "token.id": "\(claims.tokenID)",
            ])
        return record(.issued(token: token, tokenID: claims.tokenID, lineID: credential.lineID, expiresAt: expiresAt))
    }

    private func refusal(_ context: PurchaseContext) -> RejectionReason? {
        guard let type = context.lineType else { return .unknownLine }
        guard LineType(rawValue: type).isEligible(fletsNetContract: context.fletsNet) else { return .lineNotEligible }
        switch context.lineStatus {
        case "active": break
        case "terminated": return .lineTerminated
        default: return .lineSuspended
        }
        if context.billingBlocked { return .lineBillingBlocked }
        guard let merchant = context.merchantStatus else { return .unknownMerchant }
        return merchant == "active" ? nil : .merchantSuspended
    }

    private func record(_ decision: AuthorizationDecision) -> AuthorizationDecision {
        switch decision {
        case .issued: WorkerMetricsBridge.decisions(outcome: "issued").increment()
        case .refused(_, let code): WorkerMetricsBridge.decisions(outcome: code).increment()
        case .busy: WorkerMetricsBridge.decisions(outcome: "busy").increment()
        }
        return decision
    }
}

/// The gateway's metrics (Prometheus, on `/metrics`).
enum WorkerMetricsBridge {
    /// `matomete_authorizations_total{outcome}`: issued, authentication_failed, locked, invalid_request, …
    static func decisions(outcome: String) -> Metrics.Counter {
        Metrics.Counter(label: "matomete_authorizations_total", dimensions: [("outcome", outcome)])
    }

    /// Purchase IDs or lines that reached their failure limit and were locked.
    static let lockouts = Metrics.Counter(label: "matomete_authorization_lockouts_total")
    /// Attempts refused because the ID or line was locked.
    static let lockedAttempts = Metrics.Counter(label: "matomete_authorization_locked_attempts_total")
    /// Attempts from an address no line holds, refused before any password work.
    static let noLineAttempts = Metrics.Counter(label: "matomete_authorization_no_line_attempts_total")
}
