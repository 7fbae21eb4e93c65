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
    /// `<prefix>.merchant-results`: the result of every request, keyed by merchant id.
    public var merchantResults: String { "\(prefix).merchant-results" }
    /// `<prefix>.line-bills`: every line's bill for each closed cycle, for the carrier's billing system.
    public var lineBills: String { "\(prefix).line-bills" }
    /// `<prefix>.settlements`: every billed merchant's settlement for each closed cycle, for finance.
    public var settlements: String { "\(prefix).settlements" }
    /// `<prefix>.dead-letters`: messages that could not be applied, with their original key and value.
    public var deadLetters: String { "\(prefix).dead-letters" }
}
