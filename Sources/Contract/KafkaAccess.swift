/// Who may do what on Matomete's topics: the Kafka ACLs a carrier grants,
/// one principal per party, as `matomete kafka acls` prints them for
/// `kafka-acls.sh` (`deploy/kafka/`). Each merchant reads only the topics
/// under its own prefix (``Topics/merchantPrefix(_:)``) and writes only the
/// two request topics; only operators write to `billing-cycles`.
public struct KafkaAccess: Sendable {
    /// One ACL: allow `principal` to do `operation` on the resources named.
    public struct Entry: Sendable, Hashable {
        /// Which kind of resource it covers.
        public enum Resource: String, Sendable, Hashable {
            case topic, group, cluster
        }
        /// How the name matches: exactly, or as the start of the name.
        public enum Pattern: String, Sendable, Hashable {
            case literal, prefixed
        }

        /// `User:<name>`.
        public var principal: String
        /// Kafka's operation: `Read`, `Write`, `Describe`, `Create`, `IdempotentWrite`.
        public var operation: String
        /// The resource's kind.
        public var resource: Resource
        /// How ``name`` matches.
        public var pattern: Pattern
        /// The topic or group name (or its start); `kafka-cluster` for the cluster.
        public var name: String

        /// Whether this entry lets `principal` do `operation` on `name` of kind `resource`,
        /// by Kafka's rules: a name matches exactly, or by its start when
        /// prefixed; `Read` and `Write` also allow `Describe`.
        public func allows(_ principal: String, _ operation: String, _ resource: Resource, _ name: String) -> Bool {
            guard self.principal == principal, self.resource == resource else { return false }
            let operations: Set<String> =
                self.operation == "Read" || self.operation == "Write"
                ? [self.operation, "Describe"] : [self.operation]
            guard operations.contains(operation) else { return false }
            switch pattern {
            case .literal: return self.name == name
            case .prefixed: return name.hasPrefix(self.name)
            }
        }

        /// The `kafka-acls.sh` command that adds it, with the broker and the
        /// admin's client settings left to the shell (`$BOOTSTRAP`, `$ADMIN_CONFIG`).
        public var command: String {
            let target =
                switch resource {
                case .topic: "--topic '\(name)'"
                case .group: "--group '\(name)'"
                case .cluster: "--cluster"
                }
            return
                "kafka-acls.sh --bootstrap-server \"$BOOTSTRAP\" --command-config \"$ADMIN_CONFIG\" --add --allow-principal '\(principal)' --operation \(operation) \(target) --resource-pattern-type \(pattern.rawValue)"
        }
    }

    /// The principals of the parties that are not merchants.
    public enum Principal {
        /// Each worker kind's: reads its input topic in its consumer group.
        public static func worker(_ group: String) -> String { "User:\(group)" }
        /// The relay's: writes every output topic.
        public static let relay = "User:matomete-outbox-relay"
        /// The merchant site: it writes the cancellations merchants' admins send from it.
        public static let merchantSite = "User:matomete-merchant-site"
        /// The support desk: it writes the subscription cancellations agents send on a line user's behalf.
        public static let supportDesk = "User:matomete-support-desk"
        /// Operators' (the `matomete` tool, the setup job, the scheduler): create
        /// topics, close months, replay dead letters.
        public static let operators = "User:matomete-operator"
        /// The carrier's line system: sends line terminations, reads their results.
        public static let lineSystem = "User:line-system"
        /// The carrier's billing system: reads the line bills, reports their collection, reads the results.
        public static let billingSystem = "User:billing-system"
        /// Finance: reads every settlement and payout statement.
        public static let finance = "User:finance"
        /// A merchant's: `User:merchant-<id>`.
        public static func merchant(_ merchant: String) -> String { "User:merchant-\(merchant)" }
    }

    /// The topic names.
    public var topics: Topics

    /// The access for Matomete's topics under `topics`.
    public init(topics: Topics = Topics()) { self.topics = topics }

