#if canImport(Glibc)
import Glibc
#endif
import ControlPlane
import Dispatch
import Foundation
import Logging
import Synchronization

/// The hub's shared state: the `ClusterState` behind a lock, the heartbeat streams to push
/// assignments on, and the store every change is saved to. All the rules live in
/// `ClusterState`; this class only serializes access, logs the events, saves snapshots and
/// pushes new assignments the moment the epoch changes.
public final class HubCore: Sendable {
    public let settings: HubSettings
    private let state: Mutex<ClusterState>
    private let store: ClusterStore
    private let logger: Logger
    private let clock: @Sendable () -> Double
    /// Open heartbeat streams by node id, each with a serial number so that a stream that ends
    /// after its node reconnected does not remove the new one.
    private let streams = Mutex<[String: (serial: UInt64, push: AsyncStream<Pangalactic_Control_V1_HubDirective>.Continuation)]>([:])
    private let streamSerial = Atomic<UInt64>(0)
    private let snapshotVersion = Atomic<UInt64>(0)
    /// Set while the hub stops: streams that end then are the hub's doing, not node deaths.
    private let shuttingDown = Atomic<Bool>(false)
    /// Snapshots are written here, in order, so that a slow disk (fsync) never holds up the
    /// RPCs that changed the state; the store drops a version older than one it holds.
    private let saves = DispatchQueue(label: "pangalactic.hub.snapshots")

    /// Starts from `store`'s snapshot when it has one.
    public init(settings: HubSettings, store: ClusterStore, logger: Logger,
                clock: @escaping @Sendable () -> Double = HubCore.monotonicSeconds) throws {
        self.settings = settings
        self.store = store
        self.logger = logger
        self.clock = clock
        if let snapshot = try store.load() {
            state = Mutex(ClusterState(settings: settings, snapshot: snapshot, now: clock()))
        } else {
            state = Mutex(ClusterState(settings: settings))
        }
        flush(saving: false)
    }

    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Runs `body` on the state; afterwards logs its events and, when the epoch or registry
    /// changed, saves a snapshot and pushes every connected node its assignment.
    private func update<T>(_ body: (inout ClusterState) throws(HubError) -> T) throws(HubError) -> T {
        let result: Result<T, HubError> = state.withLock { s in
            do throws(HubError) { return .success(try body(&s)) } catch { return .failure(error) }
        }
        flush(saving: true)
        return try result.get()
    }

    /// Logs pending events; if there were any, saves a snapshot and pushes assignments.
    private func flush(saving: Bool) {
        let (events, snapshot, version) = state.withLock { s -> ([HubEvent], Pangalactic_Control_V1_HubSnapshot?, UInt64) in
            let events = s.takeEvents()
            guard !events.isEmpty else { return (events, nil, 0) }
            return (events, s.snapshot, snapshotVersion.add(1, ordering: .relaxed).newValue)
        }
        for e in events {
            var metadata: Logger.Metadata = ["epoch": "\(e.epoch)"]
            if let node = e.node { metadata["node"] = "\(node)" }
            logger.info("\(e.message)", metadata: metadata)
        }
        guard let snapshot else { return }
        if saving { save(snapshot, version: version) }
        pushAssignments()
    }

    // MARK: Calls

    public func register(_ request: Pangalactic_Control_V1_RegisterRequest) throws(HubError) -> Pangalactic_Control_V1_RegisterReply {
        let now = clock()
        let registered = try update { s throws(HubError) in try s.register(request, now: now) }
        var reply = Pangalactic_Control_V1_RegisterReply()
        reply.needsModelInfo = registered.needsModelInfo
        reply.epoch = registered.epoch
        reply.heartbeatIntervalSeconds = settings.heartbeatIntervalSeconds
        return reply
    }

    public func setModelInfo(_ bytes: [UInt8], digest: [UInt8]) throws(HubError) {
        try update { s throws(HubError) in try s.setModelInfo(bytes, digest: digest) }
        logger.info("model metadata stored", metadata: ["bytes": "\(bytes.count)"])
        flushSnapshot()
    }

    /// Saves a snapshot even though no event changed the epoch (the model's metadata arrived).
    private func flushSnapshot() {
        let (snapshot, version) = state.withLock { s in (s.snapshot, snapshotVersion.add(1, ordering: .relaxed).newValue) }
        save(snapshot, version: version)
    }

    private func save(_ snapshot: Pangalactic_Control_V1_HubSnapshot, version: UInt64) {
        let (store, logger) = (self.store, self.logger)
        saves.async {
            do { try store.save(snapshot, version: version) } catch { logger.error("cannot save the hub's state", metadata: ["error": "\(error)"]) }
        }
    }

