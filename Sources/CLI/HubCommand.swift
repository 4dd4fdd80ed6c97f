import ArgumentParser
import ClusterTrust
#if canImport(Glibc)
import Glibc
#endif
import ControlPlane
import Foundation
import Hub
import Logging
import ModelStore

/// `pangalactic hub`: the control plane. Nodes join it, it places the model over them, hands
/// out route plans, and re-plans when a node dies, drains or joins.
struct HubCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hub",
        abstract: "Run the control plane: node registry, placement, failover and route plans (gRPC).",
        discussion: """
            Start the hub, then nodes that join it:
              pangalactic init --dir cluster
              pangalactic hub --listen 0.0.0.0:7000 --state hub.state --tls-dir cluster/hub
              pangalactic issue --dir cluster --role node --name n1 --out n1
              pangalactic node --join HUB:7000 --listen 0.0.0.0:7101 -m M --tls-dir n1
              pangalactic status --hub HUB:7000 --tls-dir n1
            On one machine, --insecure (plain TCP, loopback addresses only) replaces the credentials.
            """)

    @Option(help: "Address of the control plane, HOST:PORT.")
    var listen: String = "127.0.0.1:7000"

    @Option(help: "Context positions per sequence: each node reserves KV memory for them.")
    var ctx: Int = 2048

    @Option(name: .customLong("max-sequences"), help: "Sequences each node serves at once (with --ctx, the KV reserve).")
    var maxSequences: Int = 8

    @Option(help: "Snapshot file: the registry, plan and epoch survive a hub restart (written atomically on every change).")
    var state: String?

    @Option(help: "Wire format of hidden states: f32 (exact, so failover replays give identical text), f16 or q8.")
    var wire: String = "f32"

    @Option(help: "Fixed bytes per node for scratch buffers and the process (suffixes K, M, G).")
    var overhead: String = "64M"

    @Option(name: .customLong("cluster-token"), help: "Shared secret every node presents (default: $PANGALACTIC_CLUSTER_TOKEN).")
    var clusterToken: String?
    @Option(help: "A model store (http://STORE, or http://STORE/v1/store/models/ID): nodes that join without a model pull their layers from it.")
    var store: String?
    @Option(name: .customLong("store-model"), help: "The model of --store, when the store holds several.")
    var storeModel: String?
    @OptionGroup var trust: SecurityOptions

    @Option(help: "The cluster authority's folder (from `pangalactic init`): the hub then takes enrollments with join tokens, and its credentials default to DIR/hub.")
    var authority: String?

    @Option(name: .customLong("enroll-listen"), help: "Address of the enrollment port, HOST:PORT (default: --listen's host, port + 1).")
    var enrollListen: String?

    @Option(name: .customLong("token-ttl"), help: "Lifetime of the join token the hub prints at start (e.g. 30m, 24h, 7d; 0 prints none).")
    var tokenTTL: String = "24h"

    func run() throws {
        LogSetup.bootstrap()
        guard let (host, port) = ControlAddress.parse(listen) else { throw ValidationError("--listen takes HOST:PORT") }
        guard (16 ... 1 << 20).contains(ctx), (1 ... 4096).contains(maxSequences) else {
            throw ValidationError("--ctx 16...1048576, --max-sequences 1...4096")
        }
        var trust = self.trust
        if let authority, trust.tlsDirectory == nil, !trust.insecure { trust.tlsDirectory = authority + "/hub" }
        let security = try trust.security(roles: [.hub])
        var enrollment: HubServer.EnrollmentEndpoint?
        var token: (JoinToken, Date)?
        if let authority {
            guard !security.isInsecure else { throw ValidationError("--authority needs TLS: it cannot go with --insecure") }
            guard let (enrollHost, enrollPort) = enrollListen.map(ControlAddress.parse) ?? (host, port == 0 ? 0 : port + 1) else {
                throw ValidationError("--enroll-listen takes HOST:PORT")
            }
            let ca = try ClusterAuthority.load(from: authority)
            enrollment = HubServer.EnrollmentEndpoint(host: enrollHost, port: enrollPort, authority: EnrollmentAuthority(authority: ca, directory: authority))
            guard let lifetime = parseDuration(tokenTTL), lifetime >= 0 else { throw ValidationError("--token-ttl takes e.g. 30m, 24h or 7d") }
            if lifetime > 0 { token = try JoinTokenFile.create(in: authority, authority: ca, lifetime: lifetime) }
        }
        guard let overheadBytes = parseByteCount(overhead) else { throw ValidationError("--overhead takes bytes, e.g. 64M") }
        var settings = HubSettings()
        settings.contextLength = ctx
        settings.maxSequences = maxSequences
        settings.overheadBytes = overheadBytes
        settings.clusterToken = ProcessEnvironment.clusterToken(clusterToken)
        switch wire.lowercased() {
        case "f32": settings.wire = .wireF32
        case "f16": settings.wire = .wireF16
        case "q8", "q8_0": settings.wire = .wireQ8
        default: throw ValidationError("--wire takes f32, f16 or q8")
        }
        if let address = store {
            let (source, digest, metadata) = try runBlocking { try await Self.storeModel(address, model: storeModel) }
            settings.modelSource = source
            settings.storeModel = (digest, metadata)
            Console.error("hub: model store \(source)")
        }
        let snapshots: ClusterStore = state.map { SnapshotFileStore(path: $0) } ?? MemoryClusterStore()
        let server = try HubServer(settings: settings, store: snapshots, logger: Logger(label: "pangalactic.hub"))
        if settings.clusterToken.isEmpty, security.isInsecure {
            Console.error("hub: warning: plain TCP and no cluster token; any local process that reaches this port may join")
        }
        let watcher = SignalWatcher([SIGTERM, SIGINT]) { _ in Glibc.exit(0) }
        _ = watcher
        let (enrollmentEndpoint, joinToken) = (enrollment, token)
        try runBlocking {
            try await server.run(host: host, port: port, security: security, enrollment: enrollmentEndpoint) { bound in
                Console.error("hub: listening on \(ControlAddress.format(host: host, port: bound)); ctx \(ctx) × \(maxSequences) sequences per node" +
                    (state.map { ", state in \($0)" } ?? ", state in memory only") + (security.isInsecure ? "; plain TCP" : "; mutual TLS"))
            } onEnrollmentListening: { bound in
                Console.error("hub: enrollment on \(ControlAddress.format(host: enrollmentEndpoint?.host ?? host, port: bound))")
                if let (token, expires) = joinToken {
                    Console.error("hub: join token (valid until \(expires)): \(token)")
                    Console.error("hub: pangalactic node --join HUB:\(port) --listen HOST:PORT --token \(token)")
                }
            }
        }
    }
}

