import ClusterTrust
import ControlPlane
import Foundation
import GGUF
import GRPCCore
import Logging
import ModelStore
import Synchronization

/// How a node joins a hub.
public struct MemberConfiguration: Sendable {
    /// The hub's control plane, HOST:PORT.
    public var hub: String
    /// Where the node's stage listens (StarStream).
    public var listen: NodeAddress
    /// The address other nodes and drivers use to reach it (default: `listen`).
    public var advertise: NodeAddress?
    /// A local GGUF file; empty when the weights come from a store.
    public var modelPath: String
    /// A model store URL (`http://STORE/v1/store/models/ID`) to pull the assigned layers from,
    /// instead of a local file. With neither, the node asks the hub which store to use.
    public var modelSource: String?
    /// The tensor cache of a store-fed node, and its size limit.
    public var cacheDirectory: String?
    public var cacheLimitBytes: Int?
    /// The local file to use when the hub names no store and no model was given.
    public var fallbackModelPath: String?
    /// Draws pull progress on the terminal (else progress goes to the log).
    public var showProgress = false
    /// Memory the node may use for weights, KV caches and overhead (default: what the machine
    /// has available).
    public var memoryBudgetBytes: Int?
    public var name: String?
    public var clusterToken = ""
    /// Mutual TLS on both planes with the member's credentials, or plain TCP on loopback.
    public var security: TransportSecurity = .insecure
    public var threads = 2
    public var maxBatchTokens = 256
    public var decodeGroups: Int?
    public var sequenceIdleSeconds = 30.0
    /// Inbound connections each stage holds at once (`NodeConfiguration.maxConnections`).
    public var maxConnections = 64
    /// Bytes of KV cache the stage may hold; nil: a quarter of the available memory.
    public var kvBudgetBytes: Int?
    /// Seconds of the start-up speed probe.
    public var speedProbeSeconds = 0.3

    public init(hub: String, listen: NodeAddress, modelPath: String) {
        self.hub = hub
        self.listen = listen
        self.modelPath = modelPath
    }
}

