import ArgumentParser
import Foundation

/// Reading settings that come from a flag or a `MATOMETE_*` environment variable.
public enum Options {
    /// A whole-number setting: the flag, else the environment variable (when
    /// not empty), else `fallback`. Outside `range`, or not a number, it is a
    /// usage error that says what `name` must be.
    public static func integer(
        _ flag: Int?, _ variable: String, default fallback: Int, in range: ClosedRange<Int>, name: String,
        unit: String = "", environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Int {
        let text = flag.map(String.init) ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? String(fallback)
        guard let number = Int(text), range.contains(number) else {
            throw ValidationError("\(name) must be \(range.lowerBound) to \(range.upperBound)\(unit), not \(text).")
        }
        return number
    }

    /// `key=value` settings: the environment variable's (`;`-separated),
    /// then each flag's, which wins. `what` names them in errors.
    public static func keyValues(
        _ flags: [String], _ variable: String, what: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [String: String] {
        var values: [String: String] = [:]
        let fromEnvironment = (environment[variable] ?? "").split(separator: ";").map(String.init)
        for setting in fromEnvironment + flags {
            guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                throw ValidationError("\(what) is key=value; got one without '=' or without a key.")
            }
            values[String(setting[..<equals]).trimmingCharacters(in: .whitespaces)] = String(
                setting[setting.index(after: equals)...])
        }
        return values
    }
}

/// A host and port to listen on.
public struct HTTPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The host name or address (IPv6 without brackets).
    public var host: String
    /// The port; 0 picks a free one.
    public var port: Int

    /// Reads `host:port` (`[::1]:8080` for IPv6).
    public init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { throw ValidationError("The HTTP address must be host:port, not \(text).") }
        host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        self.port = port
    }

    /// `host:port`, as read; an IPv6 host is written without brackets.
    public var description: String { "\(host):\(port)" }
}
