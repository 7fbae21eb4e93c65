import Billing
import Foundation

extension BandedTariff {
    /// The tariff as stored: JSON, keys sorted (`{"bands":[{"from":0,"perLineSen":3150},…],"tax":"included"}`).
    var storedJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Integers and strings only: encoding cannot fail.
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    /// A tariff as stored, checked again as it is read.
    init(storedJSON: String) throws {
        do {
            self = try JSONDecoder().decode(BandedTariff.self, from: Data(storedJSON.utf8))
        } catch {
            throw StoreError(.invalidInput, "a stored tariff cannot be read: \(error)")
        }
    }
}