    /// Every ACL of the carrier's own parties: the workers, the relay, the
    /// operators, the line system, the billing system and finance.
    public var carrier: [Entry] {
        var entries: [Entry] = []
        func allow(
            _ principal: String, _ operation: String, _ resource: Entry.Resource, _ name: String,
            _ pattern: Entry.Pattern = .literal
        ) {
            entries.append(
                Entry(principal: principal, operation: operation, resource: resource, pattern: pattern, name: name))
        }
        for (group, topic) in [
            ("matomete-charge-worker", topics.charges), ("matomete-cancellation-worker", topics.cancellations),
            ("matomete-billing-cycle-worker", topics.billingCycles),
            ("matomete-collection-worker", topics.collections),
        ] {
            allow(Principal.worker(group), "Read", .topic, topic)
            allow(Principal.worker(group), "Read", .group, group)
        }
        // The relay publishes to every output, merchants' own topics included, idempotently.
        for topic in [
            topics.lineSystemResults, topics.lineBills, topics.settlements, topics.collectionResults, topics.payouts,
            topics.deadLetters,
        ] {
            allow(Principal.relay, "Write", .topic, topic)
        }
        allow(Principal.relay, "Write", .topic, "\(topics.prefix).merchant.", .prefixed)
        allow(Principal.relay, "IdempotentWrite", .cluster, "kafka-cluster")
        // Operators: topics created, months closed, dead letters read and replayed to where they came from.
        allow(Principal.operators, "Create", .topic, "\(topics.prefix).", .prefixed)
        allow(Principal.operators, "Describe", .topic, "\(topics.prefix).", .prefixed)
        for topic in [topics.billingCycles, topics.charges, topics.cancellations] {
            allow(Principal.operators, "Write", .topic, topic)
        }
        allow(Principal.operators, "Read", .topic, topics.deadLetters)
        allow(Principal.operators, "Read", .group, "matomete-operator.", .prefixed)
        allow(Principal.merchantSite, "Write", .topic, topics.cancellations)
        allow(Principal.merchantSite, "IdempotentWrite", .cluster, "kafka-cluster")
        allow(Principal.supportDesk, "Write", .topic, topics.cancellations)
        allow(Principal.supportDesk, "IdempotentWrite", .cluster, "kafka-cluster")
        allow(Principal.lineSystem, "Write", .topic, topics.cancellations)
        allow(Principal.lineSystem, "Read", .topic, topics.lineSystemResults)
        allow(Principal.lineSystem, "Read", .group, "line-system.", .prefixed)
        allow(Principal.billingSystem, "Read", .topic, topics.lineBills)
        allow(Principal.billingSystem, "Write", .topic, topics.collections)
        allow(Principal.billingSystem, "Read", .topic, topics.collectionResults)
        allow(Principal.billingSystem, "Read", .group, "billing-system.", .prefixed)
        allow(Principal.finance, "Read", .topic, topics.settlements)
        allow(Principal.finance, "Read", .topic, topics.payouts)
        allow(Principal.finance, "Read", .group, "finance.", .prefixed)
        return entries
    }

    /// What a merchant's consumer groups are named with: `merchant-<id>.`,
    /// which no other party's groups start with, whatever the id.
    public static func merchantGroupPrefix(_ merchant: String) -> String { "merchant-\(merchant)." }

    /// The ACLs of one merchant: it writes its requests, reads what is under
    /// its own prefix, in consumer groups named `merchant-<id>.…`.
    public func merchant(_ merchant: String) -> [Entry] {
        let principal = Principal.merchant(merchant)
        return [
            Entry(principal: principal, operation: "Write", resource: .topic, pattern: .literal, name: topics.charges),
            Entry(
                principal: principal, operation: "Write", resource: .topic, pattern: .literal,
                name: topics.cancellations),
            Entry(
                principal: principal, operation: "Read", resource: .topic, pattern: .prefixed,
                name: topics.merchantPrefix(merchant)),
            Entry(
                principal: principal, operation: "Read", resource: .group, pattern: .prefixed,
                name: Self.merchantGroupPrefix(merchant)),
        ]
    }

    /// Whether any of `entries` lets `principal` do `operation` on the topic `topic`.
    public static func allows(_ entries: [Entry], _ principal: String, _ operation: String, topic: String) -> Bool {
        entries.contains { $0.allows(principal, operation, .topic, topic) }
    }
}
