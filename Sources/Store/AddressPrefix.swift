#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IPv4 or IPv6 prefix such as `10.0.0.0/8` or `2001:db8::/32`.
public struct AddressPrefix: Sendable, Hashable, CustomStringConvertible {
    let bytes: [UInt8]
    let length: Int

    /// Reads `address/length`, or a bare address as a prefix of its full length; `nil` when either part
    /// is garbled (the length is decimal digits only) or the length is too long.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let address = Self.parse(parts[0]) else { return nil }
        let maximum = address.count * 8
        if parts.count == 2 {
            guard (1...3).contains(parts[1].utf8.count),
                parts[1].utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
            else { return nil }
        }
        guard let length = parts.count == 2 ? Int(parts[1]) : maximum, (0...maximum).contains(length) else {
            return nil
        }
        bytes = address
        self.length = length
    }

    /// The prefix in a normal form: IPv4 dotted, IPv6 as eight hexadecimal groups, for example `10.0.0.0/8`.
    public var description: String { "\(Self.format(bytes))/\(length)" }

    /// Whether `address` (no prefix length) lies inside this prefix.
    public func contains(_ address: String) -> Bool {
        guard let other = Self.parse(address), other.count == bytes.count else { return false }
        var remaining = length
        for (a, b) in zip(bytes, other) where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if a & mask != b & mask { return false }
            remaining -= bits
        }
        return true
    }

    /// Whether it is an IPv4 prefix (an IPv6 one otherwise).
    public var isIPv4: Bool { bytes.count == 4 }

    /// The number of leading bits that are fixed: 32 (IPv4) or 128 (IPv6) for one address.
    public var prefixLength: Int { length }

    /// The 4 or 16 bytes of an address; IPv4-mapped IPv6 addresses become IPv4.
    public static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return Array(bytes[12...])
        }
        return bytes
    }

    /// An address's 4 or 16 bytes as text: IPv4 dotted, IPv6 as eight hexadecimal groups.
    public static func format(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}
