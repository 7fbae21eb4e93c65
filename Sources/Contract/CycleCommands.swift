import Billing
import Foundation
import JSON

/// An instruction read from `matomete.billing-cycles`.
public enum CycleCommand: Sendable, Hashable {
    /// Close the month: bill every line for it and settle with every merchant.
    case close(BillingCycle)
}

/// What a message read from `matomete.billing-cycles` turned out to be.
public enum DecodedCycleCommand: Sendable, Hashable {
    /// A command to carry out.
    case command(CycleCommand)
    /// Not a command this worker knows; dead-lettered with its bytes and this reason.
    case deadLetter(reason: String)
}

extension CycleCommand {
    private struct Fields: Decodable {
        var type: String?
        var cycle: String?
    }

    /// Decodes `{"type":"close","cycle":"2026-11"}`.
    public static func decode(value: some Collection<UInt8>) -> DecodedCycleCommand {
        if let problem = StrictJSON.problem(in: value) { return .deadLetter(reason: "not strict JSON: \(problem)") }
        guard let fields = try? JSONDecoder().decode(Fields.self, from: Data(value)) else {
            return .deadLetter(reason: "not a JSON object with string fields type and cycle")
        }
        guard fields.type == "close" else {
            return .deadLetter(reason: fields.type.map { "unknown type \($0)" } ?? "no type")
        }
        guard let text = fields.cycle, let cycle = BillingCycle(text) else {
            return .deadLetter(reason: "close without a cycle written YYYY-MM")
        }
        return .command(.close(cycle))
    }

    /// The message that asks the billing-cycle workers to close `cycle`.
    public static func closeMessage(_ cycle: BillingCycle) -> String {
        #"{"type":"close","cycle":"\#(cycle)"}"#
    }
}
