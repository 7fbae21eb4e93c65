import Billing
import JSON

/// What a message read from `matomete.collections` turned out to be.
public enum DecodedCollectionReport: Sendable, Hashable {
    /// A well-formed report for the collection rules.
    case report(CollectionReport)
    /// A report that names its line and type but cannot be applied as it
    /// stands: the billing system is answered `invalid_request`.
    case refused(RefusedCollectionReport)
    /// Not a report at all (not a flat JSON object, no or an unknown type, no
    /// line id that is the message key): to the dead letters with its bytes.
    case deadLetter(reason: String)
}

/// A report refused before the rules saw it, with what is needed to answer it.
public struct RefusedCollectionReport: Sendable, Hashable {
    /// The report's `type`.
    public var type: String
    /// The line, as written (the message key).
    public var lineID: String
    /// The bill id, as written.
    public var billID: String?
    /// The payment id, as written.
    public var paymentID: String?
    /// What is wrong, in a few words.
    public var problem: String
}

/// Reads the reports of `matomete.collections` (`docs/contract.md`): flat
/// JSON objects of strings and integers.
public struct CollectionReportDecoder: Sendable {
    /// The largest payment taken: ¥1,000,000,000,000 (no line bill comes near).
    public static let maximumAmount: Int64 = 1_000_000_000_000

    /// A decoder.
    public init() {}

    /// Decodes one message. `key` is the Kafka key, which must be the line id;
    /// `sentOn` is the Japan day of the message's Kafka timestamp.
    public func decode(
        value: some Collection<UInt8>, key: (some Collection<UInt8>)?, sentOn: CalendarDay?
    ) -> DecodedCollectionReport {
        guard let object = FlatJSONObject(value) else {
            return .deadLetter(
                reason: StrictJSON.problem(in: value).map { "not strict JSON: \($0)" } ?? "not a flat JSON object")
        }
        let type: String?
        let line: String?
        do {
            type = try object.string("type")
            line = try object.string("lineId")
        } catch {
            return .deadLetter(reason: "type and lineId must be strings")
        }
        guard let type else { return .deadLetter(reason: "no type") }
        guard ["payment", "payment-reversal", "write-off"].contains(type) else {
            return .deadLetter(reason: "unknown type \(MerchantResultMessage.echo(type))")
        }
        let keyText = key.map { String(decoding: $0, as: UTF8.self) }
        guard let line, LineID(rawValue: line).isWellFormed, keyText == line else {
            return .deadLetter(reason: "\(type): lineId missing, malformed or not the message key")
        }
        // From here on the billing system is answered: a field of the wrong type is `invalid_request`.
        let billText = (try? object.string("billId")) ?? nil
        let paymentText = (try? object.string("paymentId")) ?? nil
        func refuse(_ problem: String) -> DecodedCollectionReport {
            .refused(
                RefusedCollectionReport(
                    type: type, lineID: line, billID: billText, paymentID: paymentText, problem: problem))
        }
        let dateText: String?
        let amount: Int64?
        var field = ""
        do {
            for name in ["billId", "paymentId"] {
                field = name
                _ = try object.string(name)
            }
            field = "date"
            dateText = try object.string("date")
        } catch {
            return refuse("\(field) must be a string")
        }
        do {
            amount = try object.integer("amount")
        } catch {
            return refuse("amount must be an integer")
        }
        guard let dateText, let date = CalendarDay(dateText) else {
            return refuse("date must be a day YYYY-MM-DD")
        }
        var cycle: BillingCycle?
        if let billText {
            guard let billed = Self.cycle(ofBill: billText, line: line) else {
                return refuse("billId must be bill-<lineId>-<YYYY-MM> of this line")
            }
            cycle = billed
        } else if type != "payment-reversal" {
            return refuse("billId is missing")
        }
        let lineID = LineID(rawValue: line)
        switch type {
        case "payment":
            guard let paymentText, PaymentID(rawValue: paymentText).isWellFormed else {
                return refuse("paymentId must be 1 to 64 printable ASCII characters")
            }
            guard let amount, (1...Self.maximumAmount).contains(amount) else {
                return refuse("amount must be a whole number of yen from 1 to \(Self.maximumAmount)")
            }
            return .report(
                CollectionReport(
                    lineID: lineID, cycle: cycle,
                    event: .payment(PaymentID(rawValue: paymentText), amount: Yen(amount), receivedOn: date),
                    sentOn: sentOn))
        case "payment-reversal":
            guard let paymentText, PaymentID(rawValue: paymentText).isWellFormed else {
                return refuse("paymentId must be 1 to 64 printable ASCII characters")
            }
            return .report(
                CollectionReport(
                    lineID: lineID, cycle: cycle, event: .reversal(PaymentID(rawValue: paymentText), reversedOn: date),
                    sentOn: sentOn))
        default:
            return .report(
                CollectionReport(lineID: lineID, cycle: cycle, event: .writeOff(writtenOffOn: date), sentOn: sentOn))
        }
    }

    /// The month of the bill `bill-<line>-<YYYY-MM>` (as ``LineBillMessage/id`` writes it), when it is `line`'s.
    public static func cycle(ofBill billID: String, line: String) -> BillingCycle? {
        let prefix = "bill-\(line)-"
        guard billID.hasPrefix(prefix) else { return nil }
        return BillingCycle(String(billID.dropFirst(prefix.count)))
    }
}