extension HubCommand {
    /// The store's model as the hub needs it: its URL, digest and metadata-only GGUF.
    static func storeModel(_ address: String, model: String?) async throws -> (String, [UInt8], [UInt8]) {
        let url = try await StoreModelSource.resolve(address, model: model)
        let (index, header) = try await StoreModelSource.describe(url)
        guard let digest = index.modelDigestBytes, digest.count == 32 else { throw StoreError.badIndex("bad model digest") }
        return (url, digest, header.metadataOnlyBytes())
    }
}

/// `pangalactic status --hub HOST:PORT [--json]`: the cluster as the hub sees it.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Print the cluster: nodes, their layers, memory and load; the model and the plan.")

    @Option(help: "The hub, HOST:PORT.")
    var hub: String = "127.0.0.1:7000"

    @Flag(help: "Print one JSON object.")
    var json = false

    @OptionGroup var trust: SecurityOptions

    func run() throws {
        let connection = try HubConnection(address: hub, security: try trust.security(roles: Set(ClusterRole.allCases)))
        defer { connection.close() }
        let status = try runBlocking { try await connection.control.clusterStatus(.init(), options: HubConnection.deadline(seconds: 5)) }
        if json {
            let data = try JSONSerialization.data(withJSONObject: StatusReport.json(status), options: [.sortedKeys])
            Console.write(String(decoding: data, as: UTF8.self) + "\n")
        } else {
            Console.write(StatusReport.text(status))
        }
    }
}

