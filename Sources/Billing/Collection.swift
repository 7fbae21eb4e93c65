/// What the carrier's billing system reports about a line bill after it was
/// sent: money received, a payment that bounced, or the rest given up.
///
/// The rules here decide each report against the bill's collection state,
/// share every payment among the bill's merchants (``PaymentAllocation``),
/// and book every merchant's share into a payout period: the month of the
/// report's date, or the first month not yet paid out when that one already
/// was (a late report is never lost, only paid later).

/// A payment's id in the carrier's billing system, unique per line.
public struct PaymentID: BillingIdentifier {
    /// The id as the billing system writes it.
    public var rawValue: String
    /// Wraps a payment id, unchecked.
    public init(rawValue: String) { self.rawValue = rawValue }
}

/// A calendar day in Japan time, written `2026-12-25`.
public struct CalendarDay: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The month the day is in.
    public let cycle: BillingCycle
    /// The day of the month, from 1.
    public let day: Int

    /// A day; `nil` when the month has no such day.
    public init?(cycle: BillingCycle, day: Int) {
        guard (1...Self.days(in: cycle)).contains(day) else { return nil }
        self.cycle = cycle
        self.day = day
    }

    /// Parses `YYYY-MM-DD`: ASCII digits only, a day the month has.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 10, bytes[7] == UInt8(ascii: "-"), let cycle = BillingCycle(String(text.prefix(7))),
            bytes[8...].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let day = Int(text.suffix(2))
        else { return nil }
        self.init(cycle: cycle, day: day)
    }

    /// The day in Japan containing an instant, given as seconds since 1970-01-01T00:00Z, in the years 2000
    /// to 9999 (it traps outside them; ``containing(milliseconds:)`` does not).
    public init(containing secondsSince1970: Int64) {
        let japan = secondsSince1970 + 9 * 3600
        let days = Int(japan >= 0 ? japan / 86_400 : (japan - 86_399) / 86_400)
        let (year, month, day) = civilDate(daysSince1970: days)
        self.init(cycle: BillingCycle(year: year, month: month)!, day: day)!
    }

    /// The day in Japan containing an instant given in milliseconds since 1970, when that day is from
    /// 2000-01-01 to 9999-12-30 (a cycle's years, with a day after it); `nil` otherwise.
    public static func containing(milliseconds: Int64) -> CalendarDay? {
        // 2000-01-01T00:00+09:00 to 9999-12-30T23:59:59.999+09:00.
        guard (946_652_400_000...253_402_181_999_999).contains(milliseconds) else { return nil }
        return CalendarDay(containing: milliseconds / 1000)
    }

    /// The first day of `cycle`.
    public static func first(of cycle: BillingCycle) -> CalendarDay { CalendarDay(cycle: cycle, day: 1)! }

    /// The last day of `cycle`.
    public static func last(of cycle: BillingCycle) -> CalendarDay { CalendarDay(cycle: cycle, day: days(in: cycle))! }

    /// The day after this one.
    public var next: CalendarDay {
        day < Self.days(in: cycle) ? CalendarDay(cycle: cycle, day: day + 1)! : .first(of: cycle.next)
    }

    /// The number of days in `cycle`'s month.
    public static func days(in cycle: BillingCycle) -> Int {
        switch cycle.month {
        case 2:
            let leap = cycle.year % 4 == 0 && (cycle.year % 100 != 0 || cycle.year % 400 == 0)
            return leap ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// `2026-12-25`.
    public var description: String { "\(cycle)-\(day < 10 ? "0" : "")\(day)" }

    /// Whether `lhs` is an earlier day than `rhs`.
    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.cycle, lhs.day) < (rhs.cycle, rhs.day) }
}

/// One report of `matomete.collections`, as the rules read it.
public struct CollectionReport: Hashable, Sendable {
    /// What happened.
    public enum Event: Hashable, Sendable {
        /// `amount` received on `receivedOn` against the bill.
        case payment(PaymentID, amount: Yen, receivedOn: CalendarDay)
        /// The payment bounced on `reversedOn`; the bill is found through the payment.
        case reversal(PaymentID, reversedOn: CalendarDay)
        /// What is still open on the bill is given up on `writtenOffOn`.
        case writeOff(writtenOffOn: CalendarDay)
    }

    /// The line whose bill it concerns (the message key).
    public var lineID: LineID
    /// The billed month, from the bill id; for a reversal, `nil` unless the report names the bill.
    public var cycle: BillingCycle?
    /// What happened.
    public var event: Event
    /// The Japan day the report was sent (its Kafka timestamp): no report is dated more than a day after it.
    public var sentOn: CalendarDay?