/// Sent to `matomete.collection-results` (key: line id) for every report of
/// `matomete.collections` that is not dead-lettered.
public struct CollectionResultMessage: Codable, Hashable, Sendable {
    /// Stable: derived from the report's place in its topic, so the billing system can drop repeats.
    public var id: String
    /// The report's `type`: `payment`, `payment-reversal` or `write-off`.
    public var type: String
    /// The line, also the message key.
    public var lineId: String
    /// The bill the report concerns (`bill-<line>-<YYYY-MM>`), when known.
    public var billId: String?
    /// The payment id, for a payment or a reversal.
    public var paymentId: String?
    /// `accepted` or `rejected`.
    public var status: String
    /// Whether an accepted report repeats one applied before, and so changed nothing.
    public var `repeat`: Bool
    /// The reason code when rejected.
    public var reason: String?
    /// A sentence for people when rejected.
    public var message: String?
    /// What is still open on the bill after the report, in yen, when the bill is known.
    public var open: Int64?

    /// The result of a report the rules decided.
    public init(id: String, report: CollectionReport, outcome: CollectionOutcome) {
        self.id = id
        lineId = report.lineID.rawValue
        let cycle = outcome.cycle ?? report.cycle
        billId = cycle.map { "bill-\(report.lineID.rawValue)-\($0)" }
        switch report.event {
        case .payment(let payment, _, _):
            type = "payment"
            paymentId = payment.rawValue
        case .reversal(let payment, _):
            type = "payment-reversal"
            paymentId = payment.rawValue
        case .writeOff:
            type = "write-off"
        }
        status = outcome.isAccepted ? "accepted" : "rejected"
        `repeat` = outcome.isRepeat
        reason = outcome.rejection?.code
        message = outcome.rejection?.sentence
        open = outcome.open?.amount
    }

    /// The result of a report refused before the rules saw it (`invalid_request`); its ids are echoed cut to
    /// 64 bytes.
    public init(id: String, refused: RefusedCollectionReport) {
        self.id = id
        type = refused.type
        lineId = refused.lineID
        billId = refused.billID.map(MerchantResultMessage.echo)
        paymentId = refused.paymentID.map(MerchantResultMessage.echo)
        status = "rejected"
        `repeat` = false
        reason = CollectionRejection.invalidRequest.code
        message = "\(CollectionRejection.invalidRequest.sentence) \(refused.problem)."
    }

    /// The id of the result of the report at `offset` of `topic`'s `partition`.
    public static func id(topic: String, partition: Int32, offset: Int64) -> String {
        "collection-result-\(topic)-\(partition)-\(offset)"
    }

    /// The message as JSON (sorted keys, absent fields omitted).
    public var jsonBytes: [UInt8] {
        var writer = JSONObjectWriter()
        writer.add("billId", billId)
        writer.add("id", id)
        writer.add("lineId", lineId)
        writer.add("message", message)
        if let open { writer.add("open", open) }
        writer.add("paymentId", paymentId)
        writer.add("reason", reason)
        writer.add("repeat", json: Array((`repeat` ? "true" : "false").utf8))
        writer.add("status", status)
        writer.add("type", type)
        return writer.finish()
    }
}

/// Sent to `matomete.payouts` and to the merchant's own
/// `matomete.merchant.<id>.payouts` (key: merchant id) once per merchant per
/// payout period with money moved or a carry.
public struct PayoutMessage: Codable, Hashable, Sendable {
    /// One billed month on the statement.
    public struct Line: Codable, Hashable, Sendable {
        /// The billed month the money is for.
        public var cycle: String
        /// Payments' shares received in the period, in yen.
        public var collected: Int64
        /// Reversed payments' shares, negated: negative, or positive where the share was a credit drawn down.
        public var reversed: Int64
        /// Written off in the period (moves no money; no fee is taken on it).
        public var writtenOff: Int64
        /// The fee taken in the period, tax included (negative when a reversal gives some back).
        public var fee: Int64
        /// `collected + reversed − fee`.
        public var payable: Int64
    }

    /// `payout-<merchant>-<period>`: stable, so finance and the merchant can drop repeats.
    public var id: String
    /// The merchant paid; also the message key.
    public var merchantId: String
    /// The payout period: the month the money moved in, for example `2026-12`.
    public var period: String
    /// The day the carrier pays, `YYYY-MM-DD`.
    public var payableOn: String
    /// Per billed month, oldest first.
    public var lines: [Line]
    /// The negative amount carried from the merchant's last statement, or 0.
    public var carriedIn: Int64
    /// What the carrier pays on `payableOn`: the lines' payable plus `carriedIn`, when above zero; else 0.
    public var amountPayable: Int64
    /// Carried to the next statement when the total is below zero; else 0.
    public var carriedOut: Int64

    /// The message for a statement, paid on `payableOn`.
    public init(_ statement: PayoutStatement, payableOn: CalendarDay) {
        id = "payout-\(statement.merchantID.rawValue)-\(statement.period)"
        merchantId = statement.merchantID.rawValue
        period = statement.period.description
        self.payableOn = payableOn.description
        lines = statement.lines.map {
            Line(
                cycle: $0.cycle.description, collected: $0.collected.amount, reversed: $0.reversed.amount,
                writtenOff: $0.writtenOff.amount, fee: $0.fee.amount, payable: $0.payable.amount)
        }
        carriedIn = statement.carriedIn.amount
        amountPayable = statement.amountPayable.amount
        carriedOut = statement.carriedOut.amount
    }

    /// The message as JSON (sorted keys).
    public func jsonBytes() throws -> [UInt8] { try sortedJSON(self) }
}