/// The two forms of `status`.
enum StatusReport {
    static func json(_ s: Pangalactic_Control_V1_ClusterStatusReply) -> [String: Any] {
        let nodes: [[String: Any]] = s.nodes.map { n in
            [
                "id": n.nodeID, "name": n.name, "address": n.address, "state": n.state,
                "layers": n.hasLayers_p ? [Int(n.firstLayer), Int(n.endLayer)] as Any : NSNull(),
                "memory_bytes": Int(n.memoryBytes), "budget_bytes": Int(n.budgetBytes),
                "active": Int(n.load.activeSequences), "waiting": Int(n.load.waitingSequences),
                "kv_bytes": Int(n.load.kvBytes), "tokens_per_second": n.load.tokensPerSecond, "hop_p50_ms": n.load.hopP50Ms,
                "resident_bytes": Int(n.load.residentBytes), "heartbeat_age_seconds": n.heartbeatAgeSeconds,
                "speed_bytes_per_second": n.speedBytesPerSecond, "version": n.version, "epoch": Int(n.servingEpoch),
            ]
        }
        let plan = s.plan
        return [
            "nodes": nodes,
            "model": s.hasModel ? [
                "name": s.model.name, "architecture": s.model.architecture, "layers": Int(s.model.layerCount),
                "digest": s.model.digest.map { String(format: "%02x", $0) }.joined(), "file_bytes": Int(s.model.fileBytes),
            ] as Any : NSNull(),
            "epoch": Int(plan.epoch), "ready": plan.ready, "problem": plan.problem.isEmpty ? NSNull() : plan.problem as Any,
            "plan": plan.stages.map { ["address": $0.address, "name": $0.name, "layers": [Int($0.firstLayer), Int($0.endLayer)]] },
            "predicted_step_ms": s.predictedStepMs, "context_length": Int(s.contextLength), "max_sequences": Int(s.maxSequences),
            "wire": wireName(s.wire),
        ]
    }

    static func wireName(_ w: Pangalactic_Control_V1_WireDType) -> String {
        switch w {
        case .wireF16: "f16"
        case .wireQ8: "q8"
        default: "f32"
        }
    }

    static func text(_ s: Pangalactic_Control_V1_ClusterStatusReply) -> String {
        var out = ""
        let plan = s.plan
        if s.hasModel {
            out += "model: \(s.model.name) (\(s.model.architecture), \(s.model.layerCount) layers, \(s.model.fileBytes >> 20) MiB)\n"
        } else {
            out += "model: none yet\n"
        }
        out += "epoch \(plan.epoch): " + (plan.problem.isEmpty ? (plan.ready ? "ready" : "starting") : plan.problem) + "\n"
        if !plan.stages.isEmpty {
            out += "plan: " + plan.stages.map { "\($0.name) [\($0.firstLayer)..<\($0.endLayer)]" }.joined(separator: " → ") +
                " → back; predicted \(fmt(s.predictedStepMs, 2)) ms per step; ctx \(s.contextLength) × \(s.maxSequences), wire \(wireName(s.wire))\n"
        }
        out += "\n"
        let header = ["NAME", "ADDRESS", "STATE", "LAYERS", "MEMORY (MiB)", "ACTIVE", "WAITING", "TOK/S", "HOP ms", "HEARTBEAT"]
        var rows = [header]
        for n in s.nodes {
            rows.append([
                n.name, n.address, n.state, n.hasLayers_p ? "\(n.firstLayer)..<\(n.endLayer)" : "-",
                "\(n.memoryBytes >> 20)/\(n.budgetBytes >> 20)", "\(n.load.activeSequences)", "\(n.load.waitingSequences)",
                fmt(n.load.tokensPerSecond, 1), fmt(n.load.hopP50Ms, 3), "\(fmt(n.heartbeatAgeSeconds, 1)) s ago",
            ])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            out += row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") + "\n"
        }
        return out
    }
}