    /// A report about the bill of `lineID` for `cycle`.
    public init(lineID: LineID, cycle: BillingCycle?, event: Event, sentOn: CalendarDay?) {
        self.lineID = lineID
        self.cycle = cycle
        self.event = event
        self.sentOn = sentOn
    }

    /// The report's date.
    public var date: CalendarDay {
        switch event {
        case .payment(_, _, let day), .reversal(_, let day), .writeOff(let day): day
        }
    }
}

/// Why a collection report was refused: a stable code and a sentence (the codes are in `docs/contract.md`).
public enum CollectionRejection: String, Sendable, CaseIterable {
    /// A field is missing or has the wrong form.
    case invalidRequest = "invalid_request"
    /// The line has no bill for that month.
    case unknownBill = "unknown_bill"
    /// The payment id was already used on the line for another bill or amount.
    case paymentIDReused = "payment_id_reused"
    /// No payment with this id was received on the line (for that bill).
    case unknownPayment = "unknown_payment"
    /// The date is before the month after the billed month, or more than a day after the report was sent.
    case dateOutOfRange = "date_out_of_range"
    /// The bill was written off: nothing more is collected on it.
    case billWrittenOff = "bill_written_off"
    /// The bill's total is zero or negative: there is nothing to collect or write off.
    case nothingToCollect = "nothing_to_collect"
    /// The payment is more than what is still open on the bill.
    case overpayment = "overpayment"
    /// Nothing is open on the bill to write off: it is paid in full.
    case nothingOpen = "nothing_open"

    /// The stable code, for example `overpayment`.
    public var code: String { rawValue }

    /// A sentence for people.
    public var sentence: String {
        switch self {
        case .invalidRequest: "The report is missing a field or has a field of the wrong form."
        case .unknownBill: "The line has no bill for that month."
        case .paymentIDReused: "This payment id was already used on the line for another bill or amount."
        case .unknownPayment: "No payment with this id was received on the line for this bill."
        case .dateOutOfRange:
            "The date is before the month after the billed month, or more than a day after the report was sent."
        case .billWrittenOff: "The bill was written off; nothing more is collected on it."
        case .nothingToCollect: "The bill's total is zero or negative; there is nothing to collect on it."
        case .overpayment: "The payment is more than what is still open on the bill."
        case .nothingOpen: "Nothing is open on the bill: it is paid in full."
        }
    }
}

/// A payment received against a line bill, with its shares.
public struct PaymentRecord: Hashable, Sendable {
    /// The billing system's id, unique per line.
    public var id: PaymentID
    /// The month of the bill it paid.
    public var cycle: BillingCycle
    /// What was received.
    public var amount: Yen
    /// When it was received.
    public var receivedOn: CalendarDay
    /// Each merchant's share of it (``PaymentAllocation``); they add up to ``amount``.
    public var shares: [MerchantID: Yen]
    /// When it bounced, if it did.
    public var reversedOn: CalendarDay?

    /// A payment as stored.
    public init(
        id: PaymentID, cycle: BillingCycle, amount: Yen, receivedOn: CalendarDay, shares: [MerchantID: Yen],
        reversedOn: CalendarDay? = nil
    ) {
        self.id = id
        self.cycle = cycle
        self.amount = amount
        self.receivedOn = receivedOn
        self.shares = shares
        self.reversedOn = reversedOn
    }
}

/// One line bill's collection state.
public struct BillCollection: Hashable, Sendable {
    /// The billed month.
    public var cycle: BillingCycle
    /// Each merchant's items on the bill, netted (charges and subscriptions less credits).
    public var billed: [MerchantID: Yen]
    /// Each merchant's collected amount: its payment shares less the reversed ones.
    public var collected: [MerchantID: Yen]
    /// Each merchant's written-off amount.
    public var writtenOff: [MerchantID: Yen]
    /// When the bill was written off, if it was.
    public var writtenOffOn: CalendarDay?

    /// A bill's state as stored.
    public init(
        cycle: BillingCycle, billed: [MerchantID: Yen], collected: [MerchantID: Yen] = [:],
        writtenOff: [MerchantID: Yen] = [:], writtenOffOn: CalendarDay? = nil
    ) {
        self.cycle = cycle
        self.billed = billed
        self.collected = collected
        self.writtenOff = writtenOff
        self.writtenOffOn = writtenOffOn
    }

    /// The bill's total.
    public var total: Yen { billed.values.sum() }

    /// What `merchant` still has open: billed, less collected, less written off.
    public func open(_ merchant: MerchantID) -> Yen {
        (billed[merchant] ?? .zero) - (collected[merchant] ?? .zero) - (writtenOff[merchant] ?? .zero)
    }

    /// What is still open on the whole bill.
    public var open: Yen { billed.keys.map(open).sum() }
}

