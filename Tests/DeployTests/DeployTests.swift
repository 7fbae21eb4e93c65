import Foundation
import MatometeTestSupport
import PostgresNIO
import Testing
import Yams

/// `deploy/` cannot run here (no container engine, no Kubernetes), so it is
/// checked against what can: each manifest against a schema of the fields it
/// may use, and every command, flag, variable, port, probe, group and topic
/// against the executables as built.
@Suite("deploy/ matches the executables")
struct DeployTests {
    static let deploy = JSONSchema.checkout.appendingPathComponent("deploy")
    static let executables = [
        "charge-worker", "cancellation-worker", "billing-cycle-worker", "collection-worker", "outbox-relay",
        "auth-gateway", "merchant-site", "support-desk", "matomete",
    ]

    /// Every Kubernetes document in deploy/kubernetes, by kind.
    static func manifests() throws -> [(file: String, document: [String: Any])] {
        let folder = deploy.appendingPathComponent("kubernetes")
        var documents: [(String, [String: Any])] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        where file.hasSuffix(".yaml") && file != "kustomization.yaml" {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            for case let document as [String: Any] in try Yams.load_all(yaml: text) {
                documents.append((file, document))
            }
        }
        return documents
    }

    /// What each executable's `--help` says (flags and variables), by name;
    /// the operator tool's subcommands that deploy/ runs by "matomete <subcommand>".
    static func help() throws -> [String: String] {
        func text(_ name: String, _ arguments: [String]) throws -> String {
            let process = Process()
            process.executableURL = try Processes.builtExecutable(name)
            process.arguments = arguments + ["--help"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            // The end of its output is all that is needed: `--help` prints and exits. (Waiting for the exit
            // with `waitUntilExit` once hung on a loaded machine, the child already a zombie.)
            return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }
        var help: [String: String] = [:]
        for name in executables { help[name] = try text(name, []) }
        for subcommand in [["migrate"], ["topics", "create"], ["topics", "acls"]] {
            help["matomete " + subcommand.joined(separator: " ")] = try text("matomete", subcommand)
        }
        return help
    }

    /// Checks one command line: a built executable (or `sh -c` running the
    /// operator tool) with flags it documents; returns the executable.
    static func check(command: [String], help: [String: String], in place: String) -> String? {
        if command.first == "sh", command.count == 3 {
            for part in command[2].components(separatedBy: "&&") {
                let words = part.split(separator: " ").map(String.init)
                guard words.first == "matomete", words.count >= 2 else {
                    Issue.record("\(place): the shell runs \(part), not the matomete tool")
                    continue
                }
                let sub = words.count > 2 && !words[2].hasPrefix("-") ? "\(words[1]) \(words[2])" : words[1]
                guard let text = help["matomete \(sub)"] else {
                    Issue.record("\(place): matomete \(sub) is not checked here")
                    continue
                }
                for flag in words where flag.hasPrefix("--") {
                    #expect(text.contains(flag), "\(place): matomete \(sub) has no \(flag)")
                }
            }
            return "matomete"
        }
        guard let name = command.first, let text = help[name] else {
            Issue.record("\(place): \(command.first ?? "nothing") is not one of the executables")
            return nil
        }
        for flag in command where flag.hasPrefix("--") {
            #expect(text.contains(flag + " "), "\(place): \(name) has no \(flag)")
        }
        return name
    }

    @Test("Kafka access: the scripts run the tool's own commands, every principal granted has a user, no ACL means no")
    func kafkaAccess() throws {
        let folder = Self.deploy.appendingPathComponent("kafka")
        func read(_ name: String) throws -> String {
            try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
        }
        let help = try Self.help()
        let acls = try read("acls.sh")
        #expect(acls.contains("matomete topics acls \"$@\" | sh -eu"))
        let readme = try read("README.md")
        for line in readme.split(separator: "\n") where line.hasPrefix("matomete ") || line.hasPrefix("./acls.sh") {
            let words = line.split(separator: " ").map(String.init)
            let command = words[0] == "./acls.sh" ? "matomete topics acls" : "matomete \(words[1]) \(words[2])"
            for flag in words where flag.hasPrefix("--") {
                if let text = help[command] {
                    #expect(text.contains(flag), "\(command) has no \(flag), as README.md says")
                } else if command != "matomete merchants add" && command != "matomete merchants keys" {
                    Issue.record("README.md runs \(command), which is not checked here")
                }
            }
        }
        // Every principal the tool grants (merchants aside) has a user made by users.sh, and no other.
        let process = Process()
        process.executableURL = try Processes.builtExecutable("matomete")
        process.arguments = ["topics", "acls", "--json"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let entries = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: String]])
        let principals = Set(entries.compactMap { $0["principal"]?.replacingOccurrences(of: "User:", with: "") })
        let users = try read("users.sh")
        // The default list: from `set -- ` to the `fi` that ends it, over continued lines.
        let start = try #require(users.range(of: "set -- ")).upperBound
        let end = try #require(users.range(of: "\nfi", range: start..<users.endIndex)).lowerBound
        let listed = users[start..<end].split(whereSeparator: { " \\\n".contains($0) }).map(String.init)
        #expect(Set(listed) == principals, "users.sh makes \(listed.sorted()); the ACLs name \(principals.sorted())")
        let broker = try read("broker-security.properties")
        for setting in [
            "allow.everyone.if.no.acl.found=false", "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "auto.create.topics.enable=false", "authorizer.class.name=",
        ] {
            #expect(broker.contains(setting), "the brokers need \(setting)")
        }
        for script in ["acls.sh", "users.sh"] {
            let check = Process()
            check.executableURL = URL(fileURLWithPath: "/bin/sh")
            check.arguments = ["-n", folder.appendingPathComponent(script).path]
            try check.run()
            check.waitUntilExit()
            #expect(check.terminationStatus == 0, "\(script) is valid sh")
        }
    }

    @Test("Kubernetes manifests match their schemas; commands, flags and variables are the executables' own")
    func kubernetes() throws {
        let help = try Self.help()
        let documents = try Self.manifests()
        var configKeys: [String] = []
        for (file, document) in documents {
            let kind = document["kind"] as? String ?? "?"
            let schemaURL = Self.deploy.appendingPathComponent("schemas/\(kind).schema.json")
            guard FileManager.default.fileExists(atPath: schemaURL.path) else {
                Issue.record("\(file): no schema for kind \(kind)")
                continue
            }
            let violations = try JSONSchema(contentsOf: schemaURL).violations(ofValue: document)
            #expect(violations.isEmpty, "\(file) \(kind): \(violations)")
            if kind == "ConfigMap" { configKeys += (document["data"] as? [String: Any] ?? [:]).keys }
        }
        for key in configKeys {
            #expect(help.values.contains { $0.contains(key) }, "the ConfigMap sets \(key), which no executable reads")
        }
        for (file, document) in documents where ["Deployment", "Job"].contains(document["kind"] as? String) {
            let spec = document[path: "spec", "template", "spec"] as? [String: Any] ?? [:]
            for container in spec["containers"] as? [[String: Any]] ?? [] {
                let command = container["command"] as? [String] ?? []
                guard let name = Self.check(command: command, help: help, in: file) else { continue }
                let text = help[name] ?? ""
                let env = container["env"] as? [[String: Any]] ?? []
                for variable in env.compactMap({ $0["name"] as? String }) {
                    #expect(text.contains(variable), "\(file): \(name) does not read \(variable)")
                }
                guard document["kind"] as? String == "Deployment" else { continue }
                // Probes on the port the process listens on: ready is /healthz, alive is /livez.
                let address = env.first { $0["name"] as? String == "MATOMETE_HTTP_ADDRESS" }?["value"] as? String
                let port = (container["ports"] as? [[String: Any]])?.first?["containerPort"] as? Int
                #expect(address.map { $0.hasSuffix(":\(port ?? -1)") } == true, "\(file): listens where its port is")
                #expect(container[path: "readinessProbe", "httpGet", "path"] as? String == "/healthz", "\(file)")
                #expect(container[path: "livenessProbe", "httpGet", "path"] as? String == "/livez", "\(file)")
                #expect(spec["terminationGracePeriodSeconds"] as? Int ?? 0 >= 30, "\(file): time to finish a batch")
            }
        }
    }

    @Test("Every Deployment has a disruption budget and a scaler; lag scaling never exceeds the partitions")
    func scaling() throws {
        let documents = try Self.manifests().map(\.document)
        func all(_ kind: String) -> [[String: Any]] { documents.filter { $0["kind"] as? String == kind } }
        // The partitions the setup job creates, and the line shards it migrates with.
        let setup =
            (all("Job").first?[path: "spec", "template", "spec"] as? [String: Any])?["containers"]
            as? [[String: Any]]
        let script = (setup?.first?["command"] as? [String])?.last ?? ""
        func number(after flag: String, in text: String) -> Int? {
            guard let range = text.range(of: flag + " ") else { return nil }
            return Int(text[range.upperBound...].prefix { $0.isNumber })
        }
        let partitions = try #require(number(after: "topics create --partitions", in: script))
        let shards = try #require(number(after: "migrate --partitions", in: script))
        let partitionsOf = [
            "matomete.charges": partitions, "matomete.cancellations": partitions, "matomete.billing-cycles": 1,
            "matomete.collections": partitions,
        ]

        for deployment in all("Deployment") {
            let name = deployment[path: "metadata", "name"] as? String ?? "?"
            let labels = deployment[path: "spec", "selector", "matchLabels"] as? [String: String]
            let replicas = deployment[path: "spec", "replicas"] as? Int ?? 1
            let budget = all("PodDisruptionBudget").first {
                $0[path: "spec", "selector", "matchLabels"] as? [String: String] == labels
            }
            #expect(budget != nil, "\(name) has a PodDisruptionBudget")
            #expect((budget?[path: "spec", "minAvailable"] as? Int ?? 99) < replicas, "\(name) can still be drained")
            let scalers =
                all("ScaledObject").filter { $0[path: "spec", "scaleTargetRef", "name"] as? String == name }
                + all("HorizontalPodAutoscaler").filter {
                    $0[path: "spec", "scaleTargetRef", "name"] as? String == name
                }
            #expect(scalers.count == 1, "\(name) has one autoscaler")
            guard let scaled = scalers.first, scaled["kind"] as? String == "ScaledObject" else { continue }
            let triggers = scaled[path: "spec", "triggers"] as? [[String: Any]] ?? []
            let maximum = scaled[path: "spec", "maxReplicaCount"] as? Int ?? 0
            var limit = 0
            for trigger in triggers {
                let metadata = trigger["metadata"] as? [String: Any] ?? [:]
                if trigger["type"] as? String == "kafka" {
                    let topic = metadata["topic"] as? String ?? ""
                    #expect(metadata["consumerGroup"] as? String == "matomete-\(name)", "\(name): the worker's group")
                    #expect(partitionsOf[topic] != nil, "\(name) scales on \(topic), which the setup creates")
                    limit = max(limit, partitionsOf[topic] ?? 0)
                } else {
                    // Database triggers: the outbox backlog, or the shards of a running close.
                    let query = metadata["query"] as? String ?? ""
                    limit = max(limit, query.contains("cycle_close_shards") ? shards : maximum)
                }
            }
            #expect(maximum <= limit, "\(name): at most \(limit) replicas can share the work, not \(maximum)")
        }
    }

    @Test("The alerting rules are well formed and name only metrics and labels the workers export")
    func alertingRules() throws {
        let text = try String(
            contentsOf: Self.deploy.appendingPathComponent("prometheus/alerts.yaml"), encoding: .utf8)
        let file = try #require(try Yams.load(yaml: text) as? [String: Any])
        let groups = try #require(file["groups"] as? [[String: Any]])
        // What the workers register (`label: "matomete_…"`) and the label
        // values they set, from the sources the executables are built from.
        var sources = ""
        let folder = JSONSchema.checkout.appendingPathComponent("Sources")
        for case let path as String in FileManager.default.enumerator(atPath: folder.path)!
        where path.hasSuffix(".swift") {
            sources += try String(contentsOf: folder.appendingPathComponent(path), encoding: .utf8)
        }
        let exported = Set(sources.matches(of: /label: "(matomete_[a-z_]+)"/).map { String($0.1) })
        #expect(exported.contains("matomete_outbox_claim_duration_seconds"))
        var alerts: [String] = []
        for group in groups {
            #expect(group["name"] is String)
            for rule in try #require(group["rules"] as? [[String: Any]]) {
                let name = try #require(rule["alert"] as? String)
                alerts.append(name)
                let expression = try #require(rule["expr"] as? String, "\(name) has no expr")
                if let wait = rule["for"] {
                    #expect((wait as? String)?.wholeMatch(of: /\d+[smh]/) != nil, "\(name): for \(wait)")
                }
                #expect((rule["labels"] as? [String: Any])?["severity"] is String, "\(name) has no severity")
                let annotations = rule["annotations"] as? [String: Any]
                #expect(annotations?["summary"] is String && annotations?["description"] is String, "\(name)")
                #expect(
                    expression.filter { $0 == "(" }.count == expression.filter { $0 == ")" }.count,
                    "\(name): unbalanced parentheses")
                let metrics = expression.matches(of: /matomete_[a-z_]+/).map { String($0.0) }
                #expect(!metrics.isEmpty, "\(name) watches no Matomete metric")
                for metric in metrics {
                    let base = metric.replacing(/_(bucket|sum|count)$/, with: "")
                    #expect(exported.contains(base), "\(name) uses \(metric), which no worker exports")
                }
                for matcher in expression.matches(of: /\b[a-z_]+="([^"]*)"/) {
                    #expect(sources.contains("\"\(matcher.1)\""), "\(name) matches \(matcher.0), a value never set")
                }
            }
        }
        #expect(!alerts.isEmpty && Set(alerts).count == alerts.count)
    }

    @Test("The scalers' database queries run on a migrated database")
    func scalerQueries() async throws {
        let queries = try Self.manifests().compactMap {
            $0.document["kind"] as? String == "ScaledObject" ? $0.document : nil
        }
        .flatMap { $0[path: "spec", "triggers"] as? [[String: Any]] ?? [] }
        .compactMap { ($0["metadata"] as? [String: Any])?["query"] as? String }
        #expect(queries.count >= 2)
        let database = try await TestDatabase.create(partitions: 4)
        try await database.withClient { client in
            for query in queries {
                let rows = try await client.query(PostgresQuery(unsafeSQL: query), logger: TestServer.logger)
                var count = 0
                for try await (value) in rows.decode(Int64.self) {
                    #expect(value == 0, "\(query) on an empty database")
                    count += 1
                }
                #expect(count == 1, "\(query) gives one number")
            }
        }
    }

    @Test("The compose file runs the executables with their own flags and variables; the image builds them all")
    func composeAndImage() throws {
        let help = try Self.help()
        let text = try String(contentsOf: Self.deploy.appendingPathComponent("compose.yaml"), encoding: .utf8)
        let compose = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(compose["services"] as? [String: [String: Any]])
        #expect(Set(["kafka", "postgres", "setup"]).isSubset(of: services.keys))
        #expect(
            (services["kafka"]?["environment"] as? [String: Any])?["KAFKA_PROCESS_ROLES"] as? String
                == "broker,controller", "Kafka in KRaft mode")
        var started = Set<String>()
        for (name, service) in services where !["kafka", "postgres"].contains(name) {
            let command = service["command"] as? [String] ?? []
            guard let executable = Self.check(command: command, help: help, in: "compose \(name)") else { continue }
            started.insert(executable)
            let environment = service["environment"] as? [String: Any] ?? [:]
            for variable in environment.keys {
                #expect(
                    help[executable]?.contains(variable) == true, "compose \(name): \(executable) reads \(variable)")
            }
        }
        #expect(started == Set(Self.executables), "compose runs every executable")

        let dockerfile = try String(contentsOf: Self.deploy.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let stages = dockerfile.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(stages.count >= 2, "multi-stage")
        #expect(stages.first?.contains("swift:") == true && stages.last?.contains("swift:") == false)
        for name in Self.executables {
            #expect(dockerfile.contains("--product \(name)"), "the image builds \(name)")
        }
    }
}

extension Dictionary where Key == String, Value == Any {
    /// The value at a path of keys through nested mappings.
    subscript(path keys: String...) -> Any? {
        var current: Any? = self
        for key in keys { current = (current as? [String: Any])?[key] }
        return current
    }
}
