import Billing
import SiteKit

/// Charts drawn on the server as SVG: no script, nothing to load.
enum Chart {
    /// A bar chart of yen by month: `bars` are (label, amount), oldest first. Labels are months the site made
    /// (escaped all the same).
    static func bars(_ bars: [(label: String, amount: Int64)]) -> String {
        let width = 720
        let height = 240
        let top = 20
        let bottom = 40
        let left = 10
        let highest = max(bars.map(\.amount).max() ?? 0, 1)
        let slot = bars.isEmpty ? 0 : (width - 2 * left) / bars.count
        var svg =
            "<svg class=\"chart\" id=\"chart\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
        for (index, bar) in bars.enumerated() {
            let barHeight = Int(Double(max(bar.amount, 0)) / Double(highest) * Double(height - top - bottom))
            let x = left + index * slot + slot / 8
            let y = height - bottom - barHeight
            let label = escape(bar.label)
            svg += "<g><title>\(label): \(escape(SiteFormat.yen(Yen(bar.amount))))</title>"
            svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(slot * 3 / 4)\" height=\"\(barHeight)\" fill=\"#0b5cad\"/>"
            svg +=
                "<text x=\"\(x + slot * 3 / 8)\" y=\"\(height - bottom + 16)\" font-size=\"11\" text-anchor=\"middle\">\(label)</text>"
            svg +=
                "<text x=\"\(x + slot * 3 / 8)\" y=\"\(max(y - 4, 12))\" font-size=\"10\" text-anchor=\"middle\">\(escape(SiteFormat.yen(Yen(bar.amount))))</text></g>"
        }
        return svg + "</svg>"
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
