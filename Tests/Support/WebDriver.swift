import Foundation
import Store

/// A real browser for the tests: Debian's `chromium`, headless, driven by `chromedriver` over the W3C WebDriver
/// protocol (plain HTTP and JSON). Fails loudly when either is missing: `scripts/test.sh` installs them.
public final class Browser: @unchecked Sendable {
    // @unchecked: `driver` and `sessionID` are set once in `start` and only read after; `shots` is guarded by
    // `lock`.
    private let driver: Process
    private let port: Int
    private let sessionID: String
    private let profile: URL
    private let lock = NSLock()
    private var shots: [(name: String, png: Data)] = []

    /// Starts chromedriver and a headless chromium window of 1280×900 whose language is `language`
    /// (`Accept-Language`).
    public static func start(language: String = "en-US") async throws -> Browser {
        let chromedriver = try tool("MATOMETE_CHROMEDRIVER", names: ["chromedriver"])
        let chromium = try tool(
            "MATOMETE_CHROMIUM",
            names: ["chromium", "chromium-browser", "/Applications/Chromium.app/Contents/MacOS/Chromium"])
        let port = try EmbeddedPostgres.freePort()
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: chromedriver)
        driver.arguments = ["--port=\(port)"]
        driver.standardOutput = FileHandle.nullDevice
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            if let status = try? await call(port, "GET", "/status"),
                (status["value"] as? [String: Any])?["ready"] as? Bool == true
            {
                break
            }
            guard ContinuousClock.now < deadline, driver.isRunning else {
                driver.terminate()
                throw TestFailure("chromedriver did not start on port \(port)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let profile = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
            "matomete-browser-\(UUID().uuidString.prefix(8))")
        let options: [String: Any] = [
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--lang=\(language)", "--user-data-dir=\(profile.path)",
            ],
            "prefs": ["intl.accept_languages": language],
        ]
        let answer = try await call(
            port, "POST", "/session",
            ["capabilities": ["alwaysMatch": ["browserName": "chrome", "goog:chromeOptions": options]]])
        guard let value = answer["value"] as? [String: Any], let id = value["sessionId"] as? String else {
            driver.terminate()
            throw TestFailure("chromedriver gave no session: \(answer)")
        }
        return Browser(driver: driver, port: port, sessionID: id, profile: profile)
    }

    /// The program named by the environment variable `variable`, else the first of `names` found (on `PATH` when
    /// not a path); fails loudly when there is none.
    private static func tool(_ variable: String, names: [String]) throws -> String {
        if let chosen = ProcessInfo.processInfo.environment[variable], !chosen.isEmpty { return chosen }
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        for name in names {
            let candidates = name.hasPrefix("/") ? [name] : directories.map { "\($0)/\(name)" }
            if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
                return found
            }
        }
        throw TestFailure(
            "\(names[0]) is missing: install chromium and chromium-driver (scripts/test.sh does), or set \(variable)")
    }

    private init(driver: Process, port: Int, sessionID: String, profile: URL) {
        self.driver = driver
        self.port = port
        self.sessionID = sessionID
        self.profile = profile
    }

    /// Closes the browser and stops chromedriver.
    public func quit() async {
        _ = try? await command("DELETE", "")
        driver.terminate()
        // Never left behind: killed if it has not stopped within 5 seconds.
        let deadline = ContinuousClock.now + .seconds(5)
        while driver.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if driver.isRunning { kill(driver.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: profile)
    }

    /// Opens `url`.
    public func open(_ url: String) async throws { _ = try await command("POST", "/url", ["url": url]) }

    /// The address now shown.
    public func currentURL() async throws -> String { try await command("GET", "/url") as? String ?? "" }

    /// Whether the address shown ends with `suffix` within `limit` (a form's answer may still be loading).
    public func showsURL(endingWith suffix: String, within limit: Duration = .seconds(10)) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while true {
            if try await currentURL().hasSuffix(suffix) { return true }
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Whether `condition` holds within `limit`, asked again every 100 ms; an element of a page being replaced
    /// (stale) counts as not yet.
    public func becomes(within limit: Duration = .seconds(10), _ condition: () async throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while true {
            if (try? await condition()) == true { return true }
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The page's markup as the browser has it now.
    public func source() async throws -> String { try await command("GET", "/source") as? String ?? "" }

    /// The first element matching the CSS `selector`; throws when there is none.
    public func element(_ selector: String) async throws -> Element {
        let value = try await command("POST", "/element", ["using": "css selector", "value": selector])
        guard let reference = (value as? [String: Any])?.values.first as? String else {
            throw TestFailure("no element \(selector) on \(try await currentURL())")
        }
        return Element(browser: self, id: reference)
    }

    /// Every element matching the CSS `selector`.
    public func elements(_ selector: String) async throws -> [Element] {
        let value = try await command("POST", "/elements", ["using": "css selector", "value": selector])
        return (value as? [[String: Any]] ?? []).compactMap { ($0.values.first as? String) }.map {
            Element(browser: self, id: $0)
        }
    }

    /// The browser's cookies for the page shown, as a `Cookie` header.
    public func cookieHeader() async throws -> String {
        let cookies = try await command("GET", "/cookie") as? [[String: Any]] ?? []
        return cookies.compactMap { cookie in
            (cookie["name"] as? String).map { "\($0)=\(cookie["value"] as? String ?? "")" }
        }.joined(separator: "; ")
    }

    /// Takes a screenshot of the page, kept under `name` for ``keepScreenshots(in:)``.
    public func screenshot(_ name: String) async throws {
        guard let base64 = try await command("GET", "/screenshot") as? String, let png = Data(base64Encoded: base64)
        else { return }
        lock.withLock { shots.append((name, png)) }
    }

    /// Writes the screenshots taken to `directory` (a failed test's artifacts); returns their paths.
    @discardableResult
    public func keepScreenshots(in directory: URL) throws -> [String] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return try lock.withLock { shots }.enumerated().map { index, shot in
            let file = directory.appendingPathComponent(String(format: "%02d-%@.png", index + 1, shot.name))
            try shot.png.write(to: file)
            return file.path
        }
    }

    /// An element of the page.
    public struct Element: Sendable {
        let browser: Browser
        let id: String

        /// Types `text` into it.
        public func type(_ text: String) async throws {
            _ = try await browser.command("POST", "/element/\(id)/value", ["text": text])
        }

        /// Empties an input.
        public func clear() async throws { _ = try await browser.command("POST", "/element/\(id)/clear", [:]) }

        /// Clicks it.
        public func click() async throws { _ = try await browser.command("POST", "/element/\(id)/click", [:]) }

        /// Its text as shown.
        public func text() async throws -> String {
            try await browser.command("GET", "/element/\(id)/text") as? String ?? ""
        }

        /// One of its attributes (`href`), as the page has it now.
        public func attribute(_ name: String) async throws -> String? {
            try await browser.command("GET", "/element/\(id)/attribute/\(name)") as? String
        }
    }

    private func command(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        let answer = try await Self.call(port, method, "/session/\(sessionID)\(path)", body)
        if let value = answer["value"] as? [String: Any], let error = value["error"] as? String {
            throw TestFailure("WebDriver \(method) \(path): \(error): \(value["message"] as? String ?? "")")
        }
        return answer["value"]
    }

    private static func call(
        _ port: Int, _ method: String, _ path: String, _ body: [String: Any]? = nil
    )
        async throws -> [String: Any]
    {
        let json = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let response = try await Task.detached {
            try LoopbackHTTP.request(
                port: port, method: method, path: path,
                headers: json == nil ? [:] : ["Content-Type": "application/json"], body: json)
        }.value
        let data = response.body
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }
}

/// Fetches `path` of the server at 127.0.0.1:`port` with `cookie`, for what the browser would download (a CSV).
public func download(port: Int, path: String, cookie: String) async throws -> (status: Int, body: Data) {
    let response = try await Task.detached {
        try LoopbackHTTP.request(port: port, method: "GET", path: path, headers: ["Cookie": cookie])
    }.value
    return (response.status, response.body)
}