    /// Returns once every snapshot queued so far is in the store.
    public func waitForSaves() {
        saves.sync {}
    }

    public var modelInfo: (bytes: [UInt8], digest: [UInt8])? {
        state.withLock { s in
            if let info = s.modelInfo, let model = s.model { return (info, Array(model.digest)) }
            // A hub fed by a store knows the model before any node registers.
            if s.model == nil, let seeded = settings.storeModel { return (seeded.metadata, seeded.digest) }
            return nil
        }
    }

    /// A heartbeat arrived; returns the assignment to send when the node is behind the current
    /// epoch, nil when it is current, and throws when the node is unknown.
    public func heartbeat(_ h: Pangalactic_Control_V1_NodeHeartbeat) throws(HubError) -> Pangalactic_Control_V1_Assignment? {
        let now = clock()
        return try update { s throws(HubError) in
            guard s.heartbeat(h, now: now) else { throw .unknownNode(h.nodeID) }
            return s.isCurrent(h.nodeID) ? nil : s.assignment(for: h.nodeID)
        }
    }

    public func drain(_ id: String) throws(HubError) -> Pangalactic_Control_V1_DrainReply {
        let replanned = try update { s throws(HubError) in try s.drain(id) }
        var reply = Pangalactic_Control_V1_DrainReply()
        reply.epoch = state.withLock { $0.epoch }
        reply.replanned = replanned
        reply.message = replanned ? "re-planned without this node" : (state.withLock { $0.problem } ?? "the model is not deployed")
        return reply
    }

    public var routePlan: Pangalactic_Control_V1_RoutePlan { state.withLock { $0.routePlan } }

    public var status: Pangalactic_Control_V1_ClusterStatusReply {
        let now = clock()
        return state.withLock { $0.status(now: now) }
    }

    public var epoch: UInt64 { state.withLock { $0.epoch } }

    /// Marks nodes dead that stopped heartbeating; call it a few times per heartbeat interval.
    public func checkLiveness() {
        guard !shuttingDown.load(ordering: .relaxed) else { return }
        let now = clock()
        try? update { s throws(HubError) in s.checkLiveness(now: now) }
    }

    // MARK: Heartbeat streams

    /// Opens the push channel of a node's heartbeat stream. Returns its serial (for
    /// `closeStream`), the directives to write, and the channel's input (for answers to
    /// heartbeats, so that one task writes everything).
    public func openStream(for id: String) -> (UInt64, AsyncStream<Pangalactic_Control_V1_HubDirective>,
                                               AsyncStream<Pangalactic_Control_V1_HubDirective>.Continuation) {
        let (stream, continuation) = AsyncStream<Pangalactic_Control_V1_HubDirective>.makeStream(bufferingPolicy: .bufferingNewest(8))
        let serial = streamSerial.add(1, ordering: .relaxed).newValue
        let old = streams.withLock { s in
            defer { s[id] = (serial, continuation) }
            return s[id]
        }
        old?.push.finish()
        return (serial, stream, continuation)
    }

    /// The hub is stopping: from now on a closing heartbeat stream says nothing about its node,
    /// and the snapshot keeps the cluster as it was (a restarted hub recovers it).
    public func beginShutdown() {
        shuttingDown.store(true, ordering: .relaxed)
        waitForSaves()
    }

    /// The stream `serial` of node `id` ended: the node is dead, unless it has already opened a
    /// new stream (it reconnected), or the hub itself is stopping.
    public func closeStream(for id: String, serial: UInt64) {
        let current = streams.withLock { s -> Bool in
            guard let entry = s[id], entry.serial == serial else { return false }
            s[id] = nil
            entry.push.finish()
            return true
        }
        guard current, !shuttingDown.load(ordering: .relaxed) else { return }
        let now = clock()
        try? update { s throws(HubError) in s.streamBroke(id, now: now) }
    }

    private func pushAssignments() {
        let targets = streams.withLock { $0.map { ($0.key, $0.value.push) } }
        guard !targets.isEmpty else { return }
        let assignments = state.withLock { s in targets.map { s.isCurrent($0.0) ? nil : s.assignment(for: $0.0) } }
        for ((_, push), assignment) in zip(targets, assignments) {
            guard let assignment else { continue }
            var directive = Pangalactic_Control_V1_HubDirective()
            directive.assignment = assignment
            push.yield(directive)
        }
    }
}
