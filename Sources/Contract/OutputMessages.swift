import Billing

/// Sent to `matomete.merchant-results` (key: merchant id) for every request.
public struct MerchantResultMessage: Codable, Hashable, Sendable {
    /// Stable: derived from the request's place in its topic, so a consumer can drop repeats.
    public var id: String
    /// `nil` for a line termination from the carrier's line system.
    public var merchantId: String?
    public var requestType: String
    /// The merchant's charge or subscription id (the line id for a termination).
    public var requestId: String
    public var lineId: String
    /// `accepted` or `rejected`.
    public var status: String
    /// The reason code when rejected.
    public var reason: String?
    /// A sentence for people when rejected.
    public var message: String?
    /// The cycle whose bill the request affects.
    public var cycle: String?

    public init(id: String, request: BillingRequest, outcome: Outcome) {
        self.id = id
        merchantId = request.merchantID?.rawValue
        requestType = request.kind
        requestId = request.reference
        lineId = request.lineID.rawValue
        status = outcome.isAccepted ? "accepted" : "rejected"
        reason = outcome.rejection?.code
        message = outcome.rejection?.sentence
        cycle = outcome.cycle?.description
    }

    /// The id of the result of the request at `offset` of `topic`'s `partition`.
    public static func id(topic: String, partition: Int32, offset: Int64) -> String {
        "result-\(topic)-\(partition)-\(offset)"
    }
}

/// Sent to `matomete.line-bills` (key: line id) once per line per closed cycle.
public struct LineBillMessage: Codable, Hashable, Sendable {
    public struct Item: Codable, Hashable, Sendable {
        public var merchantId: String
        public var kind: String
        public var reference: String
        public var description: String
        public var amount: Int64
    }

    public var id: String
    public var lineId: String
    public var cycle: String
    public var items: [Item]
    public var total: Int64

    public init(_ bill: LineBill) {
        id = "bill-\(bill.lineID.rawValue)-\(bill.cycle)"
        lineId = bill.lineID.rawValue
        cycle = bill.cycle.description
        items = bill.items.map {
            Item(
                merchantId: $0.merchantID.rawValue, kind: $0.kind.rawValue, reference: $0.reference,
                description: $0.description, amount: $0.amount.amount)
        }
        total = bill.total.amount
    }
}

/// Sent to `matomete.settlements` (key: merchant id) once per merchant per closed cycle.
public struct SettlementMessage: Codable, Hashable, Sendable {
    /// The tariff applied, as exact integers.
    public struct TariffFields: Codable, Hashable, Sendable {
        /// 500 = 5%.
        public var rateBasisPoints: Int64
        public var perLineThreshold: Int64
        /// 315 = ¥31.5.
        public var perLineFeeTenths: Int64
    }

    public var id: String
    public var merchantId: String
    public var cycle: String
    public var lines: Int64
    public var grossAmount: Int64
    /// Rounded down to the yen, for display; the fee rule compares exactly.
    public var averagePerLine: Int64
    /// `percentage` or `per-line`.
    public var feeRule: String
    public var tariff: TariffFields
    public var fee: Int64
    public var netAmount: Int64
    public var itemCount: Int64
    /// Zero or negative.
    public var creditAmount: Int64

    public init(_ settlement: Settlement) {
        id = "settlement-\(settlement.merchantID.rawValue)-\(settlement.cycle)"
        merchantId = settlement.merchantID.rawValue
        cycle = settlement.cycle.description
        lines = settlement.totals.lines
        grossAmount = settlement.totals.gross.amount
        averagePerLine = settlement.averagePerLine.amount
        feeRule = settlement.feeRule.rawValue
        tariff = TariffFields(
            rateBasisPoints: settlement.tariff.rateBasisPoints,
            perLineThreshold: settlement.tariff.perLineThreshold.amount,
            perLineFeeTenths: settlement.tariff.perLineFeeTenths)
        fee = settlement.fee.amount
        netAmount = settlement.net.amount
        itemCount = settlement.totals.itemCount
        creditAmount = settlement.totals.creditAmount.amount
    }
}
