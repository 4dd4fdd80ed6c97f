import ArgumentParser
import ClusterTrust
#if canImport(Glibc)
import Glibc
#endif
import ControlPlane
import Foundation
import Gateway
import Logging

/// Options the gateway shares between `pangalactic gateway` and `pangalactic serve`.
struct GatewayOptions: ParsableArguments {
    @Option(help: "Address the HTTP API listens on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port of the HTTP API.")
    var port: Int = 8080

    @Option(name: .customLong("api-key"), help: "Require this API key (Authorization: Bearer KEY); repeat for several. Also $PANGALACTIC_API_KEYS, comma-separated.")
    var apiKeys: [String] = []

    @Option(name: .customLong("max-body"), help: "Largest request body (suffixes K, M, G).")
    var maxBody: String = "4M"

    @Option(name: .customLong("max-queue"), help: "Requests that may wait for a free sequence before new ones get a 429.")
    var maxQueue: Int = 64

    @Option(name: .customLong("model-id"), help: "The model's name in the API (default: from the GGUF's general.name).")
    var modelID: String?

    func configuration(maxInFlight: Int) throws -> GatewayConfiguration {
        guard (0 ... 65535).contains(port) else { throw ValidationError("--port takes 0...65535") }
        guard let body = parseByteCount(maxBody), body >= 1024, body <= 1 << 30 else { throw ValidationError("--max-body takes 1K...1G") }
        guard (0 ... 1 << 20).contains(maxQueue) else { throw ValidationError("--max-queue takes 0...1048576") }
        var c = GatewayConfiguration()
        c.host = host
        c.port = port
        c.apiKeys = apiKeys + (ProcessEnvironment.value("PANGALACTIC_API_KEYS")?.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty } ?? [])
        c.maxBodyBytes = body
        c.maxQueued = maxQueue
        c.maxInFlight = max(1, maxInFlight)
        return c
    }
}

/// `pangalactic gateway --hub HOST:PORT`: the OpenAI API over an existing cluster.
struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "Serve the OpenAI-compatible HTTP API over the hub's cluster.")

    @Option(help: "The hub, HOST:PORT.")
    var hub: String = "127.0.0.1:7000"

    @OptionGroup var options: GatewayOptions

    @Option(name: .customLong("cluster-token"), help: "The cluster token (default: $PANGALACTIC_CLUSTER_TOKEN).")
    var clusterToken: String?

    @OptionGroup var trust: SecurityOptions

    func run() throws {
        LogSetup.bootstrap()
        let logger = Logger(label: "pangalactic.gateway")
        let security = try trust.security(roles: [.gateway], enroll: (.gateway, "gateway-\(options.port)", hub))
        let backend = try HubBackend(hub: hub, clusterToken: ProcessEnvironment.clusterToken(clusterToken), security: security,
                                     modelID: options.modelID, logger: logger)
        // As many sequences at once as each node keeps caches for.
        let connection = try HubConnection(address: hub, security: security)
        let slots = (try? runBlocking { try await connection.control.getRoutePlan(.init(), options: HubConnection.deadline(seconds: 5)) })
            .map { Int($0.maxSequences) } ?? 8
        connection.close()
        let gateway = Gateway(configuration: try options.configuration(maxInFlight: slots), backend: backend, logger: logger)
        let watcher = SignalWatcher([SIGTERM, SIGINT]) { _ in Glibc.exit(0) }
        _ = watcher
        let host = options.host
        try runBlocking {
            try await gateway.run { port in Console.error("gateway: OpenAI API on http://\(host):\(port)/v1 (hub \(hub))") }
        }
    }
}
