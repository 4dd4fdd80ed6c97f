import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import ClusterTrust
import ControlPlane
import Foundation
import Gateway
import GGUF
import Hub
import Logging
import ModelStore
import Node
import Synchronization

/// `pangalactic serve`: a whole cluster from one command. The hub and the gateway run in this
/// process; each node is a child process (so a node can die, or be killed in a test, like a
/// machine), started again when it exits. Ctrl-C stops everything, and a node whose parent dies
/// stops with it.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a local cluster (hub, nodes, OpenAI gateway) serving a model, from one command.",
        discussion: """
            By default each node gets a memory budget just large enough that the model spans all \
            --nodes of them, so the local cluster is a real pipeline; one more node of the same \
            budget stands by and takes over the layers of a node that dies.
            """)

    @Option(name: .shortAndLong, help: "GGUF model (default: models/SmolLM2-135M-Instruct.Q4_1.gguf, fetched if missing).")
    var model: String?

    @Option(help: "Serve a model from a store (http://STORE, or http://STORE/v1/store/models/ID) instead of a file: each node pulls only its layers.")
    var store: String?

    @Option(name: .customLong("store-model"), help: "The model of --store, when the store holds several.")
    var storeModel: String?

    @Option(name: .customLong("cache-dir"), help: "With --store: the folder under which each node keeps its tensor cache (default: ~/.cache/pangalactic/store).")
    var cacheDir: String?

    @Option(help: "Nodes the model is split across.")
    var nodes: Int = 3

    @Option(help: "Extra nodes that stand by for failover.")
    var standbys: Int = 1

    @Option(name: .customLong("memory-per-node"), help: "Memory budget of each node (suffixes K, M, G); default: just enough for the model to span --nodes.")
    var memoryPerNode: String?

    @Option(help: "Context positions per sequence.")
    var ctx: Int = 2048

    @Option(name: .customLong("max-sequences"), help: "Sequences served at once.")
    var maxSequences: Int = 8

    @Option(name: .shortAndLong, help: "Compute threads per node (default: the machine's cores shared among the serving nodes).")
    var threads: Int?

    @Option(help: "Wire format between stages: f32 (exact), f16 or q8.")
    var wire: String = "f32"

    @OptionGroup var gateway: GatewayOptions

    @Flag(help: "Plain TCP between the hub, nodes and gateway instead of mutual TLS with a throwaway cluster authority.")
    var insecure = false

    func validate() throws {
        guard (1 ... 64).contains(nodes), (0 ... 16).contains(standbys) else { throw ValidationError("--nodes 1...64, --standbys 0...16") }
        guard (16 ... 1 << 20).contains(ctx), (1 ... 4096).contains(maxSequences) else { throw ValidationError("--ctx 16...1048576, --max-sequences 1...4096") }
        if let threads, !(1 ... 256).contains(threads) { throw ValidationError("--threads 1...256") }
    }

    func run() throws {
        LogSetup.bootstrap()
        let logger = Logger(label: "pangalactic.serve")
        var settings = HubSettings()
        let layout: Pangalactic_Control_V1_ModelLayout
        let served: ServeModel
        let defaultID: String
        if let store {
            guard model == nil else { throw ValidationError("give --model or --store, not both") }
            let address = store, wanted = storeModel
            let (url, index, header) = try runBlocking { () async throws -> (String, TensorIndex, GGUFFile) in
                let url = try await StoreModelSource.resolve(address, model: wanted)
                let (index, header) = try await StoreModelSource.describe(url)
                return (url, index, header)
            }
            guard let digest = index.modelDigestBytes, digest.count == 32 else { throw ValidationError("the store's index has a bad digest") }
            layout = try ModelProfile.layout(file: header, digest: digest)
            settings.modelSource = url
            settings.storeModel = (digest, header.metadataOnlyBytes())
            served = .store(url: url, cache: cacheDir ?? TensorCache.defaultDirectory)
            defaultID = index.id
            Console.error("serve: model \(index.id) from the store at \(url)")
        } else {
            let path = try Self.modelFile(model)
            let file = try GGUFFile(path: path)
            layout = try ModelProfile.layout(file: file, digest: try file.modelDigest())
            served = .file(path)
            defaultID = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        }
        settings.contextLength = ctx
        settings.maxSequences = maxSequences
        settings.clusterToken = ProcessEnvironment.value("PANGALACTIC_CLUSTER_TOKEN") ?? Self.randomToken()
        switch wire.lowercased() {
        case "f32": settings.wire = .wireF32
        case "f16": settings.wire = .wireF16
        case "q8": settings.wire = .wireQ8
        default: throw ValidationError("--wire takes f32, f16 or q8")
        }
        let budget = try memoryPerNode.map { text -> Int in
            guard let b = parseByteCount(text), b > 0 else { throw ValidationError("--memory-per-node takes bytes, e.g. 200M") }
            return b
        } ?? Self.budget(spanning: nodes, layout: layout, settings: settings)
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let nodeThreads = threads ?? max(1, cores / nodes)

        // A throwaway authority for this run: every member gets its own certificate, so both planes
        // run mutual TLS exactly as a cluster of machines does.
        let trust = try insecure ? nil : LocalTrust()
        let hubSecurity: TransportSecurity = try trust.map { .mutualTLS(try $0.authority.makeMember(name: "hub", role: .hub)) } ?? .insecure
        let gatewaySecurity: TransportSecurity = try trust.map { .mutualTLS(try $0.authority.makeMember(name: "gateway", role: .gateway)) } ?? .insecure
        let hub = try HubServer(settings: settings, store: MemoryClusterStore(), logger: Logger(label: "pangalactic.hub"))
        let hubPort = Mutex<Int?>(nil)
        let hubTask = Task { try await hub.run(host: "127.0.0.1", port: 0, security: hubSecurity) { p in hubPort.withLock { $0 = p } } }
        let deadline = Date().addingTimeInterval(10)
        while hubPort.withLock({ $0 }) == nil, Date() < deadline { usleep(10000) }
        guard let port = hubPort.withLock({ $0 }) else { throw ValidationError("the hub did not start") }
        let hubAddress = "127.0.0.1:\(port)"

        let supervisor = NodeSupervisor(binary: Self.executablePath(), hub: hubAddress, model: served, budget: budget, threads: nodeThreads,
                                        token: settings.clusterToken, trust: trust, logger: logger)
        let watcher = SignalWatcher([SIGINT, SIGTERM]) { _ in
            Console.error("serve: stopping")
            supervisor.stopAll()
            trust?.remove()
            hub.prepareToStop()
            hubTask.cancel()
            Glibc.exit(0)
        }
        _ = watcher
        for i in 0 ..< nodes + standbys { try supervisor.start("node\(i + 1)") }
        Console.error("serve: hub on \(hubAddress); \(nodes + standbys) nodes of \(budget >> 20) MiB (\(nodeThreads) threads each), " +
            "\(nodes) serving and \(standbys) standing by; waiting for the pipeline")

        let connection = try HubConnection(address: hubAddress, security: gatewaySecurity)
        let status = try runBlocking { () async throws -> Pangalactic_Control_V1_ClusterStatusReply in
            let deadline = Date().addingTimeInterval(300)
            while true {
                if let s = try? await connection.control.clusterStatus(.init(), options: HubConnection.deadline(seconds: 5)), s.plan.ready {
                    return s
                }
                if supervisor.failedForGood { throw ValidationError("the nodes keep exiting; run with PANGALACTIC_LOG_LEVEL=debug to see why") }
                guard Date() < deadline else { throw ValidationError("the pipeline was not ready within 300 s") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        connection.close()
        Console.write(StatusReport.text(status))

        // Clients name the model by its file (as llama.cpp's server does), unless told otherwise.
        let modelID = gateway.modelID ?? defaultID
        let backend = try HubBackend(hub: hubAddress, clusterToken: settings.clusterToken, security: gatewaySecurity, modelID: modelID,
                                     logger: Logger(label: "pangalactic.gateway"))
        let api = Gateway(configuration: try gateway.configuration(maxInFlight: maxSequences), backend: backend,
                          logger: Logger(label: "pangalactic.gateway"))
        let host = gateway.host
        let keyHeader = gateway.apiKeys.first.map { " -H 'Authorization: Bearer \($0)'" } ?? ""
        try runBlocking {
            try await api.run { bound in
                Task {
                    let id = (try? await backend.model().id) ?? "MODEL"
                    Console.write("""

                        OpenAI API: http://\(host):\(bound)/v1   (model \(id))
                        Try it:
                          curl -s http://\(host):\(bound)/v1/chat/completions -H 'Content-Type: application/json'\(keyHeader) \\
                            -d '{"model": "\(id)", "messages": [{"role": "user", "content": "What is the tallest mountain on Earth?"}]}'

                        """)
                }
            }
        }
        _ = logger
    }

    /// The model file; the default one is fetched (scripts/fetch-models) when it is missing.
    static func modelFile(_ given: String?) throws -> String {
        let path = given ?? ProcessEnvironment.value("PANGALACTIC_MODEL") ?? ModelOptions.defaultModel
        if FileManager.default.fileExists(atPath: path) { return path }
        guard given == nil, FileManager.default.isExecutableFile(atPath: "scripts/fetch-models") else {
            throw ValidationError("no model file at \(path)")
        }
        Console.error("serve: fetching the default model (scripts/fetch-models smollm2)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "scripts/fetch-models")
        p.arguments = ["smollm2"]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0, FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("fetching the default model failed; run scripts/fetch-models smollm2")
        }
        return path
    }

    /// The smallest budget with which `count` equal nodes hold the model under the hub's
    /// placement: the model then spans all of them (fewer could not hold it).
    static func budget(spanning count: Int, layout: Pangalactic_Control_V1_ModelLayout, settings: HubSettings) -> Int {
        let footprint = ModelFootprint(layerBytes: layout.layerBytes.map { Int($0) }, embeddingBytes: Int(layout.embeddingBytes),
                                       outputBytes: Int(layout.outputBytes), tiedEmbeddings: layout.tiedEmbeddings,
                                       kvBytesPerLayerPosition: Int(layout.kvBytesPerLayerPosition))
        let planner = PlacementPlanner(kvReservePositions: settings.contextLength * settings.maxSequences, overheadBytes: settings.overheadBytes,
                                       hopSeconds: settings.hopSeconds)
        func fits(_ budget: Int) -> Bool {
            let nodes = (0 ..< count).map { PlacementCandidate(id: "n\($0)", budgetBytes: budget, bytesPerSecond: 1e9) }
            return (try? planner.plan(model: footprint, nodes: nodes)) != nil
        }
        var hi = planner.reservedBytes(footprint, 0 ..< footprint.layerCount)
        var lo = settings.overheadBytes
        while hi - lo > 1 << 16 {
            let mid = lo + (hi - lo) / 2
            if fits(mid) { hi = mid } else { lo = mid }
        }
        return hi
    }

    static func executablePath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    static func randomToken() -> String {
        let digits = Array("0123456789abcdef")
        return String((0 ..< 32).map { _ in digits[Int.random(in: 0 ..< 16)] })
    }
}

/// A throwaway cluster authority for one local cluster (`serve`, `bench --nodes --tls`) and the
/// owner-only folder where its node processes' credentials are written.
struct LocalTrust: Sendable {
    let authority: ClusterAuthority
    let directory: String

    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pangalactic-local-\(getpid())-\(ServeCommand.randomToken().prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        authority = try ClusterAuthority.create(clusterName: "local", validityDays: 30)
    }

    /// The folder of member `name`'s credentials, issued on first use.
    func credentials(for name: String, role: ClusterRole) throws -> String {
        let folder = directory + "/" + name
        if !MemberCredentials.exist(in: folder) { try authority.makeMember(name: name, role: role, validityDays: 30).save(to: folder) }
        return folder
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

enum ServeModel: Sendable {
    case file(String)
    /// A model on a store, and the folder under which each node keeps its own tensor cache.
    case store(url: String, cache: String)
}

/// Keeps `serve`'s node processes running: each is started with the parent-death signal set, so
/// it cannot outlive `serve`, and started again (as a new node) when it exits. A node that keeps
/// exiting within seconds of its start gives up after a few tries.
final class NodeSupervisor: @unchecked Sendable {
    let binary: String
    let hub: String
    /// Where nodes get the model: `-m PATH`, or `--model-source URL` (with a cache per node).
    let model: ServeModel
    let budget: Int
    let threads: Int
    let token: String
    /// Mutual TLS: each node gets credentials of its own; nil: plain TCP (`--insecure`).
    let trust: LocalTrust?
    let logger: Logger
    private let processes = Mutex<[String: (process: Process, port: Int, started: Date, quickExits: Int)]>([:])
    private let stopping = Atomic<Bool>(false)
    private let gaveUp = Atomic<Bool>(false)

    init(binary: String, hub: String, model: ServeModel, budget: Int, threads: Int, token: String, trust: LocalTrust?, logger: Logger) {
        self.trust = trust
        self.binary = binary
        self.hub = hub
        self.model = model
        self.budget = budget
        self.threads = threads
        self.token = token
        self.logger = logger
    }

    var failedForGood: Bool { gaveUp.load(ordering: .relaxed) }

    /// The node processes' ids by name (tests kill them).
    var pids: [String: Int32] { processes.withLock { $0.mapValues { $0.process.processIdentifier } } }

    func start(_ name: String, port given: Int? = nil, quickExits: Int = 0) throws {
        let port = try given ?? NodeAddress.freeLoopbackPort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        let source: [String]
        switch model {
        case let .file(path): source = ["-m", path]
        case let .store(url, cache): source = ["--model-source", url, "--cache-dir", cache + "/" + name]
        }
        p.arguments = ["node", "--join", hub, "--listen", "127.0.0.1:\(port)"] + source + ["--memory", "\(budget)", "--name", name,
                       "--threads", "\(threads)"] + (try security(for: name))
        var environment = ProcessInfo.processInfo.environment
        environment["PANGALACTIC_CLUSTER_TOKEN"] = token
        environment["PANGALACTIC_EXIT_WITH_PARENT"] = "1"
        p.environment = environment
        p.terminationHandler = { [weak self] process in self?.exited(name, process) }
        try p.run()
        processes.withLock { $0[name] = (p, port, Date(), quickExits) }
    }

    /// The node's security flags: its own credentials (issued once per name), or `--insecure`.
    private func security(for name: String) throws -> [String] {
        guard let trust else { return ["--insecure"] }
        return ["--tls-dir", try trust.credentials(for: name, role: .node)]
    }

    private func exited(_ name: String, _ process: Process) {
        guard !stopping.load(ordering: .relaxed) else { return }
        let entry = processes.withLock { $0[name] }
        guard let entry, entry.process === process else { return }
        let quick = Date().timeIntervalSince(entry.started) < 10 ? entry.quickExits + 1 : 0
        logger.warning("node exited; starting it again", metadata: ["node": "\(name)", "status": "\(process.terminationStatus)"])
        guard quick < 5 else {
            logger.error("node keeps exiting right after it starts; giving up", metadata: ["node": "\(name)"])
            gaveUp.store(true, ordering: .relaxed)
            return
        }
        do { try start(name, port: entry.port, quickExits: quick) } catch {
            logger.error("cannot start the node again", metadata: ["node": "\(name)", "error": "\(error)"])
        }
    }

    func stopAll() {
        stopping.store(true, ordering: .relaxed)
        let all = processes.withLock { $0.values.map(\.process) }
        for p in all where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in all { p.waitUntilExit() }
    }
}
