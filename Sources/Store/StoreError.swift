/// An error from the store, with a code callers can match on.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The partition's stored offset is not the one expected: another worker
        /// moved it (this one lost the partition). The batch was not applied.
        case staleOffset = "stale_offset"
        /// A cycle was asked to close before an earlier one.
        case cycleOutOfOrder = "cycle_out_of_order"
        /// Input that cannot be stored (bad CSV, bad value).
        case invalidInput = "invalid_input"
        /// The server could not be started or reached.
        case unavailable
        /// The schema is newer than this program, or not migrated.
        case schemaMismatch = "schema_mismatch"
    }

    public var code: Code
    /// A sentence for people. Never contains credentials.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
