import ControlPlane
import Foundation

/// How the hub runs its cluster.
public struct HubSettings: Sendable {
    /// Positions per sequence that each node's KV reserve covers, and the context nodes serve.
    public var contextLength = 2048
    /// Sequences each node keeps a KV cache for at once.
    public var maxSequences = 8
    /// How hidden states travel between stages. F32 is exact, so a request replayed after a
    /// failover onto a different split gives the same text; F16 and Q8 round at every hop.
    public var wire: Pangalactic_Control_V1_WireDType = .wireF32
    /// Nodes send a heartbeat this often...
    public var heartbeatIntervalSeconds = 1.0
    /// ...and are dead after missing this many in a row.
    public var missedHeartbeats = 3
    /// After a restart from a snapshot, nodes have this long to heartbeat before they are dead.
    public var recoveryGraceSeconds = 10.0
    /// A joining node triggers a re-plan only when the predicted step time improves by more than
    /// this fraction: start-up speed probes on busy machines vary by tens of percent, and every
    /// re-plan costs each request in flight a replay.
    public var joinGain = 0.2
    /// Fixed bytes per node for scratch buffers and the process itself.
    public var overheadBytes = 64 << 20
    /// Predicted cost of one hop between stages.
    public var hopSeconds = 0.0005
    /// Every node must present it at Register.
    public var clusterToken = ""
    /// Dead nodes stay in the registry (and in `status`) this long.
    public var deadRetentionSeconds = 300.0
    /// The model store nodes pull the model from (`http://STORE/v1/store/models/ID`), handed out
    /// in every route plan; empty when nodes bring their own files.
    public var modelSource = ""
    /// The store's model, known before any node registers: its digest (only nodes with this
    /// model may join) and its metadata-only GGUF (served to nodes and gateways at once).
    public var storeModel: (digest: [UInt8], metadata: [UInt8])?

    public init() {}

    var deadAfterSeconds: Double { heartbeatIntervalSeconds * Double(missedHeartbeats) }
}

/// Why the hub refused a call.
public enum HubError: Error, Equatable, CustomStringConvertible {
    case unauthorized
    case invalid(String)
    /// The node holds another model than the cluster runs.
    case differentModel(node: String, cluster: String)
    case unknownNode(String)

    public var description: String {
        switch self {
        case .unauthorized: "wrong cluster token"
        case let .invalid(m): m
        case let .differentModel(node, cluster):
            "this node holds model \(node), but the cluster runs model \(cluster); start it with the cluster's model file"
        case let .unknownNode(id): "unknown node \(id); register first"
        }
    }
}

/// One node in the registry.
struct NodeEntry {
    enum Liveness: Equatable {
        case alive
        /// Loaded from a snapshot; not heard from since the hub started.
        case recovering
        case dead
    }

    var id: String
    var name: String
    var address: String
    var budgetBytes: Int
    var bytesPerSecond: Double
    var version: String
    var liveness: Liveness
    var draining = false
    /// Monotonic seconds of the last heartbeat (or registration, or when recovery began).
    var lastHeard: Double
    var diedAt: Double?
    var load = Pangalactic_Control_V1_NodeLoad()
    var servingEpoch: UInt64 = 0
    var serving = false

    var candidate: PlacementCandidate { PlacementCandidate(id: id, budgetBytes: budgetBytes, bytesPerSecond: bytesPerSecond) }
}

/// A change worth a log line (and, for drivers and nodes, a new epoch).
public struct HubEvent: Sendable, Equatable {
    public var message: String
    public var node: String?
    public var epoch: UInt64
}

/// The hub's state machine: registry, liveness, placement and epochs. Not thread-safe and free of
/// I/O (time comes in as an argument), so every rule is tested directly; `HubCore` wraps it.
struct ClusterState {
    let settings: HubSettings
    private(set) var model: Pangalactic_Control_V1_ModelLayout?
    private(set) var modelInfo: [UInt8]?
    private(set) var nodes: [String: NodeEntry] = [:]
    /// Registration order: placement breaks ties by it.
    private(set) var order: [String] = []
    private(set) var epoch: UInt64 = 0
    private(set) var plan: PlacementPlan?
    /// Why the model is not deployed, when it is not.
    private(set) var problem: String?
    private(set) var events: [HubEvent] = []

