import Billing
import Foundation
import Testing

@testable import Contract
@testable import JSON

@Suite("Reading flat JSON objects without Foundation")
struct JSONReadingTests {
    @Test("Strings, escapes, integers, booleans and null read as JSONDecoder reads them")
    func values() throws {
        let object = try #require(
            FlatJSONObject(
                Array(
                    #" { "a" : "plain", "b":"q\"b\\s\/n\n\t\r\b\f", "c":"\u00e9\u3042\ud83d\ude00", "d":"ü日本", "e":0, "f":-12, "g":9223372036854775807, "h":-9223372036854775808, "i":true, "j":false, "k":null, "":"" } "#
                        .utf8)))
        #expect(object.keys == ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", ""])
        #expect(object["a"] == .string("plain"))
        #expect(object["b"] == .string("q\"b\\s/n\n\t\r\u{08}\u{0C}"))
        #expect(object["c"] == .string("é\u{3042}😀"))
        #expect(object["d"] == .string("ü日本"))
        #expect(object["e"] == .integer(0))
        #expect(object["f"] == .integer(-12))
        #expect(object["g"] == .integer(.max))
        #expect(object["h"] == .integer(.min))
        #expect(object["i"] == .bool(true))
        #expect(object["j"] == .bool(false))
        #expect(object["k"] == .null)
        #expect(object[""] == .string(""))
        #expect(object["absent"] == nil)
        #expect(FlatJSONObject(Array("{}".utf8))?.keys == [])
    }

    @Test(
        "What it does not read exactly as JSONDecoder would is left to JSONDecoder",
        arguments: [
            #"{"a":1.5}"#, #"{"a":1e3}"#, #"{"a":1E3}"#, #"{"a":-0}"#, #"{"a":01}"#, #"{"a":9223372036854775808}"#,
            #"{"a":-9223372036854775809}"#, #"{"a":[1]}"#, #"{"a":{}}"#, #"{"a":1,"a":2}"#, #"{"a":"\ud800"}"#,
            #"{"a":"\udc00"}"#, #"{"a":"\ud800\u0041"}"#, #"{"a":"\x"}"#, #"{"a":"\u12G4"}"#, "{\"a\":\"\u{01}\"}",
            #"{"a":tru}"#, #"{"a":nul}"#, #"{"a":1,}"#, #"{,}"#, #"{"a"}"#, #"{"a":}"#, #"{"a":1} x"#, #"[]"#,
            #""a""#, "", "{", #"{"a":"unterminated}"#, #"{"a":-}"#, #"{a:1}"#,
        ])
    func declines(_ json: String) {
        #expect(FlatJSONObject(Array(json.utf8)) == nil)
    }

    @Test("Objects with many fields are left to JSONDecoder, which reads them in linear time", .timeLimit(.minutes(1)))
    func manyFields() {
        func object(_ count: Int) -> [UInt8] {
            Array(("{" + (0..<count).map { "\"f\($0)\":\($0)" }.joined(separator: ",") + "}").utf8)
        }
        #expect(FlatJSONObject(object(FlatJSONObject.maximumFields))?.keys.count == FlatJSONObject.maximumFields)
        #expect(FlatJSONObject(object(FlatJSONObject.maximumFields + 1)) == nil)
        // A request padded with 100,000 unknown fields still decodes (unknown fields are ignored).
        let padding = (0..<100_000).map { ",\"x\($0)\":\($0)" }.joined()
        let request =
            #"{"type":"charge-cancel","merchantId":"m1","chargeId":"c-1","lineId":"L0000001""# + padding + "}"
        #expect(
            RequestDecoder().decode(value: Array(request.utf8), key: Array("L0000001".utf8))
                == .request(
                    .chargeCancellation(ChargeCancellation(merchantID: "m1", chargeID: "c-1", lineID: "L0000001"))))
    }

    @Test("Bytes that are not UTF-8 are left to JSONDecoder")
    func invalidUTF8() {
        #expect(FlatJSONObject([UInt8](#"{"a":""#.utf8) + [0xFF] + [UInt8](#""}"#.utf8)) == nil)
        #expect(FlatJSONObject([UInt8](#"{"a":"\n"#.utf8) + [0xC3] + [UInt8](#""}"#.utf8)) == nil)
    }

    /// Requests, and every variation of them one byte away: each must decode
    /// to the same request, refusal or dead letter (with the same reason) and
    /// the same authorization whether the one-pass reader reads it or not.
    @Test("Every request, and every one-byte variation of it, decodes as with JSONDecoder alone")
    func sameAsFoundation() {
        let requests = [
            #"{"type":"charge","merchantId":"m1","chargeId":"c-1","lineId":"L0000001","amount":500,"description":"500 \"points\" \u00e9","occurredAt":"2026-11-03T10:15:00+09:00","authorization":"v1.k1.eyJh.c2ln"}"#,
            #"{ "type" : "subscription", "merchantId":"m1","subscriptionId":"s-1","lineId":"L0000001","monthlyAmount":300,"description":"club","authorization":null, "extra": true }"#,
            #"{"type":"charge-cancel","merchantId":"m1","chargeId":"c-1","lineId":"L0000001"}"#,
            #"{"type":"line-termination","lineId":"L0000001","occurredAt":"2026-11-30T00:00:00+09:00"}"#,
        ]
        let interesting: [UInt8] = Array(#"" \{}[]:,0-.e9nt/u"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xFF]
        var cases: [[UInt8]] = []
        for request in requests {
            let bytes = Array(request.utf8)
            cases.append(bytes)
            for index in bytes.indices {
                var removed = bytes
                removed.remove(at: index)
                cases.append(removed)
                for byte in interesting where byte != bytes[index] {
                    var replaced = bytes
                    replaced[index] = byte
                    cases.append(replaced)
                }
            }
        }
        let fast = RequestDecoder()
        var foundation = RequestDecoder()
        foundation.foundationOnly = true
        var differing: [String] = []
        var fastPathTaken = 0
        for bytes in cases {
            let key = Array("L0000001".utf8)
            let one = fast.decodeWithAuthorization(value: bytes, key: key)
            let other = foundation.decodeWithAuthorization(value: bytes, key: key)
            if one.message != other.message || one.authorization != other.authorization {
                differing.append(String(decoding: bytes, as: UTF8.self))
            }
            if FlatJSONObject(bytes) != nil { fastPathTaken += 1 }
        }
        #expect(differing == [], "\(differing.count) of \(cases.count) decode differently")
        // The comparison means something only if both readers were exercised.
        #expect(fastPathTaken > cases.count / 3)
        #expect(fastPathTaken < cases.count)
    }
}

