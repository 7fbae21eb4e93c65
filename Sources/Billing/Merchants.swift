/// Whether a merchant may charge.
public enum MerchantStatus: String, Sendable, Codable, CaseIterable {
    /// Charges and cancellations are accepted.
    case active
    /// Charges are refused; cancellations are still accepted.
    case suspended
}

/// The carrier's fee schedule for one merchant.
///
/// Per cycle: when the merchant's average billed amount per line is below
/// ``perLineThreshold``, the fee is ``perLineFeeTenths`` tenths of a yen per
/// line; otherwise it is ``rateBasisPoints`` hundredths of a percent of the
/// gross. Exact integer arithmetic, rounded down to the yen once.
public struct Tariff: Hashable, Sendable, Codable {
    /// The percentage fee in basis points: 500 is 5%.
    public var rateBasisPoints: Int64
    /// The average per line below which the per-line fee applies (¥600).
    public var perLineThreshold: Yen
    /// The per-line fee in tenths of a yen: 315 is ¥31.5.
    public var perLineFeeTenths: Int64

    /// A tariff.
    public init(rateBasisPoints: Int64, perLineThreshold: Yen, perLineFeeTenths: Int64) {
        self.rateBasisPoints = rateBasisPoints
        self.perLineThreshold = perLineThreshold
        self.perLineFeeTenths = perLineFeeTenths
    }

    /// The launch tariff: 5%, or ¥31.5 per line below ¥600 a line.
    public static let standard = Tariff(rateBasisPoints: 500, perLineThreshold: 600, perLineFeeTenths: 315)

    /// The same schedule as bands, tax included: the per-line fee from ¥0,
    /// the percentage from the threshold (from ¥0 when the threshold is 0 or less).
    public var banded: BandedTariff {
        let percentage = TariffBand(from: max(perLineThreshold, .zero), .percentage(basisPoints: rateBasisPoints))
        let bands =
            perLineThreshold > .zero
            ? [TariffBand(from: 0, .perLine(sen: perLineFeeTenths * 10)), percentage] : [percentage]
        // A tariff's fields are checked where they are read (0–100 %, a fee of 0 or more); should one not be,
        // its bands say what is wrong at the first settlement rather than here.
        return (try? BandedTariff(bands: bands, tax: .included)) ?? BandedTariff.unchecked(bands: bands, tax: .included)
    }
}

/// A tariff that applies from a cycle on.
public struct TariffVersion: Hashable, Sendable, Codable {
    /// The first cycle it applies to.
    public var effectiveFrom: BillingCycle
    /// The fee schedule in force from ``effectiveFrom`` until a later version starts.
    public var tariff: BandedTariff

    /// A tariff that takes effect in the cycle `effectiveFrom`.
    public init(effectiveFrom: BillingCycle, tariff: BandedTariff) {
        self.effectiveFrom = effectiveFrom
        self.tariff = tariff
    }

    /// A tariff of the launch's shape (a percentage, or a fee per line below a
    /// threshold), tax included, that takes effect in the cycle `effectiveFrom`.
    public init(effectiveFrom: BillingCycle, tariff: Tariff) {
        self.init(effectiveFrom: effectiveFrom, tariff: tariff.banded)
    }
}

/// A merchant's tariffs over time: a revised fee schedule is a new version
/// with the cycle it starts in.
public struct TariffSchedule: Hashable, Sendable {
    /// Versions in any order.
    public var versions: [TariffVersion]
    /// What applies before the first version (or when there is none).
    public var fallback: BandedTariff

    /// A schedule of `versions`; with none, every cycle uses `fallback` (the launch tariff unless told otherwise).
    public init(versions: [TariffVersion] = [], fallback: BandedTariff = .launch) {
        self.versions = versions
        self.fallback = fallback
    }

    /// The tariff in force for `cycle`: the latest version starting no later.
    public func tariff(for cycle: BillingCycle) -> BandedTariff {
        versions.filter { $0.effectiveFrom <= cycle }.max { $0.effectiveFrom < $1.effectiveFrom }?.tariff ?? fallback
    }
}

/// A merchant as billing sees it.
public struct Merchant: Hashable, Sendable {
    /// The merchant's id, as sent in its requests and used as the key of its results and settlements.
    public var id: MerchantID
    /// The merchant's name, for people.
    public var name: String
    /// Whether the merchant may charge; a suspended merchant's charges are refused.
    public var status: MerchantStatus
    /// The merchant's fee schedules over time; each cycle is settled with the one in force for it.
    public var tariffs: TariffSchedule

    /// A merchant; active and on the launch tariff unless told otherwise.
    public init(
        id: MerchantID, name: String, status: MerchantStatus = .active, tariffs: TariffSchedule = TariffSchedule()
    ) {
        self.id = id
        self.name = name
        self.status = status
        self.tariffs = tariffs
    }
}

extension Merchant {
    /// What a merchant's name may be, for an error message.
    public static let nameRule =
        "A merchant's name is 1 to 100 characters, not all spaces, with no control or formatting characters (tabs, line breaks, direction overrides)."

    /// Whether `name` can be a merchant's name (``nameRule``): it is printed on settlements and statements.
    public static func isWellFormedName(_ name: String) -> Bool {
        (1...100).contains(name.count) && !name.allSatisfy(\.isWhitespace)
            && !name.unicodeScalars.contains {
                [.control, .format, .lineSeparator, .paragraphSeparator].contains($0.properties.generalCategory)
            }
    }
}
