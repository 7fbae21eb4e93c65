import ArgumentParser
import Authorization
import Billing
import Foundation
import SiteKit
import Store

/// `matomete merchants staff …`: the people who log in to the merchants' site.
struct MerchantStaff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff",
        abstract: "A merchant's staff on the merchants' site: admins (also cancel, read the audit log) and viewers.",
        discussion: """
            Create the merchant's first admin here. Passwords are kept only as scrypt hashes; a second factor \
            (TOTP, any authenticator app) is optional. Every account is in the site's audit log from its first \
            login on.
            """,
        subcommands: [
            Add.self, List.self, Change<Disable>.self, Change<Enable>.self, Change<Unlock>.self,
            Change<ResetPassword>.self,
        ])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a login for a merchant's staff; prints the initial password once.",
            discussion: """
                Recorded in the merchant's audit log as staff_added, by the operator running the tool. \
                Exits 64 for a role other than admin or viewer, a login that is not e-mail-like or a short password; \
                65 when the login is taken or the merchant does not exist.
                """)
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var merchant: MerchantNaming
        @Option(help: "admin or viewer.") var role: String = "viewer"
        @OptionGroup var account: NewAccountOptions

        func run() async throws {
            try await StaffActions.add(
                site: .merchant, merchant: MerchantID(rawValue: try merchant.id()), role: role, account,
                database: database)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A merchant's staff, with their roles and locks.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @OptionGroup var merchant: MerchantNaming

        func run() async throws {
            try await StaffActions.list(
                site: .merchant, merchant: MerchantID(rawValue: try merchant.id()), database: database, output: output)
        }
    }
}

/// What `matomete merchants staff disable|enable|unlock|reset-password` does, one type each.
protocol StaffChangeKind {
    static var name: String { get }
    static var abstract: String { get }
    static var auditAction: String { get }
}

enum Disable: StaffChangeKind {
    static let name = "disable"
    static let abstract = "Stop an account's logins; its sessions end at once. Exits 1 when there is no such account."
    static let auditAction = "staff_disabled"
}

enum Enable: StaffChangeKind {
    static let name = "enable"
    static let abstract = "Let a disabled account log in again. Exits 1 when there is no such account."
    static let auditAction = "staff_enabled"
}

enum Unlock: StaffChangeKind {
    static let name = "unlock"
    static let abstract = "Lift the lock after failed logins. Exits 1 when there is no such account."
    static let auditAction = "staff_unlocked"
}

enum ResetPassword: StaffChangeKind {
    static let name = "reset-password"
    static let abstract =
        "Set a new password (printed once, or read with --password-stdin); its sessions end. Exits 1 when there is no such account."
    static let auditAction = "staff_password_reset"
}

/// One change to a merchant's staff account, recorded in the merchant's audit log by the operator running the tool.
struct Change<Kind: StaffChangeKind>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Kind.name, abstract: Kind.abstract,
            discussion: "Recorded in the merchant's audit log as \(Kind.auditAction), by the operator running the tool."
        )
    }
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var merchant: MerchantNaming
    @Option(help: "The account's login.") var login: String
    @Flag(help: "reset-password: read the new password from standard input instead of generating one.")
    var passwordStdin = false

    func run() async throws {
        try await StaffActions.change(
            Kind.self, site: .merchant, merchant: MerchantID(rawValue: try merchant.id()), login: login.lowercased(),
            passwordStdin: passwordStdin, database: database)
    }
}

/// `matomete support staff …`: the support centre's agents and supervisors on the support desk.
struct SupportStaff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "staff",
        abstract:
            "The support desk's accounts: agents (find lines, act with a reason) and supervisors (also the audit log).",
        discussion: """
            Accounts of the support desk only: a merchants' site account cannot log in there, nor one of these \
            on the merchants' site. Passwords are kept only as scrypt hashes; a second factor (TOTP) is optional. \
            Every change is recorded in the desk's audit log, by the operator running the tool.
            """,
        subcommands: [
            Add.self, List.self, SupportChange<Disable>.self, SupportChange<Enable>.self, SupportChange<Unlock>.self,
            SupportChange<ResetPassword>.self,
        ])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a login for the support desk; prints the initial password once.",
            discussion: """
                Recorded in the desk's audit log as staff_added. Exits 64 for a role other than agent or \
                supervisor, a login that is not e-mail-like or a short password; 65 when the login is taken.
                """)
        @OptionGroup var database: DatabaseOptions
        @Option(help: "agent or supervisor.") var role: String = "agent"
        @OptionGroup var account: NewAccountOptions

        func run() async throws {
            try await StaffActions.add(site: .support, merchant: nil, role: role, account, database: database)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The support desk's accounts, with roles and locks.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await StaffActions.list(site: .support, merchant: nil, database: database, output: output)
        }
    }
}

/// One change to a support desk account, recorded in the desk's audit log by the operator running the tool.
struct SupportChange<Kind: StaffChangeKind>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Kind.name, abstract: Kind.abstract,
            discussion: "Recorded in the desk's audit log as \(Kind.auditAction), by the operator running the tool.")
    }
    @OptionGroup var database: DatabaseOptions
    @Option(help: "The account's login.") var login: String
    @Flag(help: "reset-password: read the new password from standard input instead of generating one.")
    var passwordStdin = false

    func run() async throws {
        try await StaffActions.change(
            Kind.self, site: .support, merchant: nil, login: login.lowercased(), passwordStdin: passwordStdin,
            database: database)
    }
}

