import Billing
import Testing

/// The collection rules: payments, reversals and write-offs against a line bill, which check wins, and
/// how every merchant's amount is booked.
@Suite("Collection rules")
struct CollectionTests {
    static let november = BillingCycle("2026-11")!
    static let line: LineID = "L1"

    static func day(_ text: String) -> CalendarDay { CalendarDay(text)! }

    static func report(
        _ event: CollectionReport.Event, cycle: BillingCycle? = november, sentOn: String = "2027-03-01"
    ) -> CollectionReport {
        CollectionReport(lineID: line, cycle: cycle, event: event, sentOn: day(sentOn))
    }

    static func pay(
        _ id: PaymentID, _ amount: Yen, on date: String = "2026-12-20", cycle: BillingCycle? = november
    )
        -> CollectionReport
    {
        report(.payment(id, amount: amount, receivedOn: day(date)), cycle: cycle)
    }

    static func reverse(_ id: PaymentID, on date: String = "2026-12-27") -> CollectionReport {
        report(.reversal(id, reversedOn: day(date)), cycle: nil)
    }

    static func writeOff(on date: String = "2027-02-28") -> CollectionReport {
        report(.writeOff(writtenOffOn: day(date)))
    }

    /// A bill of ¥1,500 from two merchants (a: ¥1,000, b: ¥500), nothing collected.
    static func book(billed: [MerchantID: Yen] = ["a": 1_000, "b": 500]) -> LineCollections {
        LineCollections(lineID: line, bills: [BillCollection(cycle: november, billed: billed)], payments: [])
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var billed: [MerchantID: Yen] = ["a": 1_000, "b": 500]
        var reports: [CollectionReport]
        /// The codes, in order (`accepted`, `repeat` or a rejection code).
        var answers: [String]
        var collected: [MerchantID: Yen]
        var writtenOff: [MerchantID: Yen] = [:]
        var open: Yen
        var testDescription: String { name }
    }

    @Test(
        "Each report's answer and the bill afterwards",
        arguments: [
            Case(
                name: "a part payment is shared pro rata", reports: [pay("p1", 300)], answers: ["accepted"],
                collected: ["a": 200, "b": 100], open: 1_200),
            Case(
                name: "several payments close the bill exactly",
                reports: [pay("p1", 301), pay("p2", 1_000), pay("p3", 199)],
                answers: ["accepted", "accepted", "accepted"], collected: ["a": 1_000, "b": 500], open: 0),
            Case(
                name: "the same payment again is a repeat and changes nothing",
                reports: [pay("p1", 300), pay("p1", 300)], answers: ["accepted", "repeat"],
                collected: ["a": 200, "b": 100], open: 1_200),
            Case(
                name: "the same payment id for another amount is refused",
                reports: [pay("p1", 300), pay("p1", 400)], answers: ["accepted", "payment_id_reused"],
                collected: ["a": 200, "b": 100], open: 1_200),
            Case(
                name: "more than is open is an overpayment", reports: [pay("p1", 1_000), pay("p2", 501)],
                answers: ["accepted", "overpayment"], collected: ["a": 667, "b": 333], open: 500),
            Case(
                name: "a reversal undoes exactly its payment's shares",
                reports: [pay("p1", 301), pay("p2", 600), reverse("p1")],
                answers: ["accepted", "accepted", "accepted"], collected: ["a": 400, "b": 200], open: 900),
            Case(
                name: "a reversal twice is a repeat", reports: [pay("p1", 300), reverse("p1"), reverse("p1")],
                answers: ["accepted", "accepted", "repeat"], collected: ["a": 0, "b": 0], open: 1_500),
            Case(
                name: "a reversal of an unknown payment", reports: [reverse("nope")], answers: ["unknown_payment"],
                collected: [:], open: 1_500),
            Case(
                name: "a write-off gives up what is open", reports: [pay("p1", 300), writeOff()],
                answers: ["accepted", "accepted"], collected: ["a": 200, "b": 100],
                writtenOff: ["a": 800, "b": 400], open: 0),
            Case(
                name: "a payment on a written-off bill is refused; the write-off again is a repeat",
                reports: [writeOff(), pay("p1", 1), writeOff()],
                answers: ["accepted", "bill_written_off", "repeat"], collected: [:],
                writtenOff: ["a": 1_000, "b": 500], open: 0),
            Case(
                name: "a payment reversed after the write-off is written off too",
                reports: [pay("p1", 300), writeOff(), reverse("p1", on: "2027-03-01")],
                answers: ["accepted", "accepted", "accepted"], collected: ["a": 0, "b": 0],
                writtenOff: ["a": 1_000, "b": 500], open: 0),
            Case(
                name: "nothing open to write off", reports: [pay("p1", 1_500), writeOff()],
                answers: ["accepted", "nothing_open"], collected: ["a": 1_000, "b": 500], open: 0),
            Case(
                name: "a bill of zero has nothing to collect or write off", billed: ["a": 500, "b": -500],
                reports: [pay("p1", 1), writeOff()], answers: ["nothing_to_collect", "nothing_to_collect"],
                collected: [:], open: 0),
            Case(
                name: "a credit is drawn down as the bill is paid", billed: ["a": 1_000, "b": -200],
                reports: [pay("p1", 400), pay("p2", 400)], answers: ["accepted", "accepted"],
                collected: ["a": 1_000, "b": -200], open: 0),
            Case(
                name: "unknown bill", reports: [pay("p1", 1, cycle: BillingCycle("2026-10")!)],
                answers: ["unknown_bill"], collected: [:], open: 1_500),
            Case(
                name: "a payment dated in the billed month itself", reports: [pay("p1", 1, on: "2026-11-30")],
                answers: ["date_out_of_range"], collected: [:], open: 1_500),
            Case(
                name: "a payment dated two days after it was sent", reports: [pay("p1", 1, on: "2027-03-03")],
                answers: ["date_out_of_range"], collected: [:], open: 1_500),
            Case(
                name: "a reversal dated before its payment", reports: [pay("p1", 5), reverse("p1", on: "2026-12-19")],
                answers: ["accepted", "date_out_of_range"], collected: ["a": 3, "b": 2], open: 1_495),
            Case(
                name: "the repeat is answered before the date is checked",
                reports: [pay("p1", 300), pay("p1", 300, on: "2026-11-01")], answers: ["accepted", "repeat"],
                collected: ["a": 200, "b": 100], open: 1_200),
            Case(
                name: "unknown bill wins over a reused payment id",
                reports: [pay("p1", 300), pay("p1", 300, cycle: BillingCycle("2026-10")!)],
                answers: ["accepted", "unknown_bill"], collected: ["a": 200, "b": 100], open: 1_200),
        ])
    func answers(_ test: Case) {
        var book = Self.book(billed: test.billed)
        let answers = test.reports.map { report -> String in
            let outcome = book.apply(report, firstOpenPeriod: nil)
            return outcome.rejection?.code ?? (outcome.isRepeat ? "repeat" : "accepted")
        }
        #expect(answers == test.answers)
        let bill = book.bills[Self.november]!
        #expect(bill.collected.filter { $0.value != .zero } == test.collected.filter { $0.value != .zero })
        #expect(bill.writtenOff.filter { $0.value != .zero } == test.writtenOff.filter { $0.value != .zero })
        #expect(bill.open == test.open)
        // The ledger adds up to the bill's state, merchant by merchant.
        for merchant in bill.billed.keys {
            let entries = book.entries.filter { $0.merchantID == merchant }
            let collected = entries.filter { $0.kind != .writeOff }.map(\.amount).sum()
            let writtenOff = entries.filter { $0.kind == .writeOff }.map(\.amount).sum()
            #expect(collected == bill.collected[merchant, default: .zero], "\(merchant)")
            #expect(writtenOff == bill.writtenOff[merchant, default: .zero], "\(merchant)")
            #expect(bill.open(merchant) + collected + writtenOff == bill.billed[merchant]!, "\(merchant)")
        }
    }