/// A node in join mode: it registers with the hub (address, budget, measured speed, version and
/// its model's layout), streams heartbeats with its load, and serves whatever stage the hub
/// assigns (`StageHost`). When the hub goes away it keeps serving and registers again as soon as
/// the hub is back. `drain()` asks the hub to plan the node out before it stops.
public final class ClusterMember: Sendable {
    public let configuration: MemberConfiguration
    public let nodeID: String
    public let layout: Pangalactic_Control_V1_ModelLayout
    public let speedBytesPerSecond: Double
    public let memoryBudgetBytes: Int
    let host: StageHost
    private let file: GGUFFile
    private let connection: HubConnection
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)
    private let lastComplaint = Mutex<String>("")

    /// Opens the local model file, measures the machine's speed and connects (lazily) to the hub.
    public convenience init(configuration: MemberConfiguration, logger: Logger) throws(NodeError) {
        let file: GGUFFile
        do { file = try GGUFFile(path: configuration.modelPath) } catch { throw .model("\(configuration.modelPath): \(error)") }
        let digest: [UInt8]
        do { digest = try file.modelDigest() } catch { throw .model("digest: \(error)") }
        try self.init(configuration: configuration, weights: .file(file), digest: digest, logger: logger)
    }

    /// Opens the model wherever it is: a local file, the store named by `modelSource`, or the
    /// store the hub names. A store-fed node reads the tensor index (and the metadata, from the
    /// hub when it has it, else the file's header from the store) and pulls no weights until
    /// it is assigned layers.
    public static func open(configuration: MemberConfiguration, logger: Logger) async throws(NodeError) -> ClusterMember {
        if !configuration.modelPath.isEmpty, configuration.modelSource == nil {
            return try ClusterMember(configuration: configuration, logger: logger)
        }
        let connection: HubConnection
        do { connection = try HubConnection(address: configuration.hub, security: configuration.security) } catch { throw .configuration("--join: \(error)") }
        defer { connection.close() }
        var address = configuration.modelSource ?? ""
        if address.isEmpty {
            // Ask the hub (retrying while it starts) which store it names.
            for attempt in 0 ..< 100 {
                do {
                    let plan = try await connection.control.getRoutePlan(.init(), options: HubConnection.deadline(seconds: 2))
                    address = plan.modelSource
                    break
                } catch {
                    if attempt == 99 { throw .configuration("the hub \(configuration.hub) does not answer: \(error)") }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            if address.isEmpty, let fallback = configuration.fallbackModelPath {
                var local = configuration
                local.modelPath = fallback
                return try ClusterMember(configuration: local, logger: logger)
            }
            guard !address.isEmpty else {
                throw .configuration("the hub names no model store; give --model PATH or --model-source URL")
            }
        }
        let opened: (source: StoreModelSource, file: GGUFFile, index: TensorIndex, digest: [UInt8])
        do throws(StoreError) {
            let cache = try TensorCache(directory: configuration.cacheDirectory ?? TensorCache.defaultDirectory,
                                        limitBytes: configuration.cacheLimitBytes, logger: logger)
            let source = try StoreModelSource(url: try await StoreModelSource.resolve(address), cache: cache, logger: logger,
                                              showProgress: configuration.showProgress)
            let index = try await source.index()
            guard let digest = index.modelDigestBytes, digest.count == 32 else { throw StoreError.badIndex("bad model digest") }
            var file: GGUFFile
            // The metadata (vocabulary, template: megabytes) comes from the hub when it has this model's.
            if let info = try? await connection.modelInfo(), info.digest == digest, let meta = try? GGUFFile(bytes: info.bytes) {
                file = try index.file(metadata: meta.metadata)
            } else {
                file = try await source.header(index)
            }
            logger.info("model from the store", metadata: ["url": "\(source.url)", "tensors": "\(index.tensors.count)",
                                                           "received": "\(source.received.total)"])
            opened = (source, file, index, digest)
        } catch {
            throw .model("model store: \(error)")
        }
        return try ClusterMember(configuration: configuration, weights: .store(opened.source, base: opened.file, index: opened.index),
                                 digest: opened.digest, logger: logger)
    }

    init(configuration: MemberConfiguration, weights: WeightSource, digest: [UInt8], logger: Logger) throws(NodeError) {
        self.configuration = configuration
        let file = weights.index
        self.file = file
        layout = try ModelProfile.layout(file: file, digest: digest)
        speedBytesPerSecond = try ModelProfile.measureSpeed(file: file, threads: configuration.threads,
                                                            seconds: configuration.speedProbeSeconds)
        guard let budget = configuration.memoryBudgetBytes ?? ModelProfile.availableMemoryBytes(), budget > 0 else {
            throw .configuration("cannot read the machine's available memory; give --memory")
        }
        memoryBudgetBytes = budget
        nodeID = Self.randomID()
        var logger = logger
        logger[metadataKey: "node"] = "\(configuration.name ?? (configuration.advertise ?? configuration.listen).description)"
        self.logger = logger
        var template = NodeConfiguration(modelPath: configuration.modelPath, layers: 0 ..< 1, listen: configuration.listen,
                                         next: configuration.listen)
        template.clusterToken = configuration.clusterToken
        template.security = configuration.security
        template.threads = configuration.threads
        template.maxBatchTokens = configuration.maxBatchTokens
        template.decodeGroups = configuration.decodeGroups
        template.sequenceIdleSeconds = configuration.sequenceIdleSeconds
        template.maxConnections = configuration.maxConnections
        template.kvBudgetBytes = configuration.kvBudgetBytes
        host = StageHost(template: template, weights: weights, digest: digest, logger: logger)
        do { connection = try HubConnection(address: configuration.hub, security: configuration.security) } catch { throw .configuration("--join: \(error)") }
    }

    private static func randomID() -> String {
        let digits = Array("0123456789abcdef")
        return String((0 ..< 16).map { _ in digits[Int.random(in: 0 ..< 16)] })
    }

    /// The epoch of the assignment served now, and whether the stage is up.
    public var servedEpoch: UInt64 { host.epoch }
    public var isServing: Bool { host.serving }
    /// The running stage, if any.
    public var stage: PipelineNode? { host.node }
    /// What a store-fed node has received from its store (nil for a local file).
    public var storeReceived: StoreModelSource.Counters? { host.storeReceived }

    private func complain(_ message: String) {
        let fresh = lastComplaint.withLock { last in
            defer { last = message }
            return last != message
        }
        if fresh { logger.warning("\(message)") }
    }

    /// Registers and heartbeats until `stop()` (or `drain()`), re-registering whenever the
    /// stream to the hub breaks.
    public func run() async {
        while !stopped.load(ordering: .relaxed) {
            do {
                let interval = try await register()
                lastComplaint.withLock { $0 = "" }
                try await heartbeats(interval: interval)
            } catch let error as RPCError where error.code == .permissionDenied || error.code == .failedPrecondition
                || error.code == .invalidArgument {
                // The hub refused this node for good (wrong token, another model): say why and stop.
                logger.critical("the hub refused this node: \(error.message)")
                stopped.store(true, ordering: .relaxed)
                host.stop()
                return
            } catch {
                if !stopped.load(ordering: .relaxed) { complain("hub \(configuration.hub) unreachable (\(error)); retrying") }
            }
            if stopped.load(ordering: .relaxed) { break }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Whether the hub refused this node (wrong cluster token, different model): `run` then ends.
    public var isStopped: Bool { stopped.load(ordering: .relaxed) }

    private func register() async throws -> Double {
        var request = Pangalactic_Control_V1_RegisterRequest()
        request.nodeID = nodeID
        request.name = configuration.name ?? ""
        request.address = (configuration.advertise ?? configuration.listen).description
        request.memoryBudgetBytes = UInt64(memoryBudgetBytes)
        request.speedBytesPerSecond = speedBytesPerSecond
        request.version = PanGalacticVersion.current
        request.model = layout
        request.clusterToken = configuration.clusterToken
        request.servingEpoch = host.epoch
        let reply = try await connection.control.register(request, options: HubConnection.deadline(seconds: 5))
        logger.info("registered with the hub", metadata: ["hub": "\(configuration.hub)", "epoch": "\(reply.epoch)",
                                                         "budget": "\(memoryBudgetBytes)", "speed_MBps": "\(Int(speedBytesPerSecond / 1e6))"])
        if reply.needsModelInfo { try await publishModelInfo() }
        return reply.heartbeatIntervalSeconds > 0 ? min(reply.heartbeatIntervalSeconds, 10) : 1
    }

    private func publishModelInfo() async throws {
        let bytes = file.metadataOnlyBytes()
        let digest = layout.digest
        let chunk = 1 << 20
        _ = try await connection.control.publishModelInfo(options: HubConnection.deadline(seconds: 30)) { writer in
            var offset = 0
            repeat {
                var message = Pangalactic_Control_V1_ModelInfoChunk()
                message.modelDigest = digest
                message.offset = UInt64(offset)
                message.totalBytes = UInt64(bytes.count)
                let end = min(bytes.count, offset + chunk)
                message.data = Data(bytes[offset ..< end])
                try await writer.write(message)
                offset = end
            } while offset < bytes.count
        }
        logger.info("published the model's metadata", metadata: ["bytes": "\(bytes.count)"])
    }

    private func heartbeat() -> Pangalactic_Control_V1_NodeHeartbeat {
        var beat = Pangalactic_Control_V1_NodeHeartbeat()
        beat.nodeID = nodeID
        beat.epoch = host.epoch
        beat.serving = host.serving
        beat.load = host.load
        return beat
    }

    /// One heartbeat stream: a beat every `interval` (and at once after the stage changed, so
    /// the hub learns quickly that a new epoch is served), assignments applied as they come.
    private func heartbeats(interval: Double) async throws {
        let host = self.host
        try await connection.control.heartbeat { [self] writer in
            var last = -Double.infinity
            var lastServing = false
            while !isStopped {
                let now = ProfileClock.seconds()
                let serving = host.serving
                if now - last >= interval || host.changed.exchange(false, ordering: .relaxed) || serving != lastServing {
                    try await writer.write(heartbeat())
                    last = now
                    lastServing = serving
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        } onResponse: { response in
            for try await directive in response.messages {
                switch directive.kind {
                case let .assignment(a): host.apply(a)
                case let .registerAgain(why):
                    throw RPCError(code: .notFound, message: why)
                case nil: break
                }
            }
        }
    }

    /// Asks the hub to plan this node out, waits (up to `timeoutSeconds`) until the new plan is
    /// serving, then stops the stage. In-flight requests move to the new plan by replay.
    public func drain(timeoutSeconds: Double = 20) async {
        logger.info("draining: asking the hub to plan this node out")
        let deadline = ProfileClock.seconds() + timeoutSeconds
        do {
            let reply = try await connection.control.drain(.with { $0.nodeID = nodeID }, options: HubConnection.deadline(seconds: 5))
            if reply.replanned {
                while ProfileClock.seconds() < deadline {
                    let plan = try await connection.control.getRoutePlan(.init(), options: HubConnection.deadline(seconds: 2))
                    if plan.epoch >= reply.epoch, plan.ready || plan.epoch > reply.epoch { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                logger.info("the hub re-planned without this node", metadata: ["epoch": "\(reply.epoch)"])
            } else {
                logger.warning("the rest of the cluster cannot hold the model without this node: \(reply.message)")
            }
        } catch {
            logger.warning("drain: the hub did not answer (\(error)); stopping anyway")
        }
        stop()
    }

    /// Stops heartbeating and the stage.
    public func stop() {
        stopped.store(true, ordering: .relaxed)
        host.stop()
        connection.close()
    }
}
