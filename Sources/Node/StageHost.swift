#if canImport(Glibc)
import Glibc
#endif
import ControlPlane
import Dispatch
import GGUF
import Logging
import ModelStore
import StarStream
import Synchronization

/// Runs whatever stage the hub assigns a joined node: no stage while it stands by, else a
/// `PipelineNode` for the assigned layers. A new assignment that changes the layers, the next
/// stage or the limits replaces the stage (the weights stay mapped, so this is cheap); one that
/// changes only the epoch keeps it. Stage changes run on one serial queue, off the async pool,
/// because starting and stopping a node blocks on its sockets.
final class StageHost: @unchecked Sendable {
    /// What a stage depends on; equal keys mean the running stage can stay.
    struct StageKey: Equatable {
        var layers: Range<Int>
        var next: String
        var wire: WireDType
        var contextLength: Int
        var maxSequences: Int
    }

    private let template: NodeConfiguration
    private let weights: WeightSource
    private let digest: [UInt8]
    private let logger: Logger
    private let queue = DispatchQueue(label: "pangalactic.stage-host")
    private let current = Mutex<(node: PipelineNode?, key: StageKey?, epoch: UInt64)>((nil, nil, 0))
    /// Set when the stage changed, so the member sends a heartbeat at once.
    let changed = Atomic<Bool>(false)
    private let rate = Mutex<(tokens: Int, at: Double, perSecond: Double)>((0, 0, 0))

    init(template: NodeConfiguration, weights: WeightSource, digest: [UInt8], logger: Logger) {
        self.template = template
        self.weights = weights
        self.digest = digest
        self.logger = logger
    }

    /// The epoch of the assignment this node serves now (0: none yet).
    var epoch: UInt64 { current.withLock { $0.epoch } }

    /// Whether the stage is up: standbys are not; node 0 only once its ring is complete.
    var serving: Bool {
        current.withLock { c in
            guard let node = c.node else { return false }
            return !node.isFirst || node.isRingHealthy
        }
    }

    var storeReceived: StoreModelSource.Counters? {
        if case let .store(source, _, _) = weights { return source.received }
        return nil
    }

    /// The running stage, if any (tests and status).
    var node: PipelineNode? { current.withLock { $0.node } }

    /// Queues `assignment`; stale or repeated ones (an epoch not newer than the one served) are ignored.
    func apply(_ assignment: Pangalactic_Control_V1_Assignment) {
        queue.async { [self] in applyNow(assignment) }
    }

    private func applyNow(_ a: Pangalactic_Control_V1_Assignment) {
        let (served, key, running) = current.withLock { ($0.epoch, $0.key, $0.node) }
        guard a.epoch > served else { return }
        guard a.modelDigest.isEmpty || Array(a.modelDigest) == digest else {
            logger.error("ignoring an assignment for another model", metadata: ["epoch": "\(a.epoch)"])
            return
        }
        guard a.active else {
            if running != nil { logger.info("standing by", metadata: ["epoch": "\(a.epoch)"]) }
            running?.stop()
            current.withLock { $0 = (nil, nil, a.epoch) }
            changed.store(true, ordering: .relaxed)
            return
        }
        guard let next = NodeAddress(a.nextAddress), a.firstLayer < a.endLayer, a.contextLength > 0, a.maxSequences > 0 else {
            logger.error("ignoring a malformed assignment", metadata: ["epoch": "\(a.epoch)"])
            return
        }
        let wanted = StageKey(layers: Int(a.firstLayer) ..< Int(a.endLayer), next: next.description, wire: Self.wire(a.wire),
                              contextLength: Int(a.contextLength), maxSequences: Int(a.maxSequences))
        if wanted == key, running != nil {
            current.withLock { $0.epoch = a.epoch }
            changed.store(true, ordering: .relaxed)
            logger.info("assignment unchanged", metadata: ["epoch": "\(a.epoch)"])
            return
        }
        // A store-fed node pulls the tensors it lacks first, while the old stage still runs.
        let file: GGUFFile
        do { file = try weights.file(for: wanted.layers, logger: logger) } catch {
            logger.error("cannot load the assigned layers", metadata: ["epoch": "\(a.epoch)", "error": "\(error)"])
            return
        }
        running?.stop()
        current.withLock { $0 = (nil, nil, served) }
        var configuration = template
        configuration.layers = wanted.layers
        configuration.next = next
        configuration.wire = wanted.wire
        configuration.contextLength = wanted.contextLength
        configuration.maxSequences = wanted.maxSequences
        // The old stage's socket was just closed; binding the same port again can take a moment.
        var lastError: NodeError?
        for _ in 0 ..< 50 {
            do {
                let node = try PipelineNode(configuration: configuration, file: file, modelDigest: digest, logger: logger)
                try node.start()
                current.withLock { $0 = (node, wanted, a.epoch) }
                rate.withLock { $0 = (0, ProfileClock.seconds(), 0) }
                changed.store(true, ordering: .relaxed)
                logger.info("assigned", metadata: ["epoch": "\(a.epoch)", "layers": "\(wanted.layers.lowerBound)..<\(wanted.layers.upperBound)",
                                                   "next": "\(wanted.next)", "stage": "\(a.stageIndex + 1)/\(a.stageCount)"])
                return
            } catch {
                lastError = error
                usleepSeconds(0.1)
            }
        }
        logger.error("cannot start the assigned stage", metadata: ["epoch": "\(a.epoch)", "error": "\(lastError.map { "\($0)" } ?? "?")"])
    }

    /// Stops the stage (the node is leaving); blocks until it has.
    func stop() {
        queue.sync {
            let running = current.withLock { c in
                defer { c.node = nil; c.key = nil }
                return c.node
            }
            running?.stop()
        }
    }

    /// Load figures for the heartbeat.
    var load: Pangalactic_Control_V1_NodeLoad {
        var load = Pangalactic_Control_V1_NodeLoad()
        guard let node = current.withLock({ $0.node }) else { return load }
        let c = node.counters
        load.activeSequences = UInt32(clamping: c.activeSequences.load(ordering: .relaxed))
        load.waitingSequences = UInt32(clamping: c.waitingSequences.load(ordering: .relaxed))
        load.kvBytes = UInt64(clamping: c.kvBytes.load(ordering: .relaxed))
        let tokens = c.tokens.load(ordering: .relaxed)
        let now = ProfileClock.seconds()
        load.tokensPerSecond = rate.withLock { r in
            if now - r.at >= 0.5 {
                r.perSecond = Double(max(0, tokens - r.tokens)) / (now - r.at)
                r.tokens = tokens
                r.at = now
            }
            return r.perSecond
        }
        node.pingNextStage()
        load.hopP50Ms = node.hopMillisecondsP50 ?? 0
        load.residentBytes = UInt64(residentMemoryBytes() ?? 0)
        return load
    }

    static func wire(_ w: Pangalactic_Control_V1_WireDType) -> WireDType {
        switch w {
        case .wireF16: .f16
        case .wireQ8: .q8
        default: .f32
        }
    }
}

/// Monotonic seconds for rates and waits.
enum ProfileClock {
    static func seconds() -> Double { ModelProfile.monotonicSeconds() }
}

func usleepSeconds(_ s: Double) {
    usleep(UInt32(max(0, s) * 1e6))
}