    init(settings: HubSettings) {
        self.settings = settings
    }

    var planner: PlacementPlanner {
        PlacementPlanner(kvReservePositions: settings.contextLength * settings.maxSequences, overheadBytes: settings.overheadBytes,
                         hopSeconds: settings.hopSeconds)
    }

    /// Hands out the events since the last call (for logging).
    mutating func takeEvents() -> [HubEvent] {
        defer { events.removeAll() }
        return events
    }

    private mutating func note(_ message: String, node: String? = nil) {
        events.append(HubEvent(message: message, node: node, epoch: epoch))
    }

    // MARK: Registration

    /// What Register answers.
    struct Registered: Equatable {
        var needsModelInfo: Bool
        var epoch: UInt64
    }

    mutating func register(_ r: Pangalactic_Control_V1_RegisterRequest, now: Double) throws(HubError) -> Registered {
        guard Self.constantTimeEqual(Array(r.clusterToken.utf8), Array(settings.clusterToken.utf8)) else { throw .unauthorized }
        guard !r.nodeID.isEmpty, r.nodeID.utf8.count <= 128 else { throw .invalid("node id must be 1 to 128 bytes") }
        guard r.name.utf8.count <= 256 else { throw .invalid("node name over 256 bytes") }
        guard ControlAddress.parse(r.address) != nil else { throw .invalid("address must be HOST:PORT, got \(r.address)") }
        guard r.memoryBudgetBytes > 0, r.memoryBudgetBytes < UInt64(Int.max / 4) else { throw .invalid("memory budget must be positive") }
        guard r.speedBytesPerSecond.isFinite, r.speedBytesPerSecond > 0 else { throw .invalid("speed must be a positive number") }
        try Self.validate(r.model)
        if let seeded = settings.storeModel, Data(seeded.digest) != r.model.digest {
            throw .differentModel(node: Self.hex(r.model.digest), cluster: Self.hex(seeded.digest))
        }
        if let model, model.digest != r.model.digest {
            throw .differentModel(node: Self.hex(r.model.digest), cluster: Self.hex(model.digest))
        }
        // A hub that restarted without its state numbers its epochs above what nodes serve.
        epoch = max(epoch, r.servingEpoch)
        if model == nil {
            model = r.model
            note("model \(r.model.name) (\(r.model.layerCount) layers, digest \(Self.hex(r.model.digest).prefix(16)))")
        }
        if modelInfo == nil, let seeded = settings.storeModel { modelInfo = seeded.metadata }
        let known = nodes[r.nodeID]
        var entry = NodeEntry(id: r.nodeID, name: r.name.isEmpty ? r.address : r.name, address: r.address,
                              budgetBytes: Int(r.memoryBudgetBytes), bytesPerSecond: r.speedBytesPerSecond, version: r.version,
                              liveness: .alive, lastHeard: now)
        if let known {
            // The same process again (its stream broke, or the hub restarted): keep what it serves.
            entry.draining = known.draining
            entry.servingEpoch = known.servingEpoch
            entry.serving = known.serving
            nodes[r.nodeID] = entry
            if known.liveness == .dead {
                note("node is back", node: r.nodeID)
                considerJoin(r.nodeID)
            } else if known.liveness == .recovering {
                note("node recovered", node: r.nodeID)
            }
        } else {
            nodes[r.nodeID] = entry
            order.append(r.nodeID)
            note("registered \(entry.name) at \(entry.address): budget \(entry.budgetBytes) bytes, speed \(Int(entry.bytesPerSecond / 1e6)) MB/s", node: r.nodeID)
            considerJoin(r.nodeID)
        }
        return Registered(needsModelInfo: modelInfo == nil, epoch: epoch)
    }

    /// Stores the model's metadata (a GGUF without tensors) for `GetModelInfo`.
    mutating func setModelInfo(_ bytes: [UInt8], digest: [UInt8]) throws(HubError) {
        guard let model else { throw .invalid("no model registered yet") }
        guard model.digest == Data(digest) else {
            throw .differentModel(node: Self.hex(digest), cluster: Self.hex(model.digest))
        }
        modelInfo = bytes
    }

