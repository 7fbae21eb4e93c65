import Contract
import Testing

/// The ACLs `matomete topics acls` prints, judged by Kafka's matching rules
/// against every topic: each party reaches what it needs and nothing else.
@Suite("Kafka access")
struct KafkaAccessTests {
    static let topics = Topics()
    /// `m-a` is the start of `m-ab`: their prefixes must still not overlap.
    static let merchants = ["m-a", "m-ab", "m_b"]
    static let access = KafkaAccess(topics: topics)
    static let entries = access.carrier + merchants.flatMap(access.merchant)
    static let allTopics =
        topics.layout(partitions: 1).map(\.name)
        + merchants.flatMap { topics.merchantLayout($0, partitions: 1) }.map(\.name)

    static func can(_ principal: String, _ operation: String, _ topic: String) -> Bool {
        KafkaAccess.allows(entries, principal, operation, topic: topic)
    }

    /// The topics `principal` may do `operation` on.
    static func reach(_ principal: String, _ operation: String) -> Set<String> {
        Set(allTopics.filter { can(principal, operation, $0) })
    }

    @Test("A merchant writes only the request topics and reads only its own topics")
    func merchants() {
        for merchant in Self.merchants {
            let principal = KafkaAccess.Principal.merchant(merchant)
            #expect(Self.reach(principal, "Write") == [Self.topics.charges, Self.topics.cancellations])
            #expect(
                Self.reach(principal, "Read")
                    == [
                        Self.topics.merchantResults(merchant), Self.topics.merchantSettlements(merchant),
                        Self.topics.merchantPayouts(merchant),
                    ],
                "\(merchant) reads \(Self.reach(principal, "Read").sorted())")
            #expect(!Self.can(principal, "Create", Self.topics.merchantResults(merchant)))
        }
    }

    @Test("Only operators write billing-cycles; each party reaches only its own topics")
    func carrierParties() {
        let topics = Self.topics
        let principals = Set(Self.entries.map(\.principal))
        #expect(principals.filter { Self.can($0, "Write", topics.billingCycles) } == [KafkaAccess.Principal.operators])
        typealias P = KafkaAccess.Principal
        #expect(Self.reach(P.worker("matomete-charge-worker"), "Read") == [topics.charges])
        #expect(Self.reach(P.worker("matomete-cancellation-worker"), "Read") == [topics.cancellations])
        #expect(Self.reach(P.worker("matomete-billing-cycle-worker"), "Read") == [topics.billingCycles])
        #expect(Self.reach(P.worker("matomete-collection-worker"), "Read") == [topics.collections])
        for worker in [
            "matomete-charge-worker", "matomete-cancellation-worker", "matomete-billing-cycle-worker",
            "matomete-collection-worker",
        ] {
            #expect(Self.reach(P.worker(worker), "Write").isEmpty, "\(worker) writes nothing to Kafka")
        }
        let inputs: Set = [topics.charges, topics.cancellations, topics.billingCycles, topics.collections]
        #expect(Self.reach(P.relay, "Write") == Set(Self.allTopics).subtracting(inputs))
        #expect(Self.reach(P.relay, "Read").isEmpty)
        #expect(Self.reach(P.merchantSite, "Write") == [topics.cancellations])
        #expect(Self.reach(P.merchantSite, "Read").isEmpty)
        #expect(Self.reach(P.supportDesk, "Write") == [topics.cancellations])
        #expect(Self.reach(P.supportDesk, "Read").isEmpty)
        #expect(Self.reach(P.lineSystem, "Write") == [topics.cancellations])
        #expect(Self.reach(P.lineSystem, "Read") == [topics.lineSystemResults])
        #expect(Self.reach(P.billingSystem, "Read") == [topics.lineBills, topics.collectionResults])
        #expect(
            principals.filter { Self.can($0, "Write", topics.collections) } == [P.billingSystem],
            "only the billing system reports collections")
        #expect(Self.reach(P.finance, "Read") == [topics.settlements, topics.payouts])
        #expect(Self.reach(P.operators, "Read") == [topics.deadLetters])
        #expect(Self.reach(P.operators, "Write") == inputs.subtracting([topics.collections]))
    }

    @Test("Consumer groups: each party its own, a merchant's never another's, whatever the id")
    func groups() {
        typealias P = KafkaAccess.Principal
        // Merchants named like the carrier's parties, and one the start of another.
        let merchants = ["finance", "line-system", "billing-system", "matomete-operator", "m-a", "m-ab"]
        let entries = Self.access.carrier + merchants.flatMap(Self.access.merchant)
        let groups =
            ["matomete-charge-worker", "matomete-cancellation-worker", "matomete-billing-cycle-worker"]
            + [
                "matomete-collection-worker", "finance.reader", "line-system.reader", "billing-system.reader",
                "matomete-operator.replay",
            ]
            + merchants.map { KafkaAccess.merchantGroupPrefix($0) + "reader" }
        for merchant in merchants {
            let principal = P.merchant(merchant)
            let reachable = groups.filter { group in entries.contains { $0.allows(principal, "Read", .group, group) } }
            #expect(
                reachable == [KafkaAccess.merchantGroupPrefix(merchant) + "reader"], "\(merchant) joins \(reachable)")
        }
        #expect(entries.contains { $0.allows(P.finance, "Read", .group, "finance.reader") })
        #expect(!entries.contains { $0.allows(P.finance, "Read", .group, "matomete-charge-worker") })
    }

    @Test("Each ACL is one kafka-acls.sh command, quoted")
    func commands() {
        let entry = Self.access.merchant("m-a")[2]
        #expect(
            entry.command
                == #"kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add --allow-principal 'User:merchant-m-a' --operation Read --topic 'matomete.merchant.m-a.' --resource-pattern-type prefixed"#
        )
    }
}
