/// How the fee of one band is worked out.
public enum BandRule: Hashable, Sendable, Codable {
    /// A share of the gross, in basis points: 300 is 3 %.
    case percentage(basisPoints: Int64)
    /// A fixed amount per line, in hundredths of a yen (sen): 3150 is ¥31.5.
    case perLine(sen: Int64)
}

/// One band of a banded tariff: from its lower bound on (the merchant's
/// average billed amount per line, in yen, inclusive) its rule sets the fee.
/// As JSON: `{"from": 600, "percentBasisPoints": 500}` or `{"from": 0, "perLineSen": 3150}`.
public struct TariffBand: Hashable, Sendable, Codable {
    /// The smallest average per line in the band, in yen. The first band's is 0.
    public var lowerBound: Yen
    /// How the fee is worked out in the band.
    public var rule: BandRule

    /// A band from `lowerBound` on, with `rule`.
    public init(from lowerBound: Yen, _ rule: BandRule) {
        self.lowerBound = lowerBound
        self.rule = rule
    }

    private enum CodingKeys: String, CodingKey {
        case from, perLineSen, percentBasisPoints
    }

    /// Reads `{"from": …, "perLineSen": …}` or `{"from": …, "percentBasisPoints": …}`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        lowerBound = Yen(try container.decode(Int64.self, forKey: .from))
        switch (
            try container.decodeIfPresent(Int64.self, forKey: .perLineSen),
            try container.decodeIfPresent(Int64.self, forKey: .percentBasisPoints)
        ) {
        case (let sen?, nil): rule = .perLine(sen: sen)
        case (nil, let points?): rule = .percentage(basisPoints: points)
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .perLineSen, in: container, debugDescription: "a band has exactly one rule")
        }
    }

    /// Writes the band as ``init(from:)`` reads it.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lowerBound.amount, forKey: .from)
        switch rule {
        case .perLine(let sen): try container.encode(sen, forKey: .perLineSen)
        case .percentage(let points): try container.encode(points, forKey: .percentBasisPoints)
        }
    }
}

/// Whether a tariff's amounts include consumption tax or have it added.
public enum TaxTreatment: String, Hashable, Sendable, Codable {
    /// The fee is the whole charge, tax included (the 2011 launch tariff).
    case included
    /// Consumption tax at the rate in force for the billed month is added to the fee.
    case added
}

/// A fee schedule by bands of the merchant's average billed amount per line
/// (gross ÷ lines, compared exactly: `gross ≥ bound × lines`), and whether
/// consumption tax is included in it or added to it. As JSON:
/// `{"bands": [band, …], "tax": "included"}`; reading it checks it as
/// ``init(bands:tax:)`` does.
public struct BandedTariff: Hashable, Sendable, Codable {
    /// The bands, lowest first; the first starts at 0.
    public private(set) var bands: [TariffBand]
    /// Whether the fee includes tax or has it added.
    public private(set) var tax: TaxTreatment

    /// A tariff of `bands`; refused with the reason, naming the band, when
    /// the first band does not start at 0, the bounds do not rise, or a rule
    /// is negative or over 100 %.
    public init(bands: [TariffBand], tax: TaxTreatment) throws(TariffError) {
        guard let first = bands.first else { throw TariffError("a tariff needs at least one band") }
        guard first.lowerBound == .zero else {
            throw TariffError("band 1 starts at ¥\(first.lowerBound.amount): the first band starts at ¥0")
        }
        for (index, band) in bands.enumerated() {
            let name = "band \(index + 1) (from ¥\(band.lowerBound.amount))"
            if index > 0, band.lowerBound <= bands[index - 1].lowerBound {
                throw TariffError(
                    "\(name) does not start above band \(index) (from ¥\(bands[index - 1].lowerBound.amount)): bands rise in order, without overlap"
                )
            }
            switch band.rule {
            case .percentage(let points) where !(0...10_000).contains(points):
                throw TariffError("\(name): a percentage is 0 to 100 %, not \(points) basis points")
            case .perLine(let sen) where !(0...100_000_000).contains(sen):
                throw TariffError("\(name): a fee per line is ¥0 to ¥1,000,000, not \(sen) sen")
            default: break
            }
        }
        self.bands = bands
        self.tax = tax
    }