    // MARK: Heartbeats and liveness

    /// A heartbeat from `id`; false when the node is unknown (it must register).
    mutating func heartbeat(_ h: Pangalactic_Control_V1_NodeHeartbeat, now: Double) -> Bool {
        guard var entry = nodes[h.nodeID] else { return false }
        epoch = max(epoch, h.epoch)
        let wasDead = entry.liveness == .dead
        if entry.liveness == .recovering { note("node recovered", node: h.nodeID) }
        entry.liveness = .alive
        entry.diedAt = nil
        entry.lastHeard = now
        entry.load = h.load
        entry.servingEpoch = h.epoch
        entry.serving = h.serving
        nodes[h.nodeID] = entry
        if wasDead {
            note("node is back", node: h.nodeID)
            considerJoin(h.nodeID)
        }
        return true
    }

    /// The node's heartbeat stream broke: it is dead at once.
    mutating func streamBroke(_ id: String, now: Double) {
        markDead(id, now: now, reason: "heartbeat stream closed")
    }

    /// Marks nodes dead that missed their heartbeats (or did not come back after a restart), and
    /// forgets nodes dead for longer than the retention.
    mutating func checkLiveness(now: Double) {
        for id in order {
            guard let entry = nodes[id] else { continue }
            switch entry.liveness {
            case .alive where now - entry.lastHeard > settings.deadAfterSeconds:
                markDead(id, now: now, reason: "missed \(settings.missedHeartbeats) heartbeats")
            case .recovering where now - entry.lastHeard > settings.recoveryGraceSeconds:
                markDead(id, now: now, reason: "did not come back after the hub restarted")
            case .dead:
                if let t = entry.diedAt, now - t > settings.deadRetentionSeconds {
                    nodes[id] = nil
                    order.removeAll { $0 == id }
                }
            default:
                break
            }
        }
    }

    private mutating func markDead(_ id: String, now: Double, reason: String) {
        guard var entry = nodes[id], entry.liveness != .dead else { return }
        entry.liveness = .dead
        entry.diedAt = now
        entry.serving = false
        nodes[id] = entry
        note("node dead: \(reason)", node: id)
        if plan?.nodeIDs.contains(id) == true { replan(reason: "node \(entry.name) died") }
    }

    // MARK: Drain

    /// The node asks to leave. Returns whether the rest still hold the model.
    mutating func drain(_ id: String) throws(HubError) -> Bool {
        guard var entry = nodes[id] else { throw .unknownNode(id) }
        if !entry.draining {
            entry.draining = true
            nodes[id] = entry
            note("node draining", node: id)
            if plan?.nodeIDs.contains(id) == true { replan(reason: "node \(entry.name) is draining") }
        }
        return plan != nil
    }

    // MARK: Placement

    /// Nodes placement may use: alive (or still recovering) and not draining, in registration order.
    private var candidates: [PlacementCandidate] {
        order.compactMap { id in
            guard let n = nodes[id], n.liveness != .dead, !n.draining else { return nil }
            return n.candidate
        }
    }

    var footprint: ModelFootprint? {
        guard let m = model else { return nil }
        return ModelFootprint(layerBytes: m.layerBytes.map { Int($0) }, embeddingBytes: Int(m.embeddingBytes),
                              outputBytes: Int(m.outputBytes), tiedEmbeddings: m.tiedEmbeddings,
                              kvBytesPerLayerPosition: Int(m.kvBytesPerLayerPosition))
    }

    /// A new node (or one that came back): re-plan if it makes the pipeline faster, or if the
    /// model is not deployed yet; otherwise it stays a standby.
    private mutating func considerJoin(_ id: String) {
        guard let footprint else { return }
        guard let current = plan else { return replan(reason: "node joined") }
        guard let better = try? planner.plan(model: footprint, nodes: candidates) else { return }
        if better.predictedStepSeconds < current.predictedStepSeconds * (1 - settings.joinGain) {
            replan(reason: "a faster plan with the new node (\(Self.ms(current.predictedStepSeconds)) → \(Self.ms(better.predictedStepSeconds)) ms per step)")
        } else {
            note("node is a standby", node: id)
        }
    }

