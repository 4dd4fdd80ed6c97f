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

    /// Serves on `host:port` (port 0 picks a free one) until the task is cancelled;
    /// `onListening` gets the bound port once the socket is open.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let address: GRPCNIOTransportCore.SocketAddress = host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
        let transport = HTTP2ServerTransport.Posix(address: address, transportSecurity: .plaintext)
        let server = GRPCServer(transport: transport, services: [HubService(core: core, logger: logger)])
        let core = self.core
        let interval = core.settings.heartbeatIntervalSeconds
        try await withTaskCancellationHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
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
        }
    }
}
