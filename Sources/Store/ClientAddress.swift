/// Works out which address a request comes from (a purchase at the gateway, a person at a staff site).
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

    /// The prefixes of a `--trusted-proxies` setting: comma-separated, such as `10.0.0.0/8,2001:db8::/32`;
    /// empty for none. Refused (``StoreError/Code/invalidInput``) naming the first that is not a prefix.
    public static func prefixes(_ text: String) throws(StoreError) -> [AddressPrefix] {
        var prefixes: [AddressPrefix] = []
        for part in text.split(separator: ",") {
            let trimmed = String(part).trimmingCharacters(in: .whitespaces)
            guard let prefix = AddressPrefix(trimmed) else {
                throw StoreError(.invalidInput, "\(trimmed) is not an address prefix")
            }
            prefixes.append(prefix)
        }
        return prefixes
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