/// What a new account of either site is given.
struct NewAccountOptions: ParsableArguments {
    @Option(help: "The login, e-mail-like (name@domain); kept in lower case.") var login: String
    @Option(help: "The name shown on pages (default: the login).") var name: String?
    @Flag(help: "Read the initial password from standard input instead of generating one.") var passwordStdin = false
    @Flag(help: "Require a TOTP code at login; prints the secret and its otpauth:// address once.") var totp = false
}

/// The tool's changes to staff accounts of either site.
enum StaffActions {
    /// Adds an account of `site` and prints its login, role and, once, its password and TOTP secret.
    static func add(
        site: StaffSite, merchant: MerchantID?, role: String, _ options: NewAccountOptions, database: DatabaseOptions
    ) async throws {
        let (name, passwordStdin, totp) = (options.name, options.passwordStdin, options.totp)
        let roles = StaffRole.allCases.filter { $0.site == site }.map(\.rawValue)
        guard let role = StaffRole(rawValue: role), role.site == site else {
            throw ValidationError("The role is \(roles.joined(separator: " or ")).")
        }
        let login = options.login.lowercased()
        guard StaffAccount.isValidLogin(login) else {
            throw ValidationError("A login is e-mail-like: name@domain (letters, digits, . _ % + -).")
        }
        let password = passwordStdin ? try readPassword() : StaffCredentials.generatePassword()
        guard password.count >= 10 else { throw ValidationError("A password has at least 10 characters.") }
        let account = try await StaffCredentials.account(
            site: site, login: login, merchant: merchant, role: role, displayName: name ?? login, password: password,
            secondFactor: totp)
        try await Exit.mapping {
            try await database.withStore { try await $0.addStaff(account, addedBy: StaffActions.operatorName) }
        }
        say(
            "login     \(login)" + (merchant.map { "\nmerchant  \($0.rawValue)" } ?? "")
                + "\nrole      \(role.rawValue)")
        if !passwordStdin { say("password  \(password)   (shown once)") }
        if let secret = account.totpSecret {
            say(
                "totp      \(TOTP.base32(secret))\n          "
                    + TOTP.provisioningURI(secret: secret, account: login, issuer: "Matomete"))
        }
    }

    struct Row: Encodable {
        var login: String
        var role: String
        var name: String
        var secondFactor: Bool
        var active: Bool
        var lockedUntil: Date?
    }

    /// Prints the accounts of `site` (of `merchant` on the merchants' site).
    static func list(
        site: StaffSite, merchant: MerchantID?, database: DatabaseOptions, output: OutputOptions
    )
        async throws
    {
        let accounts = try await Exit.mapping {
            try await database.withStore { try await $0.staffAccounts(site: site, merchant: merchant) }
        }
        let rows = accounts.map {
            Row(
                login: $0.login, role: $0.role.rawValue, name: $0.displayName, secondFactor: $0.totpSecret != nil,
                active: $0.isActive, lockedUntil: $0.lockedUntil.flatMap { $0 > Date() ? $0 : nil })
        }
        if output.json { return try output.print(rows) }
        if rows.isEmpty {
            return say("No accounts yet: matomete \(site == .merchant ? "merchants" : "support") staff add.")
        }
        for row in rows {
            say(
                "\(row.login)  \(row.role)  \(row.name)\(row.secondFactor ? "  (TOTP)" : "")"
                    + (row.active ? "" : "  disabled")
                    + (row.lockedUntil.map { "  locked until \(SiteFormat.time($0))" } ?? ""))
        }
    }

    /// Who the audit log names for what the tool does.
    static var operatorName: String { "operator \(ProcessInfo.processInfo.userName)" }

    static func change<Kind: StaffChangeKind>(
        _ kind: Kind.Type, site: StaffSite, merchant: MerchantID?, login: String, passwordStdin: Bool,
        database: DatabaseOptions
    ) async throws {
        var password: String?
        let change: StaffChange
        switch kind {
        case is Disable.Type: change = .disable
        case is Enable.Type: change = .enable
        case is Unlock.Type: change = .unlock
        default:
            let new = passwordStdin ? try readPassword() : StaffCredentials.generatePassword()
            guard new.count >= 10 else { throw ValidationError("A password has at least 10 characters.") }
            change = try await StaffCredentials.passwordChange(new)
            password = passwordStdin ? nil : new
        }
        let entry = AuditEntry(
            site: site, merchantID: merchant, staffLogin: operatorName, action: Kind.auditAction, subject: login)
        let changed = try await Exit.mapping {
            try await database.withStore {
                try await $0.changeStaff(site: site, merchant: merchant, login: login, change, recordedAs: entry)
            }
        }
        guard changed else {
            Exit.complain("No account \(login) on the \(site) site\(merchant.map { " for \($0.rawValue)" } ?? "").")
            throw ExitCode.failure
        }
        say(
            "\(login): \(Kind.auditAction.replacingOccurrences(of: "staff_", with: "").replacingOccurrences(of: "_", with: " "))"
        )
        if let password { say("password  \(password)   (shown once)") }
    }
}
