import ArgumentParser
import ServerKit
import SiteKit
import SiteMessages
import SupportDesk

@main
struct SupportDeskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "support-desk",
        abstract:
            "The carrier's support desk: one line's whole story, and a few recorded actions at its user's request.",
        discussion: """
            Serves HTML pages to the support centre's agents and supervisors, who log in with accounts \
            `matomete support staff add` creates (never the merchants' site's). An agent finds a line by its id, \
            a purchase ID, a merchant's charge or subscription id, or a bill id; reads its line, purchase IDs, \
            requests and answers, subscriptions and bills; and, with the reason the user gave, unlocks or revokes \
            a purchase ID, sets or clears the user's own limit, stops or allows carrier billing on the line, \
            cancels a subscription (sent to <prefix>.cancellations signed with the merchant's key, as the \
            merchant's own would be), or marks a purchase disputed. Every lookup, view and action is in the \
            desk's audit log, which supervisors read and export. For the internal network only; serve it behind \
            TLS (cookies are Secure) unless --plain-http. Also serves /healthz, /livez and /metrics. Stops \
            gracefully on SIGTERM (exit 0).
            """)

    @OptionGroup var site: StaffSiteOptions
    @OptionGroup var kafka: KafkaClientOptions

    func run() async throws {
        let configuration = try site.resolve(SupportDeskApplication.settings(plainHTTP: false))
        let connection = try kafka.resolve()
        try await configuration.run(label: "matomete.support-desk") { holder, readiness, logger in
            let (producer, cancellations) = try SiteCancellations.start(
                connection, clientID: "matomete-support-desk", sealer: configuration.sealer, logger: logger)
            let app = try SupportDeskApplication.application(
                holder: holder, settings: configuration.settings, cancellations: cancellations,
                address: configuration.address, limits: HTTPLimits(), readiness: readiness, logger: logger)
            return [producer, app]
        }
    }
}
