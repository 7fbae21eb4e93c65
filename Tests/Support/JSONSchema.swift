import Foundation

/// A small JSON Schema checker for the subset `docs/schemas/` uses: `type`,
/// `properties`, `required`, `additionalProperties: false`, `items`, `enum`,
/// `const`, `minimum`, `maximum`, `minLength`, `maxLength` (in UTF-8 bytes,
/// as the workers count), `pattern`, `oneOf` and local `$ref`s. Enough to keep
/// the documented contract and the code in step.
public struct JSONSchema {
    private let root: [String: Any]

    /// The root of this checkout.
    public static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Loads `docs/schemas/<name>.schema.json` from this checkout.
    public init(named name: String) throws {
        try self.init(contentsOf: Self.checkout.appendingPathComponent("docs/schemas/\(name).schema.json"))
    }

    /// Loads a schema file.
    public init(contentsOf url: URL) throws {
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw TestFailure("\(url.path) is not a JSON object")
        }
        root = object
    }

    /// The reasons `bytes` does not match the schema; empty when it does.
    public func violations(of bytes: some Collection<UInt8>) -> [String] {
        guard let value = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else {
            return ["not JSON"]
        }
        return violations(of: value, against: root, at: "$")
    }

    /// The reasons a decoded value (from JSON or YAML) does not match the schema.
    public func violations(ofValue value: Any) -> [String] {
        violations(of: value, against: root, at: "$")
    }

    /// The reasons a header set does not match a schema of string properties.
    public func violations(ofHeaders headers: [String: String]) -> [String] {
        violations(of: headers as [String: Any], against: root, at: "headers")
    }

    private func violations(of value: Any, against schema: [String: Any], at path: String) -> [String] {
        if let reference = schema["$ref"] as? String {
            let name = reference.replacingOccurrences(of: "#/$defs/", with: "")
            guard let definitions = root["$defs"] as? [String: Any], let target = definitions[name] as? [String: Any]
            else { return ["\(path): unresolved \(reference)"] }
            return violations(of: value, against: target, at: path)
        }
        var found: [String] = []
        // The other keywords beside a oneOf hold as well.
        if let choices = schema["oneOf"] as? [[String: Any]] {
            let matching = choices.filter { violations(of: value, against: $0, at: path).isEmpty }.count
            if matching != 1 { found.append("\(path): matches \(matching) of the oneOf choices, not exactly one") }
        }
        if let constant = schema["const"], !equal(value, constant) { found.append("\(path): not \(constant)") }
        if let options = schema["enum"] as? [Any], !options.contains(where: { equal(value, $0) }) {
            found.append("\(path): \(value) is not one of \(options)")
        }
        switch schema["type"] as? String {
        case "object":
            guard let object = value as? [String: Any] else { return found + ["\(path): not an object"] }
            let properties = schema["properties"] as? [String: [String: Any]] ?? [:]
            for name in schema["required"] as? [String] ?? [] where object[name] == nil {
                found.append("\(path): \(name) is missing")
            }
            for (name, member) in object {
                if let property = properties[name] {
                    found += violations(of: member, against: property, at: "\(path).\(name)")
                } else if schema["additionalProperties"] as? Bool == false {
                    found.append("\(path): \(name) is not in the schema")
                }
            }
        case "array":
            guard let array = value as? [Any] else { return found + ["\(path): not an array"] }
            if let items = schema["items"] as? [String: Any] {
                for (index, item) in array.enumerated() {
                    found += violations(of: item, against: items, at: "\(path)[\(index)]")
                }
            }
        case "integer":
            // JSON's true and false come as NSNumbers of type "c" (char).
            guard let number = value as? NSNumber, String(cString: number.objCType) != "c",
                number.doubleValue == number.doubleValue.rounded()
            else { return found + ["\(path): not an integer"] }
            if let minimum = schema["minimum"] as? NSNumber, number.int64Value < minimum.int64Value {
                found.append("\(path): below \(minimum)")
            }
            if let maximum = schema["maximum"] as? NSNumber, number.int64Value > maximum.int64Value {
                found.append("\(path): above \(maximum)")
            }
        case "string":
            guard let text = value as? String else { return found + ["\(path): not a string"] }
            if let minimum = schema["minLength"] as? Int, text.utf8.count < minimum {
                found.append("\(path): too short")
            }
            if let maximum = schema["maxLength"] as? Int, text.utf8.count > maximum {
                found.append("\(path): too long")
            }
            if let pattern = schema["pattern"] as? String,
                text.range(of: pattern, options: .regularExpression) == nil
            {
                found.append("\(path): does not match \(pattern)")
            }
        default:
            break
        }
        return found
    }

    private func equal(_ lhs: Any, _ rhs: Any) -> Bool {
        (lhs as? NSObject)?.isEqual(rhs) ?? false
    }
}
