import Billing
import Foundation
import JSON

/// A file of fee schedules, for changing many merchants' tariffs at once
/// (`docs/finance.md`, "Tariff files"): strict JSON, one object with a
/// `tariffs` array; each entry names the merchant, the first month it
/// applies to, whether tax is included or added, and its bands, lowest
/// first. Amounts are decimal text, so that no reader takes them as
/// floating point:
///
///     {"tariffs": [
///       {"merchant": "m-shop", "from": "2012-06", "tax": "added",
///        "bands": [{"from": 0, "perLine": "25"}, {"from": 901, "perLine": "45.5"},
///                  {"from": 1501, "percent": "3"}]}
///     ]}
///
/// `from` of a band is the smallest average billed amount per line in it,
/// in whole yen; `perLine` is yen to the sen (two decimals), `percent` a
/// percentage to two decimals. Anything else — an unknown field, a band
/// with both rules or neither, bands out of order — refuses the whole file,
/// naming the entry, the band and the field.
public struct TariffFile: Sendable, Hashable {
    /// One merchant's new schedule.
    public struct Entry: Sendable, Hashable {
        /// Whose.
        public var merchant: MerchantID
        /// The first billed month it applies to.
        public var from: BillingCycle
        /// The schedule.
        public var tariff: BandedTariff
    }

    /// The entries, in the file's order.
    public var entries: [Entry]

    /// The largest file read, in bytes.
    public static let maximumBytes = 1 << 20
    /// The most entries in one file.
    public static let maximumEntries = 10_000
    /// The most bands in one schedule.
    public static let maximumBands = 32

    /// Reads a tariff file; throws a ``TariffFileError`` naming what is wrong.
    public init(_ bytes: [UInt8]) throws(TariffFileError) {
        guard bytes.count <= Self.maximumBytes else {
            throw TariffFileError("the file is \(bytes.count) bytes; at most \(Self.maximumBytes) are read")
        }
        if let problem = StrictJSON.problem(in: bytes) { throw TariffFileError("not strict JSON: \(problem)") }
        guard case .object(let root)? = try? JSONDecoder().decode(Value.self, from: Data(bytes)) else {
            throw TariffFileError("the file is not a JSON object")
        }
        try Self.only(["tariffs"], in: root, "the file")
        guard case .array(let list)? = root["tariffs"], !list.isEmpty else {
            throw TariffFileError("the file needs a non-empty array \"tariffs\"")
        }
        guard list.count <= Self.maximumEntries else {
            throw TariffFileError("\(list.count) tariffs; at most \(Self.maximumEntries) in one file")
        }
        var entries: [Entry] = []
        var seen: Set<String> = []
        for (index, item) in list.enumerated() {
            let entry = try Self.entry(item, place: "tariffs[\(index)]")
            guard seen.insert("\(entry.merchant) \(entry.from)").inserted else {
                throw TariffFileError("tariffs[\(index)] (\(entry.merchant)): a second schedule from \(entry.from)")
            }
            entries.append(entry)
        }
        self.entries = entries
    }

    /// A JSON value as the file holds it: integers only (strict JSON has no others).
    private enum Value: Decodable {
        case null, bool(Bool), integer(Int64), string(String), array([Value]), object([String: Value])
        /// An integer beyond 64 bits.
        case hugeInteger

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else if let value = try? container.decode(Int64.self) {
                self = .integer(value)
            } else if (try? container.decode(Double.self)) != nil {
                self = .hugeInteger  // strict JSON has no fractions: an integer too large
            } else if let value = try? container.decode(String.self) {
                self = .string(value)
            } else if let value = try? container.decode([Value].self) {
                self = .array(value)
            } else {
                self = .object(try container.decode([String: Value].self))
            }
        }

        var string: String? { if case .string(let text) = self { text } else { nil } }
    }

    private static func entry(_ item: Value, place: String) throws(TariffFileError) -> Entry {
        guard case .object(let object) = item else { throw TariffFileError("\(place) is not an object") }
        try only(["merchant", "from", "tax", "bands"], in: object, place)
        guard let merchantText = object["merchant"]?.string, MerchantID(rawValue: merchantText).isWellFormed
        else {
            throw TariffFileError("\(place): \"merchant\" must be a merchant id (letters, digits, - and _)")
        }
        let place = "\(place) (\(merchantText))"
        guard let fromText = object["from"]?.string, let from = BillingCycle(fromText) else {
            throw TariffFileError("\(place): \"from\" must be a month, YYYY-MM")
        }
        guard let taxText = object["tax"]?.string, let tax = TaxTreatment(rawValue: taxText) else {
            throw TariffFileError("\(place): \"tax\" must be \"included\" or \"added\"")
        }
        guard case .array(let bandList)? = object["bands"], (1...maximumBands).contains(bandList.count) else {
            throw TariffFileError("\(place): \"bands\" must be an array of 1 to \(maximumBands) bands")
        }
        var bands: [TariffBand] = []
        for (index, bandItem) in bandList.enumerated() {
            bands.append(try band(bandItem, place: "\(place), band \(index + 1)"))
        }
        do {
            return Entry(
                merchant: MerchantID(rawValue: merchantText), from: from,
                tariff: try BandedTariff(bands: bands, tax: tax))
        } catch {
            throw TariffFileError("\(place): \(error.description)")
        }
    }

    private static func band(_ item: Value, place: String) throws(TariffFileError) -> TariffBand {
        guard case .object(let object) = item else { throw TariffFileError("\(place) is not an object") }
        try only(["from", "perLine", "percent"], in: object, place)
        guard case .integer(let from)? = object["from"], from >= 0, from <= 1_000_000_000 else {
            throw TariffFileError("\(place): \"from\" must be whole yen, 0 to 1,000,000,000")
        }
        switch (object["perLine"], object["percent"]) {
        case (.string(let text)?, nil):
            guard let sen = FixedPoint.parse(text, decimals: 2) else {
                throw TariffFileError(
                    "\(place): \"perLine\" must be yen as text with at most two decimals, e.g. \"31.5\"")
            }
            return TariffBand(from: Yen(from), .perLine(sen: sen))
        case (nil, .string(let text)?):
            guard let points = FixedPoint.parse(text, decimals: 2) else {
                throw TariffFileError(
                    "\(place): \"percent\" must be a percentage as text with at most two decimals, e.g. \"3\"")
            }
            return TariffBand(from: Yen(from), .percentage(basisPoints: points))
        case (nil, nil), (.some, .some):
            throw TariffFileError("\(place): give exactly one of \"perLine\" and \"percent\"")
        default:
            throw TariffFileError("\(place): \"perLine\" and \"percent\" are text, e.g. \"45.5\"")
        }
    }

    /// Refuses a field `object` has that is not in `known`.
    private static func only(
        _ known: Set<String>, in object: [String: Value], _ place: String
    ) throws(TariffFileError) {
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw TariffFileError("\(place): unknown field \"\(unknown.prefix(64))\"")
        }
    }
}

/// A tariff file that cannot be used, and why.
public struct TariffFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, naming the entry, the band and the field.
    public var description: String

    init(_ description: String) { self.description = description }
}
