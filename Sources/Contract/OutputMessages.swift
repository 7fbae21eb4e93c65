import Billing

/// Sent for every request to its sender's own results topic
/// (`matomete.merchant.<id>.results`, or `matomete.line-system.results` for a
/// line termination), keyed by line id.
public struct MerchantResultMessage: Codable, Hashable, Sendable {
    /// Stable: derived from the request's place in its topic, so a consumer can drop repeats.
    public var id: String
    /// `nil` for a line termination from the carrier's line system.
    public var merchantId: String?
    /// The request's `type`: `charge`, `subscription`, `charge-cancel`, `subscription-cancel` or `line-termination`.
    public var requestType: String
    /// The merchant's charge or subscription id (the line id for a termination).
    public var requestId: String
    /// The line the request concerns.
    public var lineId: String
    /// `accepted` or `rejected`.
    public var status: String
    /// The reason code when rejected.
    public var reason: String?
    /// A sentence for people when rejected.
    public var message: String?
    /// The cycle whose bill the request affects.
    public var cycle: String?

    /// The result of a request the billing rules decided, under the stable `id` of its place in its topic.
    public init(id: String, request: BillingRequest, outcome: Outcome) {
        self.id = id
        merchantId = request.merchantID?.rawValue
        requestType = request.kind.rawValue
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
    /// One item on the bill: a charge, a subscription's monthly amount, or a credit.
    public struct Item: Codable, Hashable, Sendable {
        /// The merchant whose item it is.
        public var merchantId: String
        /// `charge`, `subscription` or `credit`.
        public var kind: String
        /// The merchant's charge or subscription id.
        public var reference: String
        /// What was bought, in the merchant's words.
        public var description: String
        /// Yen, tax included; negative for a credit.
        public var amount: Int64
    }

    /// `bill-<line>-<cycle>`: stable, so the billing system can drop repeats.
    public var id: String
    /// The line billed; also the message key.
    public var lineId: String
    /// The closed month the bill is for, for example `2026-11`.
    public var cycle: String
    /// The items, ordered by merchant, kind and reference; empty on a zero bill.
    public var items: [Item]
    /// What the line pays for the cycle, in yen: the sum of the items.
    public var total: Int64

    /// The message for one line's bill of a closed cycle.
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
        /// 500 = 5%. For a tariff of other bands than the launch's two: the last percentage band's.
        public var rateBasisPoints: Int64
        /// The average per line, in yen, below which the per-line fee applies (600). For other bands: where
        /// the first percentage band starts.
        public var perLineThreshold: Int64
        /// 315 = ¥31.5. For other bands: the first band's fee per line (0 when it is a percentage).
        public var perLineFeeTenths: Int64
        /// Every band, lowest first.
        public var bands: [BandFields]
        /// `included` (the fee is the whole charge) or `added` (consumption tax is added to it).
        public var tax: String
    }

    /// One band of a tariff: from `from` yen of average per line on, a fee per line or a percentage.
    public struct BandFields: Codable, Hashable, Sendable {
        /// The smallest average billed amount per line in the band, in yen.
        public var from: Int64
        /// The fee per line in sen (hundredths of a yen: 3150 = ¥31.5), when the band charges per line.
        public var perLineSen: Int64?
        /// The percentage in basis points (300 = 3 %), when the band charges a percentage.
        public var percentBasisPoints: Int64?

        init(_ band: TariffBand) {
            from = band.lowerBound.amount
            switch band.rule {
            case .perLine(let sen): perLineSen = sen
            case .percentage(let points): percentBasisPoints = points
            }
        }
    }

    /// `settlement-<merchant>-<cycle>`: stable, so finance can drop repeats.
    public var id: String
    /// The merchant settled; also the message key.
    public var merchantId: String
    /// The closed month settled, for example `2026-11`.
    public var cycle: String
    /// Distinct access lines with at least one of the merchant's items on the cycle's bills.
    public var lines: Int64
    /// The sum of those items in yen: charges, subscription amounts and credits.
    public var grossAmount: Int64
    /// Rounded down to the yen, for display; the fee rule compares exactly.
    public var averagePerLine: Int64
    /// `percentage` or `per-line`.
    public var feeRule: String
    /// The tariff applied.
    public var tariff: TariffFields
    /// Which band applied, counted from 1, as in `tariff.bands`.
    public var band: Int
    /// The fee before tax in yen, rounded down once (the whole fee when the tariff includes tax).
    public var feeBeforeTax: Int64
    /// The consumption tax on it in yen, rounded down once; 0 when the tariff includes tax.
    public var tax: Int64
    /// The consumption tax rate of the billed month applied, in basis points (1000 = 10 %); 0 when the
    /// tariff includes tax.
    public var taxRateBasisPoints: Int64
    /// What the carrier keeps, in yen: `feeBeforeTax + tax`.
    public var fee: Int64
    /// `grossAmount − fee`: what the carrier pays the merchant; negative when the merchant owes.
    public var netAmount: Int64
    /// The number of the merchant's items on the cycle's bills.
    public var itemCount: Int64
    /// Zero or negative.
    public var creditAmount: Int64

    /// The message for one merchant's settlement of a closed cycle.
    public init(_ settlement: Settlement) {
        id = "settlement-\(settlement.merchantID.rawValue)-\(settlement.cycle)"
        merchantId = settlement.merchantID.rawValue
        cycle = settlement.cycle.description
        lines = settlement.totals.lines
        grossAmount = settlement.totals.gross.amount
        averagePerLine = settlement.averagePerLine.amount
        feeRule = settlement.feeRule.rawValue
        let summary = settlement.tariffSummary
        tariff = TariffFields(
            rateBasisPoints: summary.rateBasisPoints, perLineThreshold: summary.perLineThreshold.amount,
            perLineFeeTenths: summary.perLineFeeTenths, bands: settlement.tariff.bands.map(BandFields.init),
            tax: settlement.tariff.tax.rawValue)
        band = settlement.feeDetail.band + 1
        feeBeforeTax = settlement.feeDetail.beforeTax.amount
        tax = settlement.feeDetail.tax.amount
        taxRateBasisPoints = settlement.feeDetail.taxRate
        fee = settlement.fee.amount
        netAmount = settlement.net.amount
        itemCount = settlement.totals.itemCount
        creditAmount = settlement.totals.creditAmount.amount
    }
}