/// A merchant's amount moved by a report, booked into a payout period: the
/// ledger payouts are made from.
public struct CollectionEntry: Hashable, Sendable {
    /// What moved the amount.
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// A payment's share: collected (positive, or negative for a credit drawn down).
        case payment
        /// A bounced payment's share, negated: no longer collected.
        case reversal
        /// Given up: no longer open, never collected.
        case writeOff = "write-off"
    }

    /// The line billed.
    public var lineID: LineID
    /// The billed month.
    public var cycle: BillingCycle
    /// The merchant whose amount it is.
    public var merchantID: MerchantID
    /// What moved it.
    public var kind: Kind
    /// The payment it comes from; empty for a write-off of the bill's open amounts.
    public var reference: String
    /// Yen, with its sign.
    public var amount: Yen
    /// The report's date.
    public var date: CalendarDay
    /// The payout period it is paid out (or recovered) in.
    public var period: BillingCycle

    /// An entry of the ledger.
    public init(
        lineID: LineID, cycle: BillingCycle, merchantID: MerchantID, kind: Kind, reference: String, amount: Yen,
        date: CalendarDay, period: BillingCycle
    ) {
        self.lineID = lineID
        self.cycle = cycle
        self.merchantID = merchantID
        self.kind = kind
        self.reference = reference
        self.amount = amount
        self.date = date
        self.period = period
    }
}

/// What a report came to, as told to the billing system.
public struct CollectionOutcome: Hashable, Sendable {
    /// Why it was refused; `nil` when accepted.
    public var rejection: CollectionRejection?
    /// Accepted before: the report repeats one already applied, and changed nothing.
    public var isRepeat: Bool
    /// The bill's month, when known.
    public var cycle: BillingCycle?
    /// What is still open on the bill afterwards, when the bill is known.
    public var open: Yen?

    /// An outcome: refused for `rejection` (`nil`: accepted, a repeat when `isRepeat`).
    public init(rejection: CollectionRejection?, isRepeat: Bool = false, cycle: BillingCycle?, open: Yen? = nil) {
        self.rejection = rejection
        self.isRepeat = isRepeat
        self.cycle = cycle
        self.open = open
    }

    /// Whether the report was accepted.
    public var isAccepted: Bool { rejection == nil }
}

/// One line's bills and payments, loaded for a batch of reports: what the
/// rules need, and what they changed.
public struct LineCollections: Sendable {
    /// The line.
    public var lineID: LineID
    /// The line's bills the batch's reports refer to, by month.
    public var bills: [BillingCycle: BillCollection]
    /// The line's payments the batch's reports name.
    public var payments: [PaymentID: PaymentRecord]
    /// Payments added by the batch, in order.
    public private(set) var newPayments: [PaymentID] = []
    /// Payments the batch reversed, in order.
    public private(set) var reversedPayments: [PaymentID] = []
    /// Bills the batch wrote off, in order.
    public private(set) var writtenOffBills: [BillingCycle] = []
    /// The ledger entries the batch added, in order.
    public private(set) var entries: [CollectionEntry] = []

