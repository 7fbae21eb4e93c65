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

    /// Texts from pairs: key → (English, Japanese), over the texts every staff site shares (``common``), which
    /// a site's own pair of the same key replaces.
    public init(_ pairs: [String: (en: String, ja: String)]) {
        let all = Self.common.merging(pairs) { _, own in own }
        english = all.mapValues(\.en)
        japanese = all.mapValues(\.ja)
    }

    /// What every staff site says alike: logging in and out, errors, paging.
    public static let common: [String: (en: String, ja: String)] = [
        "logout": ("Log out", "ログアウト"),
        "logout_everywhere": ("Log out on every device", "すべての端末からログアウト"),
        "error_title": ("Error", "エラー"),
        "error_internal": (
            "Something went wrong on our side. Try again in a moment.", "システムで問題が発生しました。しばらくしてから再度お試しください。"
        ),
        "login_title": ("Log in", "ログイン"),
        "login_id": ("Login (e-mail)", "ログインID（メールアドレス）"),
        "password": ("Password", "パスワード"),
        "code": ("Code from your authenticator app (if set up)", "認証アプリのコード（設定している場合）"),
        "login_button": ("Log in", "ログイン"),
        "login_failed": (
            "Login failed. Check your login and password. After 5 failures in a row the account is locked for 15 minutes.",
            "ログインできませんでした。IDとパスワードを確認してください。5回続けて失敗すると15分間ロックされます。"
        ),
        "none": ("None.", "ありません。"),
        "previous": ("← Newer", "← 新しい"),
        "next": ("Older →", "古い →"),
        "not_found": ("There is no such page.", "ページが見つかりません。"),
        "error_home": ("Back to the start", "最初のページに戻る"),
    ]

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
