/// Checks a peer's HELLO against ours: protocol version, cluster token (compared in constant
/// time), model digest and role. Returns why it is refused, or nil.
public enum HelloPolicy {
    public static func check(_ peer: Hello, against ours: Hello, role: StarStreamRole?) -> String? {
        guard peer.protocolVersion >= 1 else { return "protocol version \(peer.protocolVersion)" }
        guard constantTimeEqual(Array(peer.clusterToken.utf8), Array(ours.clusterToken.utf8)) else { return "wrong cluster token" }
        guard peer.modelDigest == ours.modelDigest else { return "different model (digest mismatch)" }
        if let role, peer.role != role { return "unexpected role \(peer.role)" }
        return nil
    }

    /// Equal-length comparison whose time does not depend on where the bytes differ.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        let n = max(a.count, b.count)
        for i in 0 ..< n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}