    private enum CodingKeys: String, CodingKey {
        case bands, tax
    }

    /// Reads and checks a tariff.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            bands: try container.decode([TariffBand].self, forKey: .bands),
            tax: try container.decode(TaxTreatment.self, forKey: .tax))
    }

    /// Writes the tariff as ``init(from:)`` reads it.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(bands, forKey: .bands)
        try container.encode(tax, forKey: .tax)
    }

    /// Bands as given, unchecked: for a stored tariff whose fields were
    /// checked when they were written.
    static func unchecked(bands: [TariffBand], tax: TaxTreatment) -> BandedTariff {
        BandedTariff(uncheckedBands: bands, tax: tax)
    }

    private init(uncheckedBands bands: [TariffBand], tax: TaxTreatment) {
        self.bands = bands
        self.tax = tax
    }

    /// The 2011 launch tariff: ¥31.5 a line below an average of ¥600 a line,
    /// 5 % of the gross from ¥600; tax included.
    public static let launch = try! BandedTariff(  // Constant, valid bands.
        bands: [TariffBand(from: 0, .perLine(sen: 3150)), TariffBand(from: 600, .percentage(basisPoints: 500))],
        tax: .included)

    /// The tariff in the launch's three numbers, for readers of that shape
    /// (the settlement message's `tariff`): the percentage of the last
    /// percentage band, the lower bound of the first percentage band (the
    /// average below which a fee per line applies), and the first band's fee
    /// per line in tenths of a yen (rounded down; 0 when it is a percentage).
    /// Exact for a tariff of the launch's shape; ``bands`` say the rest.
    public var summary: Tariff {
        let percentages = bands.compactMap { band -> (Yen, Int64)? in
            if case .percentage(let points) = band.rule { (band.lowerBound, points) } else { nil }
        }
        let firstPerLine: Int64 = if case .perLine(let sen) = bands[0].rule { sen / 10 } else { 0 }
        return Tariff(
            rateBasisPoints: percentages.last?.1 ?? 0, perLineThreshold: percentages.first?.0 ?? 0,
            perLineFeeTenths: firstPerLine)
    }

    /// The band `totals` fall in: the last whose lower bound × lines the gross
    /// reaches. A gross of zero or less is in the first band.
    public func band(for totals: MerchantTotals) -> (index: Int, band: TariffBand) {
        var found = 0
        for (index, band) in bands.enumerated() where index > 0 {
            let (reach, overflow) = band.lowerBound.amount.multipliedReportingOverflow(by: totals.lines)
            guard !overflow, totals.gross.amount >= reach else { break }
            found = index
        }
        return (found, bands[found])
    }

    /// The fee for `totals`, with the tax `taxRate` (basis points) added when
    /// the tariff adds it. See ``Fee``.
    public func fee(for totals: MerchantTotals, taxRate: Int64) -> Fee {
        let (index, band) = band(for: totals)
        guard totals.gross > .zero else {
            return Fee(band: index, rule: band.rule, beforeTax: .zero, tax: .zero, taxRate: tax == .added ? taxRate : 0)
        }
        let beforeTax: Int64 =
            switch band.rule {
            case .percentage(let points): totals.gross.amount * points / 10_000
            case .perLine(let sen): totals.lines * sen / 100
            }
        guard tax == .added else {
            return Fee(band: index, rule: band.rule, beforeTax: Yen(beforeTax), tax: .zero, taxRate: 0)
        }
        return Fee(
            band: index, rule: band.rule, beforeTax: Yen(beforeTax), tax: Yen(beforeTax * taxRate / 10_000),
            taxRate: taxRate)
    }
}

