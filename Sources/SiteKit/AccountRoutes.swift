import Foundation
import Hummingbird
import NIOCore

extension StaffSessions {
    /// The routes every staff site has alike: its style sheet, the language switch, the login form and its post
    /// (to `home` once logged in), logging out, and logging out on every device.
    public func addAccountRoutes(to router: Router<SiteContext>, pages: SitePages, home: String) {
        router.get("static/site.css") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "public, max-age=3600"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: SitePages.styleSheet)))
        }
        router.get("language") { request, _ in
            let to = Language(rawValue: request.uri.queryParameters["to"].map(String.init) ?? "") ?? .ja
            let back = request.uri.queryParameters["back"].map(String.init) ?? "/"
            var response = SitePages.seeOther(SitePages.isLocalPath(back) ? back : "/")
            response.setCookie(
                Cookie(name: "lang", value: to.rawValue, maxAge: 365 * 86_400, path: "/", sameSite: .lax))
            return response
        }
        router.get("login") { request, context in
            let (token, cookie) = loginFormToken(request)
            var response = pages.page(
                "login", title: "login_title",
                values: ["csrf": token, "failed": request.uri.queryParameters["failed"] != nil], context: context,
                path: "/login")
            if let cookie { response.setCookie(cookie) }
            return response
        }
        router.post("login") { request, context in
            switch try await login(request, context) {
            case .loggedIn(_, let cookie):
                var response = SitePages.seeOther(home)
                response.setCookie(cookie)
                return response
            case .refused:
                return SitePages.seeOther("/login?failed=1")
            }
        }
        router.post("logout") { request, context in
            _ = try await form(request, context)
            var response = SitePages.seeOther("/login")
            response.setCookie(try await logout(request, context, everywhere: false))
            return response
        }
        router.post("logout-everywhere") { request, context in
            _ = try await form(request, context)
            var response = SitePages.seeOther("/login")
            response.setCookie(try await logout(request, context, everywhere: true))
            return response
        }
        router.get("/") { _, context in
            _ = try context.requireSession()
            return SitePages.seeOther(home)
        }
    }
}
