import Billing
import Testing

/// Sharing a payment among a bill's merchants: pro rata to what is open, largest remainders for the yen left.
@Suite("Payment allocation")
struct AllocationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var open: [MerchantID: Yen]
        var payment: Yen
        var shares: [MerchantID: Yen]
        var testDescription: String { name }
    }

    @Test(
        "Shares, to the yen",
        arguments: [
            Case(name: "in proportion", open: ["a": 1_000, "b": 500], payment: 300, shares: ["a": 200, "b": 100]),
            Case(
                name: "the yen left goes to the largest remainder", open: ["a": 333, "b": 333, "c": 334],
                payment: 100, shares: ["a": 33, "b": 33, "c": 34]),
            Case(
                name: "equal remainders: the larger open amount, then the id", open: ["b": 100, "a": 100],
                payment: 1, shares: ["a": 1, "b": 0]),
            Case(
                name: "equal remainders, different open amounts", open: ["a": 100, "b": 300], payment: 2,
                shares: ["a": 0, "b": 2]),
            Case(
                name: "everything open closes every merchant exactly", open: ["a": 997, "b": 3, "c": 1],
                payment: 1_001, shares: ["a": 997, "b": 3, "c": 1]),
            Case(
                name: "a credit larger than a merchant's charges is drawn down as the bill is paid",
                open: ["a": 1_000, "b": -200], payment: 400, shares: ["a": 500, "b": -100]),
            Case(
                name: "paid in full with a credit", open: ["a": 1_000, "b": -200], payment: 800,
                shares: ["a": 1_000, "b": -200]),
            Case(name: "one merchant", open: ["a": 980], payment: 1, shares: ["a": 1]),
            Case(
                name: "a merchant with nothing open gets nothing", open: ["a": 500, "b": 0], payment: 250,
                shares: ["a": 250, "b": 0]),
        ])
    func shares(_ test: Case) throws {
        let shares = try PaymentAllocation.allocate(test.payment, open: test.open)
        #expect(shares == test.shares)
        #expect(shares.values.reduce(Yen.zero, +) == test.payment, "the shares add up to the payment")
    }

    @Test("Partial payments, one after another, close the bill exactly and never pass a merchant's open amount")
    func severalPayments() throws {
        var open: [MerchantID: Yen] = ["a": 1_234, "b": 567, "c": 89]
        var collected: [MerchantID: Yen] = [:]
        for payment: Yen in [1, 333, 7, 1_000, 549] {
            let shares = try PaymentAllocation.allocate(payment, open: open)
            for (merchant, share) in shares {
                #expect(share >= .zero && share <= open[merchant]!, "\(merchant): \(share) of \(open[merchant]!)")
                open[merchant]! -= share
                collected[merchant, default: .zero] += share
            }
        }
        #expect(open.values.allSatisfy { $0 == .zero })
        #expect(collected == ["a": 1_234, "b": 567, "c": 89])
    }

    @Test("Refused: a payment of zero, more than is open, or on a bill with nothing open")
    func refused() {
        #expect(throws: AllocationError.paymentNotPositive) { try PaymentAllocation.allocate(0, open: ["a": 10]) }
        #expect(throws: AllocationError.overpayment(open: 10)) {
            try PaymentAllocation.allocate(11, open: ["a": 10])
        }
        #expect(throws: AllocationError.nothingOpen) {
            try PaymentAllocation.allocate(1, open: ["a": 100, "b": -100])
        }
        #expect(throws: AllocationError.nothingOpen) { try PaymentAllocation.allocate(1, open: [:]) }
    }

    @Test("A million-yen payment over many merchants stays exact (no overflow)")
    func large() throws {
        let open = Dictionary(uniqueKeysWithValues: (0..<50).map { (MerchantID(rawValue: "m\($0)"), Yen(999_983)) })
        let shares = try PaymentAllocation.allocate(12_345_679, open: open)
        #expect(shares.values.reduce(Yen.zero, +) == 12_345_679)
        #expect(shares.values.allSatisfy { $0 == 246_913 || $0 == 246_914 })
    }
}
