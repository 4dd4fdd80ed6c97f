import ArgumentParser
import ClusterTrust
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Node
import StarStream

/// `pangalactic node`: one pipeline stage. Joined to a hub (`--join`), it serves whatever layers
/// the hub assigns; by hand (`--layers --next`), it serves a fixed range.
struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Serve a range of a model's layers as one stage of a pipeline (StarStream).",
        discussion: """
            Join a hub, which places the model and assigns this node its layers:
              pangalactic node --join HUB:7000 --listen 0.0.0.0:7101 -m M --tls-dir CREDENTIALS [--memory 2G] [--name n1]
            Or wire a ring by hand, each node pointing --next at the following stage and the last one
            back at the first. Example with three nodes of a 30-layer model on one machine:
              pangalactic node -m M --layers 0..<10  --listen 127.0.0.1:7101 --next 127.0.0.1:7102 --insecure
              pangalactic node -m M --layers 10..<20 --listen 127.0.0.1:7102 --next 127.0.0.1:7103 --insecure
              pangalactic node -m M --layers 20..<30 --listen 127.0.0.1:7103 --next 127.0.0.1:7101 --insecure
            then: pangalactic generate -m M --pipeline 127.0.0.1:7101 --insecure --prompt "..."
            Across machines, give each node --tls-dir with its credentials (pangalactic init, issue).
            """)

    @Option(name: [.short, .customLong("model"), .customLong("model-path")], help: "GGUF model file.")
    var model: String?

    @Option(help: "Join the hub at HOST:PORT and serve the layers it assigns.")
    var join: String?
    @Option(name: .customLong("model-source"),
            help: "Pull the assigned layers from a model store, http://STORE/v1/store/models/ID (under --join; default: the store the hub names, when it names one and no --model is given).")
    var modelSource: String?
    @Option(name: .customLong("cache-dir"), help: "Tensor cache of a store-fed node (default: ~/.cache/pangalactic/store).")
    var cacheDir: String?
    @Option(name: .customLong("cache-limit"), help: "Most bytes the tensor cache may hold (suffixes K, M, G); least recently used tensors go first.")
    var cacheLimit: String?

    @Option(help: "Layers this node serves, A..<B (or A-B, end exclusive); by hand, without --join.")
    var layers: String?

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: String

    @Option(help: "The address other nodes and drivers reach this node at (default: --listen).")
    var advertise: String?

    @Option(help: "The next stage, HOST:PORT (the last node points back at node 0); by hand, without --join.")
    var next: String?

    @Option(help: "Memory this node may use under --join, in bytes (suffixes K, M, G); default: what the machine has available.")
    var memory: String?

    @Option(help: "A name for this node in the hub's status (default: its address).")
    var name: String?

    @Option(help: "Wire format of hidden states by hand: f32, f16 or q8 (under --join the hub decides).")
    var wire: String = "f16"

    @Option(name: .customLong("cluster-token"), help: "Shared secret of the cluster (default: $PANGALACTIC_CLUSTER_TOKEN).")
    var clusterToken: String?

    @Option(name: .shortAndLong, help: "Compute threads, counting the scheduler thread.")
    var threads: Int = 2

    @Option(name: .customLong("max-sequences"), help: "Sequences with a KV cache at once (by hand; under --join the hub decides).")
    var maxSequences: Int = 16

    @Option(name: .customLong("ctx-size"), help: "Positions per sequence (by hand; capped by the model's trained context).")
    var contextSize: Int = 4096

    @Option(name: .customLong("batch-size"), help: "Rows per batch through the layers.")
    var batchSize: Int = 256

    @Option(name: .customLong("decode-groups"),
            help: "Decode micro-batches kept apart around the ring (default: 1 when --next is on loopback, as stages that share cores cannot overlap; else one per stage, so every stage has work).")
    var decodeGroups: Int?

    @Option(name: .customLong("idle-timeout"), help: "Seconds a sequence may hear nothing before it is freed and reported.")
    var idleTimeout: Double = 30

    @Option(name: .customLong("max-connections"), help: "Inbound connections held at once; more are closed on accept.")
    var maxConnections: Int = 64

    @OptionGroup var trust: SecurityOptions

    @Option(name: .customLong("kv-budget"),
            help: "Most bytes of KV cache this node holds (suffixes K, M, G); sequences over it wait at node 0 or are refused. Default: a quarter of the available memory.")
    var kvBudget: String?

    func validate() throws {
        guard (1 ... 65536).contains(maxConnections) else { throw ValidationError("--max-connections takes 1...65536") }
        if let kvBudget, (parseByteCount(kvBudget) ?? 0) <= 0 { throw ValidationError("--kv-budget takes bytes, e.g. 2G") }
        guard (1 ... 256).contains(threads), (1 ... 4096).contains(maxSequences), (8 ... 1 << 20).contains(contextSize),
              (1 ... 4096).contains(batchSize), (1 ... 256).contains(decodeGroups ?? 1) else {
            throw ValidationError("--threads 1...256, --max-sequences 1...4096, --ctx-size 8...1048576, --batch-size 1...4096, --decode-groups 1...256")
        }
        guard idleTimeout.isFinite, idleTimeout > 0, idleTimeout <= 86400 else { throw ValidationError("--idle-timeout takes 0 < seconds ≤ 86400") }
        if join != nil {
            guard layers == nil, next == nil else { throw ValidationError("--join takes no --layers or --next: the hub assigns them") }
        } else {
            guard layers != nil, next != nil else { throw ValidationError("give --join HUB, or both --layers and --next") }
        }
    }

    var modelPath: String { model ?? ProcessEnvironment.value("PANGALACTIC_MODEL") ?? ModelOptions.defaultModel }
    var token: String { ProcessEnvironment.clusterToken(clusterToken) }

    func run() throws {
        LogSetup.bootstrap()
        if ProcessEnvironment.value("PANGALACTIC_EXIT_WITH_PARENT") == "1" { exitWithParent() }
        guard let listenAddress = NodeAddress(listen) else { throw ValidationError("--listen takes HOST:PORT") }
        let security = try trust.security(roles: [.node], enroll: join.map { (.node, name ?? "node-\(listenAddress.port)", $0) })
        if token.isEmpty, security.isInsecure { Console.error("warning: plain TCP and no cluster token; any local peer that knows the model may connect") }
        if let join { return try runJoined(hub: join, listen: listenAddress, security: security) }
        guard let layers, let range = parseLayerRange(layers) else { throw ValidationError("--layers takes A..<B, e.g. 0..<12") }
        guard let next, let nextAddress = NodeAddress(next) else { throw ValidationError("--next takes HOST:PORT") }
        guard let dtype = parseWire(wire) else { throw ValidationError("--wire takes f32, f16 or q8") }
        var configuration = NodeConfiguration(modelPath: modelPath, layers: range, listen: listenAddress, next: nextAddress)
        configuration.wire = dtype
        configuration.clusterToken = token
        configuration.security = security
        configuration.threads = threads
        configuration.maxSequences = maxSequences
        configuration.contextLength = contextSize
        configuration.maxBatchTokens = batchSize
        configuration.decodeGroups = decodeGroups
        configuration.sequenceIdleSeconds = idleTimeout
        configuration.maxConnections = maxConnections
        configuration.kvBudgetBytes = kvBudget.flatMap(parseByteCount)
        let node = try PipelineNode(configuration: configuration, logger: Logger(label: "pangalactic.node"))
        let port = try node.start()
        let kvPerSequence = 2 * range.count * node.configuration.contextLength * node.model.config.kvWidth * 4
        let rss = residentMemoryBytes().map { "\($0 >> 20) MiB" } ?? "unknown"
        Console.error("node \(range): listening on \(listenAddress.host):\(port), next \(nextAddress), wire \(wire); " +
            "shard \(node.shardBytes >> 20) MiB, KV up to \(kvPerSequence >> 20) MiB per sequence × \(maxSequences), resident \(rss)")
        if ProcessEnvironment.value("PANGALACTIC_NODE_STATS") != nil { printStats(node, label: "node \(range)") }
        node.wait()
    }

    /// Join mode: register with the hub and serve its assignments until SIGTERM/SIGINT, which
    /// first drains (the hub plans this node out), then exits.
    func runJoined(hub: String, listen: NodeAddress, security: TransportSecurity) throws {
        // With no model named anywhere, the node takes the hub's store, or else the default file.
        let named = model ?? ProcessEnvironment.value("PANGALACTIC_MODEL")
        var configuration = MemberConfiguration(hub: hub, listen: listen, modelPath: modelSource == nil ? (named ?? "") : "")
        configuration.modelSource = modelSource
        configuration.fallbackModelPath = named == nil && modelSource == nil ? ModelOptions.defaultModel : nil
        configuration.cacheDirectory = cacheDir
        if let cacheLimit {
            guard let bytes = parseByteCount(cacheLimit), bytes > 0 else { throw ValidationError("--cache-limit takes bytes, e.g. 2G") }
            configuration.cacheLimitBytes = bytes
        }
        configuration.showProgress = isatty(2) != 0
        if let advertise {
            guard let address = NodeAddress(advertise) else { throw ValidationError("--advertise takes HOST:PORT") }
            configuration.advertise = address
        }
        if let memory {
            guard let bytes = parseByteCount(memory), bytes > 0 else { throw ValidationError("--memory takes bytes, e.g. 512M or 2G") }
            configuration.memoryBudgetBytes = bytes
        }
        configuration.name = name
        configuration.clusterToken = token
        configuration.security = security
        configuration.threads = threads
        configuration.maxBatchTokens = batchSize
        configuration.decodeGroups = decodeGroups
        configuration.sequenceIdleSeconds = idleTimeout
        configuration.maxConnections = maxConnections
        configuration.kvBudgetBytes = kvBudget.flatMap(parseByteCount)
        let settings = configuration
        let member = try runBlocking { () async throws -> ClusterMember in
            try await ClusterMember.open(configuration: settings, logger: Logger(label: "pangalactic.node"))
        }
        Console.error("node \(name ?? listen.description): joining hub \(hub); budget \(member.memoryBudgetBytes >> 20) MiB, " +
            "speed \(Int(member.speedBytesPerSecond / 1e6)) MB/s of weights")
        let signals = SignalWatcher([SIGTERM, SIGINT]) { signal in
            Console.error("node: signal \(signal); draining")
            Task {
                await member.drain()
                Glibc.exit(0)
            }
        }
        _ = signals
        try runBlocking { await member.run() }
        if member.isStopped { throw ExitCode(1) }
    }
}

