import Billing
import Contract
import Foundation
import Kafka
import MatometeTestSupport
import Store
import Testing

extension ScenarioTests {
    @Test("Broker faults: a broker down and back, leaders moved, injected request errors; nothing lost or doubled")
    func brokerFaults() async throws {
        let system = try await TestSystem.start("broker-faults")
        defer { Task { await system.shutDown() } }
        let traffic = KnownTraffic(september: 6000, october: 3000, cancellations: 2000)
        try await system.setUp(merchants: traffic.merchants, lines: traffic.lines, openCycle: .september)
        try system.launchAll(1)
        let cluster = system.cluster
        let september = traffic.chargeMessages(traffic.septemberCharges)

        try await system.produce(system.topics.charges, Array(september.prefix(2000)))
        // A broker down while the workers read, apply and publish.
        try cluster.setBrokerDown(2)
        try await Task.sleep(for: .seconds(3))
        try cluster.setBrokerUp(2)
        try await system.produce(system.topics.charges, Array(september.dropFirst(2000).prefix(2000)))
        // Leaders move under the consumers and the relay's producer.
        for partition in Int32(0)..<6 {
            try cluster.moveLeader(
                topic: system.topics.charges, partition: KafkaPartition(partition), to: partition % 3 + 1)
            try cluster.moveLeader(
                topic: system.topics.merchantResults(KnownTraffic.merchant(0)), partition: KafkaPartition(partition),
                to: (partition + 1) % 3 + 1)
        }
        // Retriable errors on the next requests of every client.
        cluster.injectErrors([.notLeaderForPartition, .requestTimedOut, .notEnoughReplicas], on: .produce)
        cluster.injectErrors([.notLeaderForPartition, .requestTimedOut], on: .fetch)
        cluster.injectErrors([.requestTimedOut], on: .offsetCommit)
        try await system.produce(system.topics.charges, Array(september.dropFirst(4000)))
        try await system.waitUntilIdle()
        try await system.close(.september)
        try cluster.setBrokerDown(3)
        try await Task.sleep(for: .seconds(2))
        try cluster.setBrokerUp(3)
        try await system.waitUntilIdle()
        try await system.produce(system.topics.cancellations, traffic.cancellationMessages)
        cluster.injectErrors([.notLeaderForPartition, .requestTimedOut], on: .produce)
        try await system.produce(system.topics.charges, traffic.chargeMessages(traffic.octoberCharges))
        try await system.waitUntilIdle()
        try await system.close(.october)
        try await system.waitUntilIdle()

        let outputs = try await system.outputs()
        traffic.verify(outputs)
        let missing = traffic.missingCharges(outputs)
        if !missing.isEmpty {
            // Tell a charge the brokers lost from one a worker skipped.
            Issue.record(
                "unanswered charges in the log: \(try await system.locate(missing, in: system.topics.charges)); logs in \(system.logDirectory.path)"
            )
        }
        #expect(system.running.count == 4, "no worker exited")
    }

    @Test("Database fault: PostgreSQL restarted twice mid-run; workers wait, reconnect, nothing lost")
    func databaseRestart() async throws {
        let server = try await EmbeddedPostgres.start(stopWhenProcessExits: true, logger: TestSystem.logger)
        let system = try await TestSystem.start("database-restart", server: server.configuration)
        defer {
            Task {
                await system.shutDown()
                try? await server.stop()
            }
        }
        let traffic = KnownTraffic(september: 8000, october: 3000, cancellations: 2000)
        try await system.setUp(merchants: traffic.merchants, lines: traffic.lines, openCycle: .september)
        try system.launchAll(1)
        let september = traffic.chargeMessages(traffic.septemberCharges)

        try await system.produce(system.topics.charges, Array(september.prefix(4000)))
        try await Task.sleep(for: .seconds(4))  // the workers are in the middle of it
        try await server.restart()
        try await system.produce(system.topics.charges, Array(september.dropFirst(4000)))
        try await system.waitUntilIdle()
        try await system.close(.september)
        try await Task.sleep(for: .milliseconds(200))
        try await server.restart()  // during the close
        try await system.waitUntilIdle()
        try await system.produce(system.topics.cancellations, traffic.cancellationMessages)
        try await system.produce(system.topics.charges, traffic.chargeMessages(traffic.octoberCharges))
        try await system.waitUntilIdle()
        try await system.close(.october)
        try await system.waitUntilIdle()

        traffic.verify(try await system.outputs())
        #expect(system.running.count == 4, "no worker exited")
    }
}
