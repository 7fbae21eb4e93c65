import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// A site's pages: its templates (swift-mustache, every value escaped unless a template says otherwise) inside
/// the shared layout, its texts in both languages, and its style sheet.
public struct SitePages: Sendable {
    /// The site's name, by language, in the header and the title.
    public var name: [Language: String]
    /// The site's texts.
    public var texts: Texts
    private let library: MustacheLibrary

    /// Pages from `templates` (name → mustache text), with the layout and the error page added.
    public init(name: [Language: String], texts: Texts, templates: [String: String]) throws {
        self.name = name
        self.texts = texts
        var library = MustacheLibrary()
        for (templateName, text) in templates.merging(Self.shared, uniquingKeysWith: { own, _ in own }) {
            try library.register(text, named: templateName)
        }
        self.library = library
    }

    /// A link of the navigation bar.
    public struct NavigationLink: Sendable {
        /// Where it goes.
        public var href: String
        /// Its text's key.
        public var label: String

        /// A link to `href` labelled by the text `label`.
        public init(_ href: String, _ label: String) {
            self.href = href
            self.label = label
        }
    }

    /// Renders `template` over `values` (with `t`, the texts in the page's language) inside the layout, as a
    /// response with `status`.
    public func page(
        _ template: String, title: String, values: [String: Any], context: SiteContext,
        navigation: [NavigationLink] = [], path: String = "/", status: HTTPResponse.Status = .ok
    ) -> Response {
        let language = context.language
        let t = texts.all(language)
        var values = values
        values["t"] = t
        let body = library.render(values, withTemplate: template) ?? ""
        var layout: [String: Any] = [
            "lang": language.rawValue, "title": t[title] ?? title, "site": name[language] ?? "", "t": t, "body": body,
            "otherLanguage": language.other.rawValue, "otherLanguageName": language.other.ownName,
            "back": context.requestedPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/",
            "navigation": navigation.map { link in
                ["href": link.href, "label": t[link.label] ?? link.label, "current": path.hasPrefix(link.href)]
            },
        ]
        if let session = context.session {
            layout["user"] = [
                "name": session.account.displayName, "login": session.account.login,
                "role": t["role_" + session.account.role.rawValue] ?? session.account.role.rawValue,
                "csrf": session.csrfToken,
            ]
        }
        return Self.html(library.render(layout, withTemplate: "layout") ?? "", status: status)
    }

    /// An error page: the status and the message, in the layout.
    public func errorPage(status: HTTPResponse.Status, message: String, context: SiteContext) -> Response {
        page(
            "error", title: "error_title",
            values: ["status": "\(status.code) \(status.reasonPhrase)", "message": message],
            context: context, status: status)
    }