    @Test("Amounts are booked in the report's month, or the first month not paid out yet")
    func periods() {
        var book = Self.book()
        _ = book.apply(Self.pay("p1", 300, on: "2026-12-31"), firstOpenPeriod: nil)
        _ = book.apply(Self.pay("p2", 300, on: "2026-12-31"), firstOpenPeriod: BillingCycle("2027-01")!)
        _ = book.apply(Self.pay("p3", 300, on: "2027-02-01"), firstOpenPeriod: BillingCycle("2027-01")!)
        #expect(
            book.entries.map { "\($0.reference) \($0.period)" } == [
                "p1 2026-12", "p1 2026-12", "p2 2027-01", "p2 2027-01", "p3 2027-02", "p3 2027-02",
            ])
        #expect(book.newPayments == ["p1", "p2", "p3"])
    }

    @Test("Days: parsed strictly, in Japan time")
    func days() {
        #expect(CalendarDay("2028-02-29")?.description == "2028-02-29")
        for bad in ["2027-02-29", "2026-13-01", "2026-12-00", "2026-12-32", "2026-1-01", "2026-12-1x", " 2026-12-01"] {
            #expect(CalendarDay(bad) == nil, "\(bad)")
        }
        // 2026-12-31T15:00Z is 2027-01-01 00:00 in Japan.
        #expect(CalendarDay(containing: 1_798_729_200).description == "2027-01-01")
        #expect(CalendarDay(containing: 1_798_729_199).description == "2026-12-31")
        #expect(CalendarDay("2026-12-31")!.next.description == "2027-01-01")
        // A message timestamp gives a day only where that day and the next are days a cycle can have.
        #expect(CalendarDay.containing(milliseconds: 946_652_399_999) == nil)
        #expect(CalendarDay.containing(milliseconds: 946_652_400_000)?.description == "2000-01-01")
        #expect(CalendarDay.containing(milliseconds: 253_402_181_999_999)?.next.description == "9999-12-31")
        #expect(CalendarDay.containing(milliseconds: 253_402_182_000_000) == nil)
        for extreme in [Int64.min, -1, 0, Int64.max] { #expect(CalendarDay.containing(milliseconds: extreme) == nil) }
    }
}