    /// Computes a new plan over the live nodes and bumps the epoch.
    mutating func replan(reason: String) {
        guard let footprint else { return }
        epoch += 1
        do {
            let p = try planner.plan(model: footprint, nodes: candidates)
            plan = p
            problem = nil
            let map = p.stages.map { "\(nodes[$0.nodeID]?.name ?? $0.nodeID) \($0.layers.lowerBound)..<\($0.layers.upperBound)" }
            note("re-planned (\(reason)): \(map.joined(separator: ", ")); predicted \(Self.ms(p.predictedStepSeconds)) ms per step")
        } catch {
            plan = nil
            problem = error.description
            note("model not deployed (\(reason)): \(error.description)")
        }
    }

    // MARK: Answers

    /// What `id` should serve now.
    func assignment(for id: String) -> Pangalactic_Control_V1_Assignment {
        var a = Pangalactic_Control_V1_Assignment()
        a.epoch = epoch
        a.wire = settings.wire
        a.contextLength = UInt32(settings.contextLength)
        a.maxSequences = UInt32(settings.maxSequences)
        if let model { a.modelDigest = model.digest }
        guard let plan, let index = plan.stages.firstIndex(where: { $0.nodeID == id }) else { return a }
        let stage = plan.stages[index]
        a.active = true
        a.firstLayer = UInt32(stage.layers.lowerBound)
        a.endLayer = UInt32(stage.layers.upperBound)
        a.nextAddress = nodes[plan.stages[(index + 1) % plan.stages.count].nodeID]?.address ?? ""
        a.stageIndex = UInt32(index)
        a.stageCount = UInt32(plan.stages.count)
        return a
    }

    /// Whether the node has caught up with the current epoch.
    func isCurrent(_ id: String) -> Bool { nodes[id]?.servingEpoch == epoch }

    var routePlan: Pangalactic_Control_V1_RoutePlan {
        var r = Pangalactic_Control_V1_RoutePlan()
        r.epoch = epoch
        r.wire = settings.wire
        r.contextLength = UInt32(settings.contextLength)
        r.maxSequences = UInt32(settings.maxSequences)
        r.modelSource = settings.modelSource
        if let model {
            r.modelDigest = model.digest
            r.layerCount = model.layerCount
        }
        guard let plan else {
            r.problem = problem ?? (model == nil ? "no node has registered a model yet" : "no plan yet")
            return r
        }
        r.stages = plan.stages.map { stage in
            var s = Pangalactic_Control_V1_RouteStage()
            s.nodeID = stage.nodeID
            s.name = nodes[stage.nodeID]?.name ?? ""
            s.address = nodes[stage.nodeID]?.address ?? ""
            s.firstLayer = UInt32(stage.layers.lowerBound)
            s.endLayer = UInt32(stage.layers.upperBound)
            return s
        }
        r.ready = plan.stages.allSatisfy { stage in
            guard let n = nodes[stage.nodeID] else { return false }
            return n.liveness == .alive && n.serving && n.servingEpoch == epoch
        }
        return r
    }

    func status(now: Double) -> Pangalactic_Control_V1_ClusterStatusReply {
        var reply = Pangalactic_Control_V1_ClusterStatusReply()
        reply.plan = routePlan
        reply.contextLength = UInt32(settings.contextLength)
        reply.maxSequences = UInt32(settings.maxSequences)
        reply.wire = settings.wire
        if let model { reply.model = model }
        if let plan { reply.predictedStepMs = plan.predictedStepSeconds * 1000 }
        reply.nodes = order.compactMap { id in
            guard let n = nodes[id] else { return nil }
            var s = Pangalactic_Control_V1_NodeStatus()
            s.nodeID = n.id
            s.name = n.name
            s.address = n.address
            s.budgetBytes = UInt64(n.budgetBytes)
            s.load = n.load
            s.heartbeatAgeSeconds = max(0, now - n.lastHeard)
            s.speedBytesPerSecond = n.bytesPerSecond
            s.version = n.version
            s.servingEpoch = n.servingEpoch
            let stage = plan?.stages.first { $0.nodeID == id }
            if let stage {
                s.hasLayers_p = true
                s.firstLayer = UInt32(stage.layers.lowerBound)
                s.endLayer = UInt32(stage.layers.upperBound)
                s.memoryBytes = UInt64(stage.reservedBytes)
            }
            switch n.liveness {
            case .dead: s.state = "dead"
            case .recovering: s.state = "recovering"
            case .alive: s.state = n.draining ? "draining" : (stage != nil ? "active" : "standby")
            }
            return s
        }
        return reply
    }

