import ClusterTrust
import ControlPlane
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging

/// The hub process: the control plane's gRPC server plus the liveness check that marks nodes
/// dead when their heartbeats stop.
public final class HubServer: Sendable {
    public let core: HubCore
    private let logger: Logger

    public init(settings: HubSettings, store: ClusterStore, logger: Logger) throws {
        core = try HubCore(settings: settings, store: store, logger: logger)
        self.logger = logger
    }

    /// Call before cancelling `run`: the heartbeat streams that close from then on are the hub's
    /// own doing, not node deaths, and the snapshot keeps the cluster as it is. (Cancelling a task
    /// cancels its children before its own cancellation handler runs, so `run` cannot do this
    /// itself in time.)
    public func prepareToStop() {
        core.beginShutdown()
    }

    /// Where and how the hub lets new members join: the enrollment port (TLS with the hub's
    /// certificate, no client certificate) and the authority that signs their requests.
    public struct EnrollmentEndpoint: Sendable {
        public var host: String
        public var port: Int
        public var authority: EnrollmentAuthority

        public init(host: String, port: Int, authority: EnrollmentAuthority) {
            self.host = host
            self.port = port
            self.authority = authority
        }
    }

    /// Serves on `host:port` (port 0 picks a free one) until the task is cancelled;
    /// `onListening` gets the bound port once the socket is open. Mutual TLS when `security` has
    /// credentials; plaintext only on a loopback address. With `enrollment`, a second listener
    /// takes join requests (it needs TLS credentials).
    public func run(host: String, port: Int, security: TransportSecurity = .insecure, enrollment: EnrollmentEndpoint? = nil,
                    onListening: @escaping @Sendable (Int) -> Void = { _ in },
                    onEnrollmentListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try security.requireAllowed(host: host)
        let transport = HTTP2ServerTransport.Posix(address: Self.address(host, port), transportSecurity: HubConnection.serverSecurity(security))
        let server = GRPCServer(transport: transport, services: [HubService(core: core, logger: logger, requiresCertificates: !security.isInsecure)])
        let enrollmentServer = try enrollment.map { enrollment -> (GRPCServer<HTTP2ServerTransport.Posix>, HTTP2ServerTransport.Posix) in
            guard let credentials = security.credentials else { throw TrustError.invalid("enrollment needs the hub's TLS credentials") }
            let transport = HTTP2ServerTransport.Posix(
                address: Self.address(enrollment.host, enrollment.port),
                transportSecurity: .tls(certificateChain: credentials.grpcCertificateChain, privateKey: credentials.grpcPrivateKey))
            return (GRPCServer(transport: transport, services: [EnrollmentService(authority: enrollment.authority, logger: logger)]), transport)
        }
        let core = self.core
        let interval = core.settings.heartbeatIntervalSeconds
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                if let (enrollmentServer, enrollmentTransport) = enrollmentServer {
                    group.addTask { try await enrollmentServer.serve() }
                    group.addTask {
                        let bound = try await enrollmentTransport.listeningAddress
                        onEnrollmentListening(bound.ipv4?.port ?? bound.ipv6?.port ?? 0)
                    }
                }
                group.addTask {
                    let bound = try await transport.listeningAddress
                    onListening(bound.ipv4?.port ?? bound.ipv6?.port ?? port)
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(Int64(interval * 250)))
                        core.checkLiveness()
                    }
                }
            }
        } onCancel: {
            core.beginShutdown()
            server.beginGracefulShutdown()
            enrollmentServer?.0.beginGracefulShutdown()
        }
    }

    private static func address(_ host: String, _ port: Int) -> GRPCNIOTransportCore.SocketAddress {
        host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
    }
}
