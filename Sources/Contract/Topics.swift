/// Matomete's topic names, with a configurable prefix (default `matomete`).
public struct Topics: Sendable, Hashable {
    /// What every topic name starts with (`--topic-prefix`); `matomete` by default.
    public var prefix: String

    /// The topic names under `prefix`.
    public init(prefix: String = "matomete") { self.prefix = prefix }

    /// `<prefix>.charges`: merchants' one-time charges and subscription starts, keyed by line id.
    public var charges: String { "\(prefix).charges" }
    /// `<prefix>.cancellations`: merchants' cancellations and the line system's line terminations, keyed by line id.
    public var cancellations: String { "\(prefix).cancellations" }
    /// `<prefix>.billing-cycles`: commands to close a month, from the scheduler or operators.
    public var billingCycles: String { "\(prefix).billing-cycles" }
    /// `<prefix>.merchant.<merchant>.`: what every topic of one merchant's
    /// own starts with; the merchant's principal may read the topics under
    /// it (a prefixed ACL), and no other merchant's (ids hold no `.`).
    public func merchantPrefix(_ merchant: String) -> String { "\(prefix).merchant.\(merchant)." }
    /// `<prefix>.merchant.<merchant>.results`: the result of each of the merchant's requests, keyed by line id.
    public func merchantResults(_ merchant: String) -> String { merchantPrefix(merchant) + "results" }
    /// `<prefix>.merchant.<merchant>.settlements`: the merchant's own settlement for each closed cycle.
    public func merchantSettlements(_ merchant: String) -> String { merchantPrefix(merchant) + "settlements" }
    /// `<prefix>.line-system.results`: the result of each line termination, keyed by line id, for the carrier's
    /// line system.
    public var lineSystemResults: String { "\(prefix).line-system.results" }
    /// `<prefix>.line-bills`: every line's bill for each closed cycle, for the carrier's billing system.
    public var lineBills: String { "\(prefix).line-bills" }
    /// `<prefix>.settlements`: every billed merchant's settlement for each closed cycle, for finance (each
    /// merchant also reads its own on ``merchantSettlements(_:)``).
    public var settlements: String { "\(prefix).settlements" }
    /// `<prefix>.collections`: the carrier's billing system's reports on each line bill (payments, reversals,
    /// write-offs), keyed by line id.
    public var collections: String { "\(prefix).collections" }
    /// `<prefix>.collection-results`: the result of each collection report, keyed by line id, for the billing
    /// system.
    public var collectionResults: String { "\(prefix).collection-results" }
    /// `<prefix>.payouts`: every merchant's payout statement per period, for finance (each merchant also reads
    /// its own on ``merchantPayouts(_:)``).
    public var payouts: String { "\(prefix).payouts" }
    /// `<prefix>.merchant.<merchant>.payouts`: the merchant's own payout statement per period.
    public func merchantPayouts(_ merchant: String) -> String { merchantPrefix(merchant) + "payouts" }
    /// `<prefix>.dead-letters`: messages that could not be applied, with their original key and value.
    public var deadLetters: String { "\(prefix).dead-letters" }
}

/// One of Matomete's topics as it should be created.
public struct TopicLayout: Sendable, Hashable {
    /// The topic's name, with its prefix.
    public var name: String
    /// Its number of partitions.
    public var partitions: Int
    /// What it carries, in a few words.
    public var purpose: String
    /// Topic settings it is created with, by name.
    public var configuration: [String: String] = [:]
}

extension Topics {
    /// Every topic Matomete uses, with its partitions: the request topics and
    /// the output topics keyed by line or merchant take `partitions` each (the
    /// most worker processes of one kind that can share the work);
    /// billing-cycles has one (closes run in order); settlements and
    /// dead-letters have three.
    public func layout(partitions: Int) -> [TopicLayout] {
        [
            // The broker's append time is a request's time: signatures are judged against it, and no
            // producer can set it (docs/merchants.md, "Signing requests").
            TopicLayout(
                name: charges, partitions: partitions, purpose: "merchants' charges and subscriptions, keyed by line",
                configuration: ["message.timestamp.type": "LogAppendTime"]),
            TopicLayout(
                name: cancellations, partitions: partitions, purpose: "merchants' cancellations, keyed by line",
                configuration: ["message.timestamp.type": "LogAppendTime"]),
            TopicLayout(name: billingCycles, partitions: 1, purpose: "close commands, in order"),
            TopicLayout(
                name: lineSystemResults, partitions: partitions, purpose: "accepted or rejected, per line termination"),
            TopicLayout(name: lineBills, partitions: partitions, purpose: "each line's bill per cycle"),
            TopicLayout(name: settlements, partitions: 3, purpose: "each merchant's settlement per cycle"),
            // Report dates are judged against the broker's append time, like request signatures.
            TopicLayout(
                name: collections, partitions: partitions,
                purpose: "payments, reversals and write-offs of line bills, keyed by line",
                configuration: ["message.timestamp.type": "LogAppendTime"]),
            TopicLayout(
                name: collectionResults, partitions: partitions, purpose: "accepted or rejected, per collection report"),
            TopicLayout(name: payouts, partitions: 3, purpose: "each merchant's payout statement per period"),
            TopicLayout(name: deadLetters, partitions: 3, purpose: "messages that are not requests, with their bytes"),
        ]
    }

    /// A merchant's own topics, created when the merchant is added: its
    /// results (keyed by line, `partitions` of them) and its settlements (one).
    public func merchantLayout(_ merchant: String, partitions: Int) -> [TopicLayout] {
        [
            TopicLayout(
                name: merchantResults(merchant), partitions: partitions,
                purpose: "accepted or rejected, per request of \(merchant)"),
            TopicLayout(
                name: merchantSettlements(merchant), partitions: 1, purpose: "\(merchant)'s settlement per cycle"),
            TopicLayout(
                name: merchantPayouts(merchant), partitions: 1, purpose: "\(merchant)'s payout statement per period"),
        ]
    }
}