    // MARK: Snapshots

    var snapshot: Pangalactic_Control_V1_HubSnapshot {
        var s = Pangalactic_Control_V1_HubSnapshot()
        s.epoch = epoch
        if let model { s.model = model }
        if let modelInfo { s.modelInfo = Data(modelInfo) }
        s.problem = problem ?? ""
        s.nodes = order.compactMap { id in
            guard let n = nodes[id] else { return nil }
            var r = Pangalactic_Control_V1_NodeRecord()
            r.nodeID = n.id
            r.name = n.name
            r.address = n.address
            r.memoryBudgetBytes = UInt64(n.budgetBytes)
            r.speedBytesPerSecond = n.bytesPerSecond
            r.version = n.version
            r.draining = n.draining
            r.dead = n.liveness == .dead
            return r
        }
        s.stages = routePlan.stages
        return s
    }

    /// Restores a snapshot: the registry, the model and the plan with its epoch. Every node that
    /// was alive is `recovering` until it heartbeats (or the grace runs out); the plan is kept,
    /// so a hub restart moves no layers.
    init(settings: HubSettings, snapshot s: Pangalactic_Control_V1_HubSnapshot, now: Double) {
        self.settings = settings
        if s.hasModel { model = s.model }
        if !s.modelInfo.isEmpty { modelInfo = Array(s.modelInfo) }
        epoch = s.epoch
        problem = s.problem.isEmpty ? nil : s.problem
        for r in s.nodes {
            var entry = NodeEntry(id: r.nodeID, name: r.name, address: r.address, budgetBytes: Int(r.memoryBudgetBytes),
                                  bytesPerSecond: r.speedBytesPerSecond, version: r.version,
                                  liveness: r.dead ? .dead : .recovering, lastHeard: now)
            entry.draining = r.draining
            entry.servingEpoch = s.epoch
            entry.diedAt = r.dead ? now : nil
            nodes[r.nodeID] = entry
            order.append(r.nodeID)
        }
        if let footprint, !s.stages.isEmpty {
            let stages = s.stages.map { (nodeID: $0.nodeID, layers: Int($0.firstLayer) ..< Int($0.endLayer)) }
            let speeds = nodes.mapValues(\.bytesPerSecond)
            plan = planner.evaluate(model: footprint, stages: stages, speeds: speeds)
        }
        note("restored from snapshot: \(nodes.count) nodes, epoch \(epoch)")
    }

    // MARK: Helpers

    static func validate(_ m: Pangalactic_Control_V1_ModelLayout) throws(HubError) {
        guard m.digest.count == 32 else { throw .invalid("model digest must be 32 bytes") }
        guard m.layerCount > 0, m.layerCount <= 4096, m.layerBytes.count == Int(m.layerCount) else {
            throw .invalid("model layout: \(m.layerBytes.count) layer sizes for \(m.layerCount) layers")
        }
        let cap = UInt64(1) << 48
        guard m.layerBytes.allSatisfy({ $0 < cap }), m.embeddingBytes < cap, m.outputBytes < cap,
              m.kvBytesPerLayerPosition < (1 << 32) else { throw .invalid("model layout: a size is out of range") }
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var s = ""
        for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 15)]) }
        return s
    }

    static func ms(_ seconds: Double) -> String {
        let x = (seconds * 1e4).rounded() / 10
        return "\(x)"
    }

    /// Equal-length comparison whose time does not depend on where the bytes differ.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0 ..< max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0 && a.count == b.count
    }
}
