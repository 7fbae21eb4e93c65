/// The languages the staff sites speak.
public enum Language: String, Sendable, Hashable, CaseIterable {
    /// English.
    case en
    /// Japanese.
    case ja

    /// The language of a page: the one chosen on the site (its cookie), else the first of the browser's
    /// `Accept-Language` the site speaks (by quality), else Japanese.
    public static func preferred(chosen: String?, acceptLanguage: String?) -> Language {
        if let chosen, let language = Language(rawValue: chosen) { return language }
        var best: (language: Language, quality: Double)?
        for part in (acceptLanguage ?? "").split(separator: ",") {
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let tag = pieces.first?.lowercased() else { continue }
            let primary = tag.split(separator: "-").first.map(String.init) ?? tag
            guard let language = Language(rawValue: primary) else { continue }
            var quality = 1.0
            for parameter in pieces.dropFirst() where parameter.hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 0
            }
            if quality > 0, quality > (best?.quality ?? -1) { best = (language, quality) }
        }
        return best?.language ?? .ja
    }

    /// The other language, offered as the switch.
    public var other: Language { self == .en ? .ja : .en }

    /// The language's own name, for the switch.
    public var ownName: String { self == .en ? "English" : "日本語" }
}

/// A site's texts in both languages, by key.
public struct Texts: Sendable {
    private let english: [String: String]
    private let japanese: [String: String]

    /// Texts from pairs: key → (English, Japanese).
    public init(_ pairs: [String: (en: String, ja: String)]) {
        english = pairs.mapValues(\.en)
        japanese = pairs.mapValues(\.ja)
    }

    /// Every text in `language`, for a template's `t`.
    public func all(_ language: Language) -> [String: String] { language == .en ? english : japanese }

    /// One text in `language` (the key itself when there is none, so a missing text shows, not crashes).
    public func text(_ key: String, _ language: Language) -> String { all(language)[key] ?? key }
}

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
