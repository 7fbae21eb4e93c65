/// The kind of access line. Known kinds have constants; any other kind read
/// from the line system is kept as it is, and is not eligible.
public struct LineType: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The kind's name in the line system, for example `hikari-next`.
    public var rawValue: String
    /// A kind by its name; a name other than the known ones is kept, and is never eligible.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Flets Hikari Next (フレッツ 光ネクスト).
    public static let hikariNext = LineType(rawValue: "hikari-next")
    /// Flets Hikari Light (フレッツ 光ライト).
    public static let hikariLight = LineType(rawValue: "hikari-light")
    /// B Flets (Bフレッツ).
    public static let bFlets = LineType(rawValue: "b-flets")
    /// Flets ADSL: eligible only with a Flets.net contract.
    public static let adsl = LineType(rawValue: "adsl")

    /// The kinds the carrier sells, which an import may name.
    public static let sold: [LineType] = [.hikariNext, .hikariLight, .bFlets, .adsl]

    /// The kind's name, for example `b-flets`.
    public var description: String { rawValue }

    /// Whether charges may be billed to a line of this kind.
    public func isEligible(fletsNetContract: Bool) -> Bool {
        switch self {
        case .hikariNext, .hikariLight, .bFlets: true
        case .adsl: fletsNetContract
        default: false
        }
    }
}

/// Whether a line can be charged.
public enum LineStatus: String, Sendable, Codable, CaseIterable {
    /// In service: charges are accepted.
    case active
    /// Temporarily stopped by the carrier: charges are refused.
    case suspended
    /// Ended: charges are refused and subscriptions end after the open cycle.
    case terminated
}

/// An access line as billing sees it.
public struct Line: Hashable, Sendable {
    /// The line's id; charges and cancellations for the line are keyed by it.
    public var id: LineID
    /// The kind of line, which decides whether it may be billed at all.
    public var type: LineType
    /// Whether the line has a Flets.net contract (needed for ADSL lines).
    public var fletsNetContract: Bool
    /// Whether the line is in service, suspended by the carrier, or terminated.
    public var status: LineStatus
    /// The line's own monthly spending limit, from the line system; `nil` uses the global default;
    /// `0` means no limit.
    public var spendingLimit: Yen?
    /// A lower monthly limit the line's user asked the support centre for (at least ¥1); `nil` when none. The
    /// lower of it and ``spendingLimit`` (or the default) applies.
    public var userSpendingLimit: Yen?
    /// Whether the line's user asked the support centre to stop carrier billing on the line: new charges and
    /// subscriptions are refused (`line_billing_blocked`); cancellations and running subscriptions are not
    /// affected.
    public var billingBlocked: Bool

    /// A line.
    public init(
        id: LineID, type: LineType, fletsNetContract: Bool = false, status: LineStatus = .active,
        spendingLimit: Yen? = nil, userSpendingLimit: Yen? = nil, billingBlocked: Bool = false
    ) {
        self.id = id
        self.type = type
        self.fletsNetContract = fletsNetContract
        self.status = status
        self.spendingLimit = spendingLimit
        self.userSpendingLimit = userSpendingLimit
        self.billingBlocked = billingBlocked
    }

    /// Whether the line's kind may be billed at all.
    public var isEligible: Bool { type.isEligible(fletsNetContract: fletsNetContract) }
}

/// Bounds every request is checked against.
public struct BillingLimits: Hashable, Sendable {
    /// The smallest one-time charge or monthly amount. Default ¥1.
    public var minimumAmount: Yen = 1
    /// The largest one-time charge or monthly amount. Default ¥1,000,000.
    public var maximumAmount: Yen = 1_000_000
    /// A line's monthly spending limit when it has none of its own. Default
    /// ¥50,000; `0` means no limit.
    public var defaultSpendingLimit: Yen = 50_000

    /// The defaults.
    public init() {}

    /// The spending limit that applies to `line`, or `nil` when there is none: the line's own (or the default;
    /// zero for none), or the user's lower one.
    public func spendingLimit(of line: Line) -> Yen? {
        let limit = line.spendingLimit ?? defaultSpendingLimit
        let carrier = limit == .zero ? nil : limit
        guard let user = line.userSpendingLimit else { return carrier }
        guard let carrier else { return user }
        return min(carrier, user)
    }
}
