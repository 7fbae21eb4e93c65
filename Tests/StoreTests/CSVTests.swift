import Billing
import Store
import Testing

@Suite("Reading CSV as RFC 4180 writes it")
struct CSVTests {
    @Test("Quoted fields hold commas, doubled quotes and line breaks; lines are counted where records start")
    func quoting() throws {
        let records = try CSV.records("a, b ,\"c,\"\"d\"\"\"\r\n\n\"x\ny\",z\n  \n\"\",last")
        #expect(records.map(\.fields) == [["a", "b", "c,\"d\""], ["x\ny", "z"], ["", "last"]])
        #expect(records.map(\.line) == [1, 3, 6])
    }

    @Test(
        "A stray quote, text after a closing quote or a quote never closed refuses the text, naming the line",
        arguments: [
            ("ok\nab\"c,d\n", "CSV line 2: a quote inside a field that is not quoted"),
            ("ok\n\"ab\"c,d\n", "CSV line 2: text after a quoted field's closing quote"),
            ("ok\n\"abc,d\n", "CSV line 2: a quote is never closed"),
        ])
    func refused(_ text: String, _ message: String) {
        #expect(throws: StoreError.self) { try CSV.records(text) }
        do {
            _ = try CSV.records(text)
        } catch {
            #expect(error.message == message)
        }
    }
}

@Suite("Lines from CSV as spreadsheets write it")
struct LineCSVTests {
    @Test("CRLF line ends and a byte order mark are read as a plain file is")
    func crlfAndBOM() throws {
        let lines = try LineCSV.parse("\u{FEFF}line_id,line_type\r\nL0000001,adsl\r\nL0000002,b-flets\r")
        #expect(lines.map(\.id.rawValue) == ["L0000001", "L0000002"])
        #expect(lines.map(\.type) == [.adsl, .bFlets])
    }
}
