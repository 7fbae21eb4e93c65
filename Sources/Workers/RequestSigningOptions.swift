import ArgumentParser
import Authorization
import Foundation
import ServerKit

/// How the charge and cancellation workers check who signed each request
/// (`docs/merchants.md`, "Signing requests").
public struct RequestSigningOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A file holding the key-encryption key the merchants' and the line system's signing secrets are sealed under (base64 of 32 bytes; `matomete keys generate` makes one). [env: MATOMETE_KEY_ENCRYPTION_KEY_FILE, or the key itself in MATOMETE_KEY_ENCRYPTION_KEY]",
            valueName: "path"))
    var keyEncryptionKeyFile: String?

    @Option(
        name: .customLong("signature-window-seconds"),
        help: ArgumentHelp(
            "How far a request's matomete-timestamp may be from the time Kafka gives the message, either way; farther is refused as signature_stale. [env: MATOMETE_SIGNATURE_WINDOW_SECONDS] (default: 300)",
            valueName: "seconds"))
    var signatureWindowSeconds: Int?

    @Option(
        name: .customLong("signing-key-refresh-seconds"),
        help: ArgumentHelp(
            "How often the signing keys are read again: a key created or revoked counts from the next read. [env: MATOMETE_SIGNING_KEY_REFRESH_SECONDS] (default: 10)",
            valueName: "seconds"))
    var signingKeyRefreshSeconds: Int?

    /// Every option unset.
    public init() {}

    /// The options with the environment filled in and every value checked.
    public func resolve(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> RequestSigningSettings {
        let window = try Options.integer(
            signatureWindowSeconds, "MATOMETE_SIGNATURE_WINDOW_SECONDS", default: 300, in: 1...86_400,
            name: "The signature window", unit: " s", environment: environment)
        let refresh = try Options.integer(
            signingKeyRefreshSeconds, "MATOMETE_SIGNING_KEY_REFRESH_SECONDS", default: 10, in: 1...3600,
            name: "The signing-key refresh", unit: " s", environment: environment)
        let sealer: SecretSealer
        do {
            sealer = try SecretSealer.configured(file: keyEncryptionKeyFile, environment: environment)
        } catch {
            throw ValidationError("The key-encryption key: \(error.description).")
        }
        return RequestSigningSettings(sealer: sealer, window: .seconds(window), refresh: .seconds(refresh))
    }
}

/// How requests' signatures are checked, resolved.
public struct RequestSigningSettings: Sendable {
    /// Opens the stored signing secrets.
    public var sealer: SecretSealer
    /// How far the signed time may be from the message's Kafka timestamp, either way.
    public var window: Duration
    /// Between reads of the signing keys.
    public var refresh: Duration
}