@Suite("One strict reading of JSON for every input")
struct StrictJSONTests {
    @Test(
        "Texts every reader takes alike",
        arguments: [
            #"{"type":"charge","amount":500,"n":-3,"z":0,"ok":true,"no":false,"none":null,"list":[1,"a",{"b":[]}]}"#,
            #" { "a" : "\u00e9\ud83d\ude00\n\"" } "#, "[]", "{}", "\"text\"", "0", "-12",
            #"{"a":{"a":1},"b":{"a":2}}"#,
        ])
    func taken(_ text: String) {
        #expect(StrictJSON.problem(in: Array(text.utf8)) == nil)
    }

    @Test(
        "Texts readers could read differently are refused, naming what is wrong",
        arguments: [
            (#"{"type":"close","cycle":"2026-11","cycle":"2026-01"}"#, "the key \"cycle\" twice"),
            (#"{"cycle":"a","cy\u0063le":"b"}"#, "the key \"cycle\" twice"),
            (#"{"amount":5e2}"#, "a fraction or an exponent"),
            (#"{"amount":500.0}"#, "a fraction or an exponent"),
            (#"{"amount":0500}"#, "a leading zero"),
            (#"{"a":"\ud800"}"#, "a lone surrogate"),
            (#"{"a":"\q"}"#, "an unknown escape"),
            (#"{"a":1} x"#, "more after the JSON value"),
            (#"{"a":1"#, "no ',' or '}'"),
            (String(repeating: "[", count: 17) + String(repeating: "]", count: 17), "nested deeper than 16"),
            ("{\"a\":\"tab\there\"}", "a control character"),
        ])
    func refused(_ text: String, _ what: String) {
        let problem = StrictJSON.problem(in: Array(text.utf8))
        #expect(problem?.contains(what) == true, "\(text): \(problem ?? "taken")")
    }

    @Test("UTF-8 only: a byte order mark, UTF-16 and bytes that are not UTF-8 are refused")
    func encodings() {
        let text = #"{"type":"close","cycle":"2026-11"}"#
        #expect(StrictJSON.problem(in: [0xEF, 0xBB, 0xBF] + Array(text.utf8))?.contains("byte order mark") == true)
        let utf16 = Array(text.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        #expect(StrictJSON.problem(in: utf16)?.contains("not UTF-8") == true)
        #expect(StrictJSON.problem(in: [0xFF, 0xFE] + utf16)?.contains("not UTF-8") == true)
        #expect(StrictJSON.problem(in: Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)) != nil)
    }

    @Test("Requests and closes that break the rules are dead-lettered with the reason; none is read as another")
    func decoders() {
        let decoder = RequestDecoder()
        for text in [
            #"{"type":"charge","merchantId":"m1","chargeId":"c-1","lineId":"L0000001","amount":5e2,"authorization":"t"}"#,
            #"{"type":"charge","merchantId":"m1","chargeId":"c-1","lineId":"L0000001","amount":500,"amount":1,"authorization":"t"}"#,
            "\u{FEFF}"
                + #"{"type":"charge","merchantId":"m1","chargeId":"c-1","lineId":"L0000001","amount":500,"authorization":"t"}"#,
        ] {
            guard case .deadLetter(let reason) = decoder.decode(value: Array(text.utf8), key: Array("L0000001".utf8))
            else {
                Issue.record("taken: \(text)")
                continue
            }
            #expect(reason.hasPrefix("not strict JSON"), "\(reason)")
        }
        let twoCycles = #"{"type":"close","cycle":"2026-01","cycle":"2026-02"}"#
        guard case .deadLetter(let reason) = CycleCommand.decode(value: Array(twoCycles.utf8)) else {
            Issue.record("a close with two cycles was taken")
            return
        }
        #expect(reason.contains("twice"))
    }
}