    /// `html` as a `text/html` response.
    public static func html(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    /// A redirect after a post (303), to a path of this site.
    public static func seeOther(_ path: String) -> Response {
        Response(status: .seeOther, headers: [.location: path])
    }

    /// Whether `path` is a path of this site (not another site's address): a redirect goes nowhere else.
    public static func isLocalPath(_ path: String) -> Bool {
        path.hasPrefix("/") && !path.hasPrefix("//") && !path.contains("\\") && !path.contains(where: \.isNewline)
    }

    /// The style sheet every page links (`/static/site.css`).
    public static let styleSheet = """
        :root { --ink: #1d2433; --muted: #5b6475; --line: #d9dee7; --accent: #0b5cad; --bad: #b3261e; --good: #1b7f3b;
          font-family: system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif; color: var(--ink); }
        body { margin: 0; background: #f5f7fa; }
        header { background: #fff; border-bottom: 1px solid var(--line); padding: .6rem 1rem; display: flex;
          flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; }
        header .site { font-weight: 700; }
        header nav { display: flex; flex-wrap: wrap; gap: .25rem .9rem; }
        header nav a { color: var(--ink); text-decoration: none; padding: .2rem 0; }
        header nav a.current { border-bottom: 2px solid var(--accent); }
        .muted { color: var(--muted); }
        pre.message { white-space: pre-wrap; word-break: break-all; max-width: 40rem; margin: 0; font-size: .8rem; }
        header .user { margin-left: auto; display: flex; gap: .6rem; align-items: center; color: var(--muted); }
        header form { display: inline; }
        main { padding: 1rem; max-width: 72rem; margin: 0 auto; }
        h1 { font-size: 1.4rem; }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(12rem, 1fr)); gap: .8rem; }
        .card { background: #fff; border: 1px solid var(--line); border-radius: .4rem; padding: .8rem; }
        .card .figure { font-size: 1.5rem; font-weight: 700; }
        table { border-collapse: collapse; width: 100%; background: #fff; }
        th, td { border-bottom: 1px solid var(--line); padding: .4rem .5rem; text-align: left; vertical-align: top; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .scroll { overflow-x: auto; }
        .refused, .bad { color: var(--bad); }
        .accepted, .good { color: var(--good); }
        form.search { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin-bottom: 1rem; }
        form.search label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
        input, select, button, textarea { font: inherit; padding: .3rem .4rem; }
        textarea { display: block; width: 100%; max-width: 36rem; box-sizing: border-box; }
        button { background: var(--accent); color: #fff; border: 0; border-radius: .3rem; cursor: pointer; }
        button.link { background: none; color: var(--accent); padding: 0; }
        form.inline { display: flex; flex-wrap: wrap; gap: .3rem; margin: 0; }
        form.inline button { font-size: .85rem; padding: .2rem .4rem; }
        #add-staff label, #cancel label { display: block; margin-bottom: .6rem; }
        .login { max-width: 22rem; margin: 3rem auto; background: #fff; padding: 1.5rem; border: 1px solid var(--line); }
        .login label { display: block; margin-bottom: .8rem; }
        .login input { width: 100%; box-sizing: border-box; }
        .notice { background: #fff4e5; border: 1px solid #f0c36d; padding: .6rem; margin-bottom: 1rem; }
        .pager { display: flex; gap: 1rem; margin-top: .8rem; }
        svg.chart { width: 100%; height: auto; background: #fff; border: 1px solid var(--line); }
        @media print { header, .no-print { display: none; } body { background: #fff; } }
        """

    private static let shared = [
        "layout": """
        <!doctype html>
        <html lang="{{lang}}">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · {{site}}</title>
        <link rel="stylesheet" href="/static/site.css">
        </head>
        <body>
        <header>
        <span class="site">{{site}}</span>
        {{#user}}<nav>{{#navigation}}<a href="{{href}}"{{#current}} class="current"{{/current}}>{{label}}</a>{{/navigation}}</nav>{{/user}}
        <span class="user">
        <a id="language" href="/language?to={{otherLanguage}}&amp;back={{back}}" lang="{{otherLanguage}}">{{otherLanguageName}}</a>
        {{#user}}<span id="who">{{name}} ({{role}})</span>
        <form method="post" action="/logout"><input type="hidden" name="csrf" value="{{csrf}}"><button id="logout" class="link">{{t.logout}}</button></form>{{/user}}
        </span>
        </header>
        <main>
        {{{body}}}
        </main>
        </body>
        </html>
        """,
        "login": """
        <form class="login" method="post" action="/login">
        <h1>{{t.login_title}}</h1>
        {{#failed}}<p class="notice" id="login-failed">{{t.login_failed}}</p>{{/failed}}
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label>{{t.login_id}}<input id="login" name="login" type="email" autocomplete="username" required></label>
        <label>{{t.password}}<input id="password" name="password" type="password" autocomplete="current-password" required></label>
        <label>{{t.code}}<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="8"></label>
        <button id="submit">{{t.login_button}}</button>
        </form>
        """,
        "error": """
        <h1>{{status}}</h1>
        <p id="error">{{message}}</p>
        <p><a href="/">{{t.error_home}}</a></p>
        """,
    ]
}
