/// Reads CSV as RFC 4180 writes it: records end at LF or CRLF, fields are
/// separated by commas, and a field in double quotes may hold commas, line
/// breaks and quotes (written twice: `"a ""b"", c"`). Anything else refuses
/// the whole text, naming the line: a quote inside an unquoted field, text
/// after a closing quote, a quote never closed. Spaces around an unquoted
/// field are dropped. Blank lines are skipped, and so is a byte order mark.
public enum CSV {
    /// One record and the line of the text it starts on (1 for the first).
    public struct Record: Sendable, Hashable {
        /// The line it starts on, counting from `firstLine`.
        public var line: Int
        /// Its fields, unquoted.
        public var fields: [String]
    }

    /// The records of `text`, whose first line is line `firstLine` of its file.
    public static func records(_ text: String, firstLine: Int = 1) throws(StoreError) -> [Record] {
        var records: [Record] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = firstLine
        var recordLine = firstLine
        var quoted = false  // inside quotes
        var wasQuoted = false  // the current field was quoted, and its quotes are closed
        var bytes = Array(text.utf8)[...]
        // A byte order mark, as spreadsheets write one, is not part of the first field.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }

        func endField() {
            let text = String(decoding: field, as: UTF8.self)
            fields.append(wasQuoted ? text : text.trimmingSpaces)
            field.removeAll(keepingCapacity: true)
            wasQuoted = false
        }
        func endRecord() {
            let blank = fields.isEmpty && !wasQuoted && field.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            endField()
            if !blank { records.append(Record(line: recordLine, fields: fields)) }
            fields.removeAll()
        }

        while let byte = bytes.popFirst() {
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if bytes.first == UInt8(ascii: "\"") {
                        field.append(byte)
                        bytes.removeFirst()
                    } else {
                        quoted = false
                        wasQuoted = true
                    }
                } else {
                    if byte == UInt8(ascii: "\n") { line += 1 }
                    field.append(byte)
                }
                continue
            }
            switch byte {
            case UInt8(ascii: ","):
                endField()
            case UInt8(ascii: "\r") where bytes.first == UInt8(ascii: "\n") || bytes.isEmpty:
                continue
            case UInt8(ascii: "\n"):
                endRecord()
                line += 1
                recordLine = line
            case UInt8(ascii: "\""):
                guard !wasQuoted, field.allSatisfy({ $0 == UInt8(ascii: " ") }) else {
                    throw StoreError(.invalidInput, "CSV line \(line): a quote inside a field that is not quoted")
                }
                field.removeAll()
                quoted = true
            default:
                guard !wasQuoted || byte == UInt8(ascii: " ") else {
                    throw StoreError(.invalidInput, "CSV line \(line): text after a quoted field's closing quote")
                }
                if !wasQuoted { field.append(byte) }
            }
        }
        guard !quoted else { throw StoreError(.invalidInput, "CSV line \(recordLine): a quote is never closed") }
        if !field.isEmpty || !fields.isEmpty || wasQuoted { endRecord() }
        return records
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return String(text)
    }
}
