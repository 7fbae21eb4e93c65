import Foundation

/// A rate with thousands separators and no decimals: `1,234,567`.
public func rate(_ value: Double) -> String {
    let formatter = NumberFormatter()
    formatter.numberStyle = .decimal
    formatter.maximumFractionDigits = 0
    return formatter.string(from: NSNumber(value: value)) ?? "\(Int(value))"
}

/// Writes a progress line to standard error, keeping standard output for the result.
public func progress(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Prints `figures` as sorted, indented JSON: the `--json` output of every benchmark.
public func printJSON(_ figures: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(figures), as: UTF8.self))
}

extension String {
    /// The string right-aligned in `width` columns.
    public func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number (for reports only).
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
