/// Matomete's topic names, with a configurable prefix (default `matomete`).
public struct Topics: Sendable, Hashable {
    public var prefix: String

    public init(prefix: String = "matomete") { self.prefix = prefix }

    public var charges: String { "\(prefix).charges" }
    public var cancellations: String { "\(prefix).cancellations" }
    public var billingCycles: String { "\(prefix).billing-cycles" }
    public var merchantResults: String { "\(prefix).merchant-results" }
    public var lineBills: String { "\(prefix).line-bills" }
    public var settlements: String { "\(prefix).settlements" }
    public var deadLetters: String { "\(prefix).dead-letters" }
}
