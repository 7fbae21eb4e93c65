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
    /// is garbled or the length is too long.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let address = Self.parse(parts[0]) else { return nil }
        let maximum = address.count * 8
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

    /// The 4 or 16 bytes of an address; IPv4-mapped IPv6 addresses become IPv4.
    static func parse(_ text: String) -> [UInt8]? {
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

    static func format(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}

/// Works out which address a purchase request comes from.
///
/// The address is the connection's peer, unless the peer is one of the
/// configured trusted proxies: then it is the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy. A header sent by
/// anyone else is ignored: a client cannot claim another line's address.
public struct ClientAddressResolver: Sendable {
    /// The carrier's proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
    public var trustedProxies: [AddressPrefix]

    /// A resolver believing the `X-Forwarded-For` of `trustedProxies` only.
    public init(trustedProxies: [AddressPrefix]) {
        self.trustedProxies = trustedProxies
    }

    /// The address a request comes from, given the connection's peer and its `X-Forwarded-For` header;
    /// `nil` when the peer is unknown or a trusted proxy's header is garbled.
    public func clientAddress(peer: String?, forwardedFor: String?) -> String? {
        guard let peer, let peerBytes = AddressPrefix.parse(peer) else { return nil }
        let normalizedPeer = AddressPrefix.format(peerBytes)
        guard isTrusted(normalizedPeer), let forwardedFor else { return normalizedPeer }
        let hops = forwardedFor.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard let bytes = AddressPrefix.parse(hop) else { return nil }  // garbled: trust nothing
            let address = AddressPrefix.format(bytes)
            if !isTrusted(address) { return address }
        }
        return normalizedPeer
    }

    private func isTrusted(_ address: String) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

extension Set where Element == Character {
    fileprivate static let whitespaces: Set<Character> = [" ", "\t"]
}
