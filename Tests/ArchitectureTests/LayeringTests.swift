import Foundation
import MatometeTestSupport
import Testing

/// The package's modules depend on one another one way only: the rules
/// below the money, the wire and the engine, never the other way round. The
/// graph is read from the package itself (`swift package dump-package`) and
/// from every source file's imports, so a dependency that runs the wrong way
/// fails here before anyone builds on it.
@Suite("Layering") struct LayeringTests {
    /// The package's targets and the package targets each depends on.
    struct Graph {
        var direct: [String: Set<String>]
        var paths: [String: String]

        /// Every target `name` depends on, directly or not.
        func reach(_ name: String) -> Set<String> {
            var seen: Set<String> = []
            var stack = Array(direct[name] ?? [])
            while let next = stack.popLast() {
                if seen.insert(next).inserted { stack += direct[next] ?? [] }
            }
            return seen
        }
    }

    static let graph: Graph = {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("layering-\(getpid())")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // A scratch path of its own: the build folder is locked while tests run.
        process.arguments = ["swift", "package", "--scratch-path", scratch.path, "dump-package"]
        process.currentDirectoryURL = JSONSchema.checkout
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try! process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        precondition(process.terminationStatus == 0, "swift package dump-package failed")
        let package = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        let targets = package["targets"] as! [[String: Any]]
        let names = Set(targets.map { $0["name"] as! String })
        var direct: [String: Set<String>] = [:]
        var paths: [String: String] = [:]
        for target in targets {
            let name = target["name"] as! String
            var dependencies: Set<String> = []
            for dependency in target["dependencies"] as! [[String: Any]] {
                for kind in ["byName", "target"] {
                    if let value = dependency[kind] as? [Any], let dependencyName = value.first as? String,
                        names.contains(dependencyName)
                    {
                        dependencies.insert(dependencyName)
                    }
                }
            }
            direct[name] = dependencies
            let type = target["type"] as! String
            paths[name] =
                target["path"] as? String ?? (type == "test" ? "Tests/\(name)" : "Sources/\(name)")
        }
        return Graph(direct: direct, paths: paths)
    }()

    /// A rule: the target must not reach these targets, directly or not.
    struct Rule: CustomTestStringConvertible, Sendable {
        var target: String
        var mustNotReach: Set<String>
        var why: String
        var testDescription: String { "\(target): \(why)" }
    }

    static let libraries: Set<String> = [
        "Billing", "JSON", "Contract", "Authorization", "Store", "Kafka", "Consuming", "ServerKit", "Workers",
        "Gateway",
    ]

    static let rules: [Rule] = [
        Rule(target: "Billing", mustNotReach: libraries.subtracting(["Billing"]), why: "the rules depend on nothing"),
        Rule(target: "JSON", mustNotReach: libraries.subtracting(["JSON"]), why: "the JSON reader depends on nothing"),
        Rule(
            target: "Contract", mustNotReach: libraries.subtracting(["Contract", "Billing", "JSON"]),
            why: "the wire format knows the rules and JSON, nothing that runs"),
        Rule(
            target: "Authorization", mustNotReach: ["Contract", "Store", "Kafka", "Workers", "Gateway", "Consuming"],
            why: "signed authorizations are read without the message contract"),
        Rule(
            target: "Store", mustNotReach: ["Contract", "Kafka", "Consuming", "Workers", "Authorization"],
            why: "the store takes and returns domain types; topics and wire formats are not its business"),
        Rule(
            target: "Consuming", mustNotReach: ["Store", "Contract", "Billing", "Workers", "Authorization"],
            why: "the partition engine knows Kafka and an applier, not what is applied"),
        Rule(
            target: "ServerKit", mustNotReach: libraries.subtracting(["ServerKit"]),
            why: "the server kit is shared by every process, Kafka or not"),
        Rule(
            target: "Gateway", mustNotReach: ["Kafka", "Consuming", "Workers", "CRdKafka"],
            why: "the HTTP gateway does not link librdkafka"),
        Rule(
            target: "auth-gateway", mustNotReach: ["Kafka", "Consuming", "Workers", "CRdKafka"],
            why: "the HTTP gateway does not link librdkafka"),
        Rule(target: "matomete", mustNotReach: ["Workers", "Consuming"], why: "the operators' tool runs no worker"),
        Rule(
            target: "SiteKit", mustNotReach: ["Kafka", "Consuming", "Workers", "Processing", "Contract", "CRdKafka"],
            why: "the staff sites' kit serves pages from the store; it links no Kafka"),
        Rule(
            target: "MerchantSite", mustNotReach: ["Consuming", "Workers", "Processing", "SupportDesk"],
            why: "the merchants' site reads the store and sends requests; it applies nothing"),
        Rule(
            target: "SupportDesk", mustNotReach: ["Consuming", "Workers", "Processing", "MerchantSite", "Gateway"],
            why: "the support desk reads the store, changes lines through its transactions and sends cancellations"),
        Rule(
            target: "SiteMessages", mustNotReach: ["Consuming", "Workers", "Processing", "SiteKit", "Hummingbird"],
            why: "what the sites send is messages, not pages"),
    ]

    @Test("No module reaches what lies above it", arguments: rules)
    func rule(_ rule: Rule) throws {
        let graph = Self.graph
        try #require(graph.direct[rule.target] != nil, "\(rule.target) is not a target of the package")
        let wrong = graph.reach(rule.target).intersection(rule.mustNotReach)
        #expect(wrong.isEmpty, "\(rule.target) depends on \(wrong.sorted()): \(rule.why)")
    }

    @Test("Only the Kafka module (and the raw C benchmark) touch librdkafka's C API")
    func onlyKafkaImportsC() {
        let users = Self.graph.direct.filter { $0.value.contains("CRdKafka") }.map(\.key).sorted()
        #expect(users == ["CKafkaRawBench", "Kafka"])
    }

    @Test("Every module a source file imports is a dependency its target declares")
    func importsAreDeclared() throws {
        let graph = Self.graph
        let modules = Set(graph.direct.keys)
        var undeclared: [String] = []
        for (target, path) in graph.paths {
            let folder = JSONSchema.checkout.appendingPathComponent(path)
            guard let files = FileManager.default.enumerator(atPath: folder.path) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                for match in text.matches(of: /(?m)^(?:@testable )?import ([A-Za-z_]+)$/) {
                    let module = String(match.1)
                    if modules.contains(module), module != target, !(graph.direct[target] ?? []).contains(module) {
                        undeclared.append("\(path)/\(file) imports \(module)")
                    }
                }
            }
        }
        #expect(undeclared.isEmpty, "imports of modules the target does not declare: \(undeclared.sorted())")
    }

    @Test("The libraries' format configuration is the root's, with `///` required on every public declaration")
    func documentationRequired() throws {
        func canonical(_ text: String) throws -> Data {
            let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8))
            return try JSONSerialization.data(withJSONObject: parsed, options: [.sortedKeys])
        }
        let root = try String(
            contentsOf: JSONSchema.checkout.appendingPathComponent(".swift-format"), encoding: .utf8)
        let sources = try String(
            contentsOf: JSONSchema.checkout.appendingPathComponent("Sources/.swift-format"), encoding: .utf8)
        let documented = root.replacingOccurrences(
            of: "\"AllPublicDeclarationsHaveDocumentation\": false",
            with: "\"AllPublicDeclarationsHaveDocumentation\": true")
        #expect(documented != root, "the root configuration names the documentation rule")
        #expect(try canonical(documented) == canonical(sources), "Sources/.swift-format drifted from .swift-format")
    }
}
