import ClusterTrust
import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// The generated client of the control plane over HTTP/2 on POSIX sockets.
public typealias ClusterControlClient = Pangalactic_Control_V1_ClusterControl.Client<HTTP2ClientTransport.Posix>

/// A long-lived connection to the hub's control plane. gRPC connects lazily and reconnects in the
/// background (within a second: a restarted hub is found again quickly), so one connection serves
/// a node or a driver for its whole life.
public final class HubConnection: Sendable {
    public let host: String
    public let port: Int
    /// The generated stub; every RPC of `ClusterControl` goes through it.
    public let control: ClusterControlClient
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let runner: Task<Void, Never>

    /// Connects to the hub at `host:port`: HTTP/2 over mutual TLS with the member's credentials
    /// (the hub's certificate must chain to the cluster's authority), or plaintext on loopback.
    public init(host: String, port: Int, security: TransportSecurity = .insecure) throws {
        try security.requireAllowed(host: host)
        self.host = host
        self.port = port
        // No keepalive pings: gRPC servers answer frequent pings with GOAWAY (too many pings),
        // which would break every node's heartbeat stream. Liveness is the heartbeats' job.
        let config = HTTP2ClientTransport.Posix.Config.defaults { config in
            config.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
        }
        let transport = try HTTP2ClientTransport.Posix(target: Self.target(host: host, port: port),
                                                       transportSecurity: Self.clientSecurity(security), config: config)
        let client = GRPCClient(transport: transport)
        self.client = client
        runner = Task { try? await client.runConnections() }
        control = ClusterControlClient(wrapping: client)
    }

    /// Connects to `HOST:PORT`.
    public convenience init(address: String, security: TransportSecurity = .insecure) throws {
        guard let (host, port) = ControlAddress.parse(address) else {
            throw RPCError(code: .invalidArgument, message: "hub address must be HOST:PORT, got \(address)")
        }
        try self.init(host: host, port: port, security: security)
    }

    /// The gRPC target for `host`. An IP literal is given as such: through DNS it would become
    /// the TLS server name (SNI), which may not be an address.
    static func target(host: String, port: Int) -> any ResolvableTarget {
        if IPv4Address.parse(host) { return .ipv4(address: host, port: port) }
        if host.contains(":") { return .ipv6(address: host, port: port) }
        return .dns(host: host, port: port)
    }

    /// The gRPC client side of `security`: this member's certificate, trusting only the cluster's
    /// authority, with no host name check (members are known by chain and role, not address).
    static func clientSecurity(_ security: TransportSecurity) -> HTTP2ClientTransport.Posix.TransportSecurity {
        guard let credentials = security.credentials else { return .plaintext }
        return .tls(.mTLS(certificateChain: credentials.grpcCertificateChain, privateKey: credentials.grpcPrivateKey) { config in
            config.trustRoots = credentials.grpcTrustRoots
            config.serverCertificateVerification = .noHostnameVerification
        })
    }

    /// The gRPC server side of `security` (the hub): clients must present a certificate that
    /// chains to the cluster's authority.
    public static func serverSecurity(_ security: TransportSecurity) -> HTTP2ServerTransport.Posix.TransportSecurity {
        guard let credentials = security.credentials else { return .plaintext }
        return .mTLS(certificateChain: credentials.grpcCertificateChain, privateKey: credentials.grpcPrivateKey) { config in
            config.trustRoots = credentials.grpcTrustRoots
            config.clientCertificateVerification = .noHostnameVerification
        }
    }

    /// Stops the connection; RPCs in flight may finish.
    public func close() {
        client.beginGracefulShutdown()
    }

    /// Call options with a deadline, for the unary calls (a hub that does not answer must not
    /// hang its caller).
    public static func deadline(seconds: Double) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = .milliseconds(Int64(seconds * 1000))
        return options
    }
}

/// Whether text is a dotted IPv4 address.
private enum IPv4Address {
    static func parse(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && UInt8($0) != nil }
    }
}

/// `HOST:PORT` parsing shared by the hub, nodes and drivers (IPv6 hosts in brackets).
public enum ControlAddress {
    public static func parse(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0 ... 65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    public static func format(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

extension HubConnection {
    /// The model's metadata from `GetModelInfo` (a GGUF without tensors), checked for order and
    /// size as the chunks arrive.
    public func modelInfo(maxBytes: Int = 256 << 20) async throws -> (bytes: [UInt8], digest: [UInt8]) {
        try await control.getModelInfo(.init(), options: HubConnection.deadline(seconds: 60)) { response in
            var bytes: [UInt8] = []
            var digest: [UInt8] = []
            var total = 0
            for try await chunk in response.messages {
                if bytes.isEmpty {
                    guard chunk.totalBytes > 0, chunk.totalBytes <= UInt64(maxBytes) else {
                        throw RPCError(code: .outOfRange, message: "model info of \(chunk.totalBytes) bytes (cap \(maxBytes))")
                    }
                    total = Int(chunk.totalBytes)
                    digest = Array(chunk.modelDigest)
                    bytes.reserveCapacity(total)
                }
                guard chunk.offset == UInt64(bytes.count), chunk.totalBytes == UInt64(total), bytes.count + chunk.data.count <= total else {
                    throw RPCError(code: .dataLoss, message: "model info chunks out of order")
                }
                bytes.append(contentsOf: chunk.data)
            }
            guard bytes.count == total, total > 0 else { throw RPCError(code: .dataLoss, message: "model info ended early") }
            return (bytes, digest)
        }
    }
}

extension MemberCredentials {
    /// The member's certificate, key and trust root as the gRPC transport takes them.
    package var grpcCertificateChain: [TLSConfig.CertificateSource] { [.bytes(Array(certificatePEM.utf8), format: .pem)] }
    package var grpcPrivateKey: TLSConfig.PrivateKeySource { .bytes(Array(privateKeyPEM.utf8), format: .pem) }
    package var grpcTrustRoots: TLSConfig.TrustRootsSource { .certificates([.bytes(Array(authorityPEM.utf8), format: .pem)]) }
}
