import Billing
import Contract
import Foundation
import MatometeTestSupport
import Testing

/// Tariff files: one strict reader, every error naming the entry, the band and the field.
@Suite("Tariff files")
struct TariffFileTests {
    static let example2012 = #"""
        {"tariffs": [
          {"merchant": "m-shop", "from": "2012-06", "tax": "added",
           "bands": [{"from": 0, "perLine": "25"}, {"from": 601, "perLine": "35"},
                     {"from": 901, "perLine": "45.5"}, {"from": 1501, "percent": "3"}]},
          {"merchant": "m-game", "from": "2013-01", "tax": "included",
           "bands": [{"from": 0, "perLine": "31.5"}, {"from": 600, "percent": "5"}]}
        ]}
        """#

    @Test("A 2012-style banded tariff and the launch tariff are read exactly")
    func reads() throws {
        let file = try TariffFile(Array(Self.example2012.utf8))
        #expect(file.entries.map(\.merchant) == ["m-shop", "m-game"])
        #expect(file.entries[0].from == BillingCycle("2012-06"))
        #expect(file.entries[0].tariff.tax == .added)
        #expect(
            file.entries[0].tariff.bands == [
                TariffBand(from: 0, .perLine(sen: 2_500)), TariffBand(from: 601, .perLine(sen: 3_500)),
                TariffBand(from: 901, .perLine(sen: 4_550)), TariffBand(from: 1_501, .percentage(basisPoints: 300)),
            ])
        #expect(file.entries[1].tariff == BandedTariff.launch)
    }

    @Test("The shipped example is the 2012-style tariff of docs/finance.md")
    func shippedExample() throws {
        let url = JSONSchema.checkout.appendingPathComponent("examples/tariff-2012.json")
        let file = try TariffFile(Array(try Data(contentsOf: url)))
        #expect(file.entries.count == 1)
        #expect(file.entries[0].tariff == (try TariffFile(Array(Self.example2012.utf8))).entries[0].tariff)
    }

    static func withBand(_ band: String) -> String {
        #"{"tariffs":[{"merchant":"m-shop","from":"2012-06","tax":"added","bands":[{"from":0,"perLine":"25"},\#(band)]}]}"#
    }

    @Test(
        "Anything else refuses the whole file, saying where and why",
        arguments: [
            ("[]", "not a JSON object"),
            (#"{"tariffs":[]}"#, "non-empty array"),
            (#"{"tariffs":[],"extra":1}"#, #"the file: unknown field "extra""#),
            (
                #"{"tariffs":[{"merchant":"m.shop","from":"2012-06","tax":"added","bands":[]}]}"#,
                "tariffs[0]: \"merchant\""
            ),
            (
                #"{"tariffs":[{"merchant":"m-shop","from":"2012-13","tax":"added","bands":[]}]}"#,
                "tariffs[0] (m-shop): \"from\""
            ),
            (#"{"tariffs":[{"merchant":"m-shop","from":"2012-06","tax":"yes","bands":[]}]}"#, "\"tax\" must be"),
            (#"{"tariffs":[{"merchant":"m-shop","from":"2012-06","tax":"added","bands":[]}]}"#, "1 to 32 bands"),
            (withBand(#"{"from":901,"perLine":45.5}"#), "not strict JSON"),
            (withBand(#"{"from":901,"perLine":45}"#), "band 2: \"perLine\" and \"percent\" are text"),
            (withBand(#"{"from":901,"perLine":"45.555"}"#), "band 2: \"perLine\" must be yen"),
            (withBand(#"{"from":901,"perLine":"-5"}"#), "band 2: \"perLine\" must be yen"),
            (withBand(#"{"from":901,"percent":"3","perLine":"4"}"#), "band 2: give exactly one"),
            (withBand(#"{"from":901}"#), "band 2: give exactly one"),
            (withBand(#"{"from":true,"percent":"3"}"#), "band 2: \"from\" must be whole yen"),
            (withBand(#"{"from":-1,"percent":"3"}"#), "band 2: \"from\" must be whole yen"),
            (withBand(#"{"from":99999999999999999999,"percent":"3"}"#), "band 2: \"from\" must be whole yen, 0 to"),
            (withBand(#"{"from":901,"percent":"3","note":"x"}"#), #"band 2: unknown field "note""#),
            (withBand(#"{"from":0,"percent":"3"}"#), "band 2 (from ¥0) does not start above band 1"),
            (withBand(#"{"from":901,"percent":"101"}"#), "a percentage is 0 to 100 %"),
            (
                #"{"tariffs":[{"merchant":"m-shop","from":"2012-06","tax":"added","bands":[{"from":0,"perLine":"1"}]},{"merchant":"m-shop","from":"2012-06","tax":"added","bands":[{"from":0,"perLine":"2"}]}]}"#,
                "tariffs[1] (m-shop): a second schedule from 2012-06"
            ),
        ] as [(String, String)])
    func refused(_ text: String, _ reason: String) {
        let error = #expect(throws: TariffFileError.self) { try TariffFile(Array(text.utf8)) }
        #expect(error?.description.contains(reason) == true, "\(error?.description ?? "read") should say \(reason)")
    }

    @Test("Exact decimals: digits, one point, no sign, no more decimals than allowed")
    func fixedPoint() {
        #expect(FixedPoint.parse("31.5", decimals: 2) == 3_150)
        #expect(FixedPoint.parse("3", decimals: 2) == 300)
        #expect(FixedPoint.parse("0.05", decimals: 2) == 5)
        for bad in ["", ".5", "5.", "+5", "-5", "1e3", "3.141", "１", "1,000", " 5", "1.2.3", "1234567890"] {
            #expect(FixedPoint.parse(bad, decimals: 2) == nil, "\(bad)")
        }
    }
}