/// A merchant's fee for one month, as a banded tariff works it out.
///
/// Rounding: the fee is computed exactly (sen, basis points) and rounded
/// down to the yen once; the tax, when added, is worked out on that whole-yen
/// fee and rounded down to the yen once, separately. The carrier keeps
/// ``total``.
public struct Fee: Hashable, Sendable {
    /// Which band applied, from 0.
    public var band: Int
    /// The band's rule.
    public var rule: BandRule
    /// The fee before tax (the whole fee when the tariff includes tax).
    public var beforeTax: Yen
    /// The consumption tax added; zero when the tariff includes it.
    public var tax: Yen
    /// The tax rate applied, in basis points (1000 is 10 %); 0 when the tariff includes tax.
    public var taxRate: Int64

    /// What the carrier keeps: the fee and its tax.
    public var total: Yen { beforeTax + tax }

    /// A fee as worked out (or as stored).
    public init(band: Int, rule: BandRule, beforeTax: Yen, tax: Yen, taxRate: Int64) {
        self.band = band
        self.rule = rule
        self.beforeTax = beforeTax
        self.tax = tax
        self.taxRate = taxRate
    }
}

/// Japan's consumption tax over time: each rate with the first billed month
/// it applies to.
public struct ConsumptionTax: Hashable, Sendable {
    /// The rates, by the month they take effect; in basis points (800 is 8 %).
    public private(set) var rates: [(from: BillingCycle, basisPoints: Int64)]

    /// A table of `rates`; refused when two start in the same month or a rate is not 0 to 100 %.
    public init(rates: [(from: BillingCycle, basisPoints: Int64)]) throws(TariffError) {
        let sorted = rates.sorted { $0.from < $1.from }
        for (index, rate) in sorted.enumerated() {
            if index > 0, sorted[index - 1].from == rate.from {
                throw TariffError("two consumption tax rates start in \(rate.from)")
            }
            guard (0...10_000).contains(rate.basisPoints) else {
                throw TariffError(
                    "the consumption tax rate from \(rate.from) is 0 to 100 %, not \(rate.basisPoints) basis points")
            }
        }
        self.rates = sorted
    }

    /// 5 % (in force since 1997-04; from 2000-01, the first month a cycle can
    /// be, here: the service began in 2011), 8 % from 2014-04, 10 % from 2019-10.
    public static let japan = try! ConsumptionTax(rates: [  // Constant, valid rates.
        (BillingCycle(year: 2000, month: 1)!, 500), (BillingCycle(year: 2014, month: 4)!, 800),
        (BillingCycle(year: 2019, month: 10)!, 1000),
    ])

    /// A table written as `MONTH=PERCENT,…` (`2000-01=5,2014-04=8,2019-10=10`;
    /// a percentage to two decimals), as the billing-cycle worker is
    /// configured. The first rate starts at 2000-01, the first month a cycle
    /// can be, so that every month has one.
    public init(parsing text: String) throws(TariffError) {
        var rates: [(BillingCycle, Int64)] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=")
            guard parts.count == 2, let cycle = BillingCycle(String(parts[0])),
                let points = FixedPoint.parse(String(parts[1]), decimals: 2)
            else {
                throw TariffError("\"\(item.prefix(40))\" is not MONTH=PERCENT, e.g. 2019-10=10")
            }
            rates.append((cycle, points))
        }
        guard let first = rates.map(\.0).min() else { throw TariffError("no rates given") }
        guard first == BillingCycle(year: 2000, month: 1)! else {
            throw TariffError("the first rate starts at 2000-01, so that every month has one; it starts at \(first)")
        }
        try self.init(rates: rates)
    }

    /// The rate in force for `cycle`, in basis points: the latest starting no later (0 before the first).
    public func rate(for cycle: BillingCycle) -> Int64 {
        rates.last { $0.from <= cycle }?.basisPoints ?? 0
    }

    /// Tables are equal when their rates are.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.rates.elementsEqual(rhs.rates) { $0.from == $1.from && $0.basisPoints == $1.basisPoints }
    }

    /// Hashes the rates.
    public func hash(into hasher: inout Hasher) {
        for rate in rates {
            hasher.combine(rate.from)
            hasher.combine(rate.basisPoints)
        }
    }
}

/// A tariff or tax table that cannot be used, and why.
public struct TariffError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, naming the band or rate.
    public var description: String

    init(_ description: String) { self.description = description }
}