/// Ends this process when the one that started it is gone (`serve`'s nodes): a thread notices
/// the change of parent within half a second. (prctl's parent-death signal is a variadic C call,
/// which Swift cannot make.)
func exitWithParent() {
    let parent = getppid()
    Thread.detachNewThread {
        while getppid() == parent { usleep(500_000) }
        Glibc.exit(0)
    }
}

/// Prints batches, rows and compute time every 2 s (`PANGALACTIC_NODE_STATS=1`).
func printStats(_ node: PipelineNode, label: String) {
    Thread.detachNewThread {
        var last = (0, 0, 0)
        while true {
            Thread.sleep(forTimeInterval: 2)
            let c = node.counters
            let now = (c.batches.load(ordering: .relaxed), c.rows.load(ordering: .relaxed), c.computeNanoseconds.load(ordering: .relaxed))
            let b = now.0 - last.0
            if b > 0 {
                Console.error("\(label): \(b) batches, \(now.1 - last.1) rows, \(fmt(Double(now.2 - last.2) / Double(b) / 1e6, 3)) ms per batch, busy \(fmt(Double(now.2 - last.2) / 2e7, 1))%")
            }
            last = now
        }
    }
}

/// `4096`, `512K`, `300M`, `2G` (powers of 1024).
func parseByteCount(_ text: String) -> Int? {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased()
    let units: [(String, Int)] = [("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
    for (suffix, scale) in units where t.hasSuffix(suffix) {
        guard let value = Double(t.dropLast(suffix.count)), value >= 0, value * Double(scale) < 9e18 else { return nil }
        return Int(value * Double(scale))
    }
    return Int(t)
}

/// `A..<B`, `A..B` is refused (ambiguous), `A-B` means `A..<B`.
func parseLayerRange(_ text: String) -> Range<Int>? {
    let parts: [Substring]
    if text.contains("..<") {
        parts = text.split(separator: "..<", omittingEmptySubsequences: false).map { $0 }
    } else if text.contains("-") {
        parts = text.split(separator: "-", omittingEmptySubsequences: false)
    } else {
        return nil
    }
    guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, a < b else { return nil }
    return a ..< b
}

func parseWire(_ text: String) -> WireDType? {
    switch text.lowercased() {
    case "f32": .f32
    case "f16": .f16
    case "q8", "q8_0": .q8
    default: nil
    }
}