    /// A line's state as loaded.
    public init(lineID: LineID, bills: [BillCollection], payments: [PaymentRecord]) {
        self.lineID = lineID
        self.bills = Dictionary(bills.map { ($0.cycle, $0) }, uniquingKeysWith: { first, _ in first })
        self.payments = Dictionary(payments.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Decides `report` and applies it when accepted. Amounts are booked into
    /// the report's month, or `firstOpenPeriod` when that is later (the
    /// report's month was paid out already).
    ///
    /// The checks, in order (the first that fails is the answer):
    /// - payment: the bill exists (`unknown_bill`); the same payment id again
    ///   for the same bill and amount is a repeat, accepted and changing
    ///   nothing, for another bill or amount `payment_id_reused`; the date
    ///   (`date_out_of_range`); the bill not written off (`bill_written_off`);
    ///   a total above zero (`nothing_to_collect`); at most what is open
    ///   (`overpayment`).
    /// - reversal: the payment exists, on the bill named if one is
    ///   (`unknown_payment`); already reversed is a repeat; the date, not
    ///   before the payment's (`date_out_of_range`).
    /// - write-off: the bill exists (`unknown_bill`); already written off is a
    ///   repeat; the date (`date_out_of_range`); a total above zero
    ///   (`nothing_to_collect`); something open (`nothing_open`).
    public mutating func apply(_ report: CollectionReport, firstOpenPeriod: BillingCycle?) -> CollectionOutcome {
        func refuse(_ reason: CollectionRejection, _ cycle: BillingCycle?) -> CollectionOutcome {
            CollectionOutcome(
                rejection: reason, isRepeat: false, cycle: cycle, open: cycle.flatMap { bills[$0]?.open })
        }
        func accept(_ cycle: BillingCycle, repeat isRepeat: Bool = false) -> CollectionOutcome {
            CollectionOutcome(rejection: nil, isRepeat: isRepeat, cycle: cycle, open: bills[cycle]?.open)
        }
        func dateFits(_ day: CalendarDay, notBefore earliest: CalendarDay) -> Bool {
            day >= earliest && (report.sentOn.map { day <= $0.next } ?? true)
        }
        let period = max(report.date.cycle, firstOpenPeriod ?? report.date.cycle)
        switch report.event {
        case .payment(let id, let amount, let receivedOn):
            guard let cycle = report.cycle, var bill = bills[cycle] else { return refuse(.unknownBill, report.cycle) }
            if let earlier = payments[id] {
                return earlier.cycle == cycle && earlier.amount == amount
                    ? accept(cycle, repeat: true) : refuse(.paymentIDReused, cycle)
            }
            guard dateFits(receivedOn, notBefore: .first(of: cycle.next)) else { return refuse(.dateOutOfRange, cycle) }
            guard bill.writtenOffOn == nil else { return refuse(.billWrittenOff, cycle) }
            guard bill.total > .zero else { return refuse(.nothingToCollect, cycle) }
            let open = Dictionary(uniqueKeysWithValues: bill.billed.keys.map { ($0, bill.open($0)) })
            let shares: [MerchantID: Yen]
            do {
                shares = try PaymentAllocation.allocate(amount, open: open)
            } catch {
                return refuse(.overpayment, cycle)
            }
            for (merchant, share) in shares.sorted(by: { $0.key < $1.key }) where share != .zero {
                bill.collected[merchant, default: .zero] = bill.collected[merchant, default: .zero] + share
                entries.append(
                    CollectionEntry(
                        lineID: lineID, cycle: cycle, merchantID: merchant, kind: .payment, reference: id.rawValue,
                        amount: share, date: receivedOn, period: period))
            }
            bills[cycle] = bill
            payments[id] = PaymentRecord(
                id: id, cycle: cycle, amount: amount, receivedOn: receivedOn,
                shares: shares.filter { $0.value != .zero })
            newPayments.append(id)
            return accept(cycle)

        case .reversal(let id, let reversedOn):
            guard var payment = payments[id], report.cycle.map({ $0 == payment.cycle }) ?? true,
                var bill = bills[payment.cycle]
            else { return refuse(.unknownPayment, report.cycle) }
            let cycle = payment.cycle
            if payment.reversedOn != nil { return accept(cycle, repeat: true) }
            guard dateFits(reversedOn, notBefore: payment.receivedOn) else { return refuse(.dateOutOfRange, cycle) }
            for (merchant, share) in payment.shares.sorted(by: { $0.key < $1.key }) {
                bill.collected[merchant, default: .zero] = bill.collected[merchant, default: .zero] - share
                entries.append(
                    CollectionEntry(
                        lineID: lineID, cycle: cycle, merchantID: merchant, kind: .reversal, reference: id.rawValue,
                        amount: -share, date: reversedOn, period: period))
                // On a bill already given up, what bounced is given up with it.
                if bill.writtenOffOn != nil {
                    bill.writtenOff[merchant, default: .zero] = bill.writtenOff[merchant, default: .zero] + share
                    entries.append(
                        CollectionEntry(
                            lineID: lineID, cycle: cycle, merchantID: merchant, kind: .writeOff,
                            reference: id.rawValue, amount: share, date: reversedOn, period: period))
                }
            }
            payment.reversedOn = reversedOn
            payments[id] = payment
            bills[cycle] = bill
            reversedPayments.append(id)
            return accept(cycle)

        case .writeOff(let writtenOffOn):
            guard let cycle = report.cycle, var bill = bills[cycle] else { return refuse(.unknownBill, report.cycle) }
            if bill.writtenOffOn != nil { return accept(cycle, repeat: true) }
            guard dateFits(writtenOffOn, notBefore: .first(of: cycle.next)) else {
                return refuse(.dateOutOfRange, cycle)
            }
            guard bill.total > .zero else { return refuse(.nothingToCollect, cycle) }
            guard bill.open != .zero else { return refuse(.nothingOpen, cycle) }
            for merchant in bill.billed.keys.sorted() {
                let open = bill.open(merchant)
                guard open != .zero else { continue }
                bill.writtenOff[merchant, default: .zero] = bill.writtenOff[merchant, default: .zero] + open
                entries.append(
                    CollectionEntry(
                        lineID: lineID, cycle: cycle, merchantID: merchant, kind: .writeOff, reference: "",
                        amount: open, date: writtenOffOn, period: period))
            }
            bill.writtenOffOn = writtenOffOn
            bills[cycle] = bill
            writtenOffBills.append(cycle)
            return accept(cycle)
        }
    }
}
