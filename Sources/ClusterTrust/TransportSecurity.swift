import NIOCore
import NIOSSL
import NIOTLS
import X509

/// How a member talks on either plane: mutual TLS with its cluster credentials, or plain TCP,
/// which is allowed on loopback addresses only (a single machine's test or development cluster).
public struct TransportSecurity: Sendable {
    /// The member's credentials; nil means plain TCP.
    public let credentials: MemberCredentials?

    /// Plain TCP: refused by `requireAllowed` for any address that is not loopback.
    public static let insecure = TransportSecurity(credentials: nil)

    /// Mutual TLS: every connection presents `credentials` and accepts only peers whose
    /// certificates chain to the same authority.
    public static func mutualTLS(_ credentials: MemberCredentials) -> TransportSecurity {
        TransportSecurity(credentials: credentials)
    }

    public var isInsecure: Bool { credentials == nil }

    /// Throws unless this security may be used with `host`: TLS anywhere, plain TCP on loopback.
    public func requireAllowed(host: String) throws(TrustError) {
        if isInsecure, !Self.isLoopback(host) { throw .insecureNotLoopback(host) }
    }

    /// Whether `host` names this machine's loopback interface (127.0.0.0/8, ::1, localhost).
    public static func isLoopback(_ host: String) -> Bool {
        var h = host.lowercased()
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { UInt8($0) != nil }
    }

    /// Which side of the TLS handshake a connection is.
    public enum Side: Sendable { case server, client }

    /// Puts TLS at the front of a StarStream connection's pipeline (nothing for plain TCP), with a
    /// check after the handshake that the peer's certificate names one of `accepting` roles.
    /// Returns the check, whose `peer` tells the handlers behind it who is on the other end.
    public func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, side: Side, accepting: Set<ClusterRole>,
                            onRefused: @escaping @Sendable (String) -> Void) throws -> PeerCertificateCheck? {
        guard let credentials else { return nil }
        switch side {
        case .server: try pipeline.addHandler(NIOSSLServerHandler(context: credentials.serverContext))
        case .client: try pipeline.addHandler(try NIOSSLClientHandler(context: credentials.clientContext, serverHostname: nil))
        }
        let check = PeerCertificateCheck(accepting: accepting, onRefused: onRefused)
        try pipeline.addHandler(check)
        return check
    }
}

/// Sits right behind the TLS handler. When the handshake completes (so the peer's chain to the
/// cluster's authority is already verified), it reads the role from the peer's certificate and
/// closes the connection unless the role is one this end accepts. Nothing the peer sends passes
/// before that check.
public final class PeerCertificateCheck: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private let accepting: Set<ClusterRole>
    private let onRefused: @Sendable (String) -> Void
    /// The verified peer's name and role, once the handshake is done (event loop only).
    public private(set) var peer: (name: String, role: ClusterRole)?
    private var refused = false

    init(accepting: Set<ClusterRole>, onRefused: @escaping @Sendable (String) -> Void) {
        self.accepting = accepting
        self.onRefused = onRefused
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            let member: (name: String, role: ClusterRole)?
            do {
                member = try context.pipeline.syncOperations.nioSSL_peerCertificate()
                    .flatMap { try Certificate(derEncoded: $0.toDERBytes()).clusterMember }
            } catch {
                member = nil
            }
            if let member, accepting.contains(member.role) {
                peer = member
            } else {
                refused = true
                let roles = accepting.map(\.rawValue).sorted().joined(separator: " or ")
                onRefused(member.map { "its certificate is for \($0.role.rawValue) \($0.name), not a \(roles)" } ?? "its certificate names no cluster role")
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard peer != nil, !refused else { return }
        context.fireChannelRead(data)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Only a failure before the peer was verified is a refusal; a TLS error after that (an
        // unclean shutdown of a connection refused for its HELLO) is not a second one.
        if !refused, peer == nil, error is NIOSSLError || error is BoringSSLError {
            refused = true
            onRefused("TLS handshake failed: \(error)")
        }
        context.fireErrorCaught(error)
    }
}
