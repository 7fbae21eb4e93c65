import ArgumentParser
import MerchantSite
import ServerKit
import SiteKit
import SiteMessages

@main
struct MerchantSiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merchant-site",
        abstract: "The merchants' data-management site: purchases, settlements, payouts and the audit log.",
        discussion: """
            Serves HTML pages to a merchant's staff, who log in with the accounts `matomete merchants staff add` \
            creates (e-mail-like login, password, optional TOTP code). Each sees only their own merchant's data. \
            Sessions end after --idle-minutes unused or --session-hours after login; 5 failed logins in a row \
            lock an account for 15 minutes. Serve it behind TLS (cookies are Secure) unless --plain-http. \
            An admin's cancellation is sent to <prefix>.cancellations, signed with the merchant's newest valid \
            signing key (opened with the key-encryption key), as the merchant's own system would send it. \
            Also serves /healthz, /livez and /metrics. Stops gracefully on SIGTERM (exit 0).
            """)

    @OptionGroup var site: StaffSiteOptions
    @OptionGroup var kafka: KafkaClientOptions

    func run() async throws {
        let configuration = try site.resolve(MerchantSiteApplication.settings(plainHTTP: false))
        let connection = try kafka.resolve()
        try await configuration.run(label: "matomete.merchant-site") { holder, readiness, logger in
            let (producer, cancellations) = try SiteCancellations.start(
                connection, clientID: "matomete-merchant-site", sealer: configuration.sealer, logger: logger)
            let app = try MerchantSiteApplication.application(
                holder: holder, settings: configuration.settings, cancellations: cancellations,
                sealer: configuration.sealer,
                address: configuration.address, limits: HTTPLimits(), readiness: readiness, logger: logger)
            return [producer, app]
        }
    }
}
