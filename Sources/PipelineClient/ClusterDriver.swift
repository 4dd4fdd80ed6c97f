import ClusterTrust
import ControlPlane
import Foundation
import Logging
import StarStream
import Synchronization

/// A route plan as a driver needs it.
public struct RoutePlanSummary: Sendable, Equatable {
    public var epoch: UInt64
    /// Every stage serves this epoch (node 0's ring is complete).
    public var ready: Bool
    /// Why there is no plan (the cluster cannot hold the model, say); nil when there is one.
    public var problem: String?
    /// Node 0's StarStream address.
    public var entry: String?
    public var modelDigest: [UInt8]
    public var contextLength: Int

    public init(epoch: UInt64, ready: Bool, problem: String?, entry: String?, modelDigest: [UInt8], contextLength: Int) {
        self.epoch = epoch
        self.ready = ready
        self.problem = problem
        self.entry = entry
        self.modelDigest = modelDigest
        self.contextLength = contextLength
    }
}

/// Where a cluster driver gets route plans: the hub, or a fixed plan in tests.
public protocol RoutePlanSource: Sendable {
    func currentPlan() async throws -> RoutePlanSummary
}

/// Route plans from the hub's `GetRoutePlan`.
public struct HubRoutePlans: RoutePlanSource {
    public let connection: HubConnection

    public init(connection: HubConnection) {
        self.connection = connection
    }

    public func currentPlan() async throws -> RoutePlanSummary {
        let plan = try await connection.control.getRoutePlan(.init(), options: HubConnection.deadline(seconds: 2))
        return RoutePlanSummary(epoch: plan.epoch, ready: plan.ready, problem: plan.problem.isEmpty ? nil : plan.problem,
                                entry: plan.stages.first?.address, modelDigest: Array(plan.modelDigest),
                                contextLength: Int(plan.contextLength))
    }
}

/// Runs requests on whatever pipeline the hub currently plans, and carries them across
/// failures without losing a token.
///
/// For each request it keeps the token history (prompt plus generated tokens) and how far the
/// seeded sampler has drawn. When the pipeline fails under a request (a node died, the hub
/// re-planned, a link reset), it waits for the next ready plan, replays the history as a new
/// prompt with the sampler advanced past the draws already made, and goes on. Prefill and
/// decode give bit-identical logits and the F32 wire is exact, so with the same seed the client
/// gets exactly the text of an uninterrupted run: a pause, never an error. Only when the cluster
/// cannot hold the model (the plan names a problem) or no plan becomes ready within the failover
/// timeout does the request fail.
public final class ClusterDriver: Sendable {
    private let source: RoutePlanSource
    private let clusterToken: String
    private let logger: Logger
    /// How long a request waits for a working pipeline before it fails.
    public let failoverTimeoutSeconds: Double
    /// A request that has failed over this many times fails for good (a cluster that keeps
    /// breaking under it should not hold the client forever).
    public let maxReplays = 32
    /// The driver's connection to the current plan's node 0.
    private let link = Mutex<(epoch: UInt64, entry: String, driver: PipelineDriver)?>(nil)
    /// Replays so far (tests and logs).
    public let replays = Atomic<Int>(0)

    private let security: TransportSecurity

    public init(source: RoutePlanSource, clusterToken: String, security: TransportSecurity = .insecure, failoverTimeoutSeconds: Double = 60,
                logger: Logger = Logger(label: "pangalactic.driver")) {
        self.source = source
        self.clusterToken = clusterToken
        self.security = security
        self.failoverTimeoutSeconds = failoverTimeoutSeconds
        self.logger = logger
    }

    /// Runs `request`; the stream yields its tokens, then exactly one `done` or `failed`.
    /// Cancelling the consuming task cancels the request.
    public func events(_ request: PipelineRequest) -> AsyncStream<PipelineEvent> {
        AsyncStream { continuation in
            let handle = submit(request) { event in
                continuation.yield(event)
                switch event {
                case .done, .failed: continuation.finish()
                case .token: break
                }
            }
            continuation.onTermination = { reason in
                if case .cancelled = reason { handle.cancel() }
            }
        }
    }

    /// Starts `request`. `onEvent` gets its tokens, then exactly one `done` or `failed`; it is
    /// called on the connection's event loop as the tokens arrive (no task hop per token), and
    /// from a task when the request fails over or fails before it reaches a pipeline.
    @discardableResult
    public func submit(_ request: PipelineRequest, onEvent: @escaping @Sendable (PipelineEvent) -> Void) -> ClusterRequest {
        let r = ClusterRequest(request: request, onEvent: onEvent)
        r.task.withLock { $0 = Task { await self.attempt(r) } }
        return r
    }

    /// Whether a failure may be survived by replaying on a newer plan.
    static func isRetryable(_ error: PipelineError) -> Bool {
        switch error {
        case let .remote(code, _):
            return [StarStreamErrorCode.pipelineBroken, StarStreamErrorCode.busy, StarStreamErrorCode.idleTimeout,
                    StarStreamErrorCode.internalError, StarStreamErrorCode.unknownSequence].contains(code)
        case .connectionLost, .timedOut, .connectFailed, .refused:
            return true
        case .invalidRequest, .notDeployed:
            return false
        }
    }

    /// Puts the request on a pipeline: the current plan's, or after a failure the next one,
    /// replaying what it has generated so far.
    private func attempt(_ r: ClusterRequest) async {
        let (failedEpoch, failedAt, lastError, attempts) = r.state.withLock { s in
            s.attempts += 1
            return (s.failedEpoch, s.failedAt, s.lastError, s.attempts)
        }
        if attempts > maxReplays + 1, let lastError { return r.finish(.failed(lastError)) }
        let connection: (UInt64, PipelineDriver)
        do {
            connection = try await pipeline(after: failedEpoch, failedAt: failedAt)
        } catch let error as PipelineError {
            return r.finish(.failed(error))
        } catch {
            if !r.isCancelled { r.finish(.failed(lastError ?? .connectFailed("\(error)"))) }
            return
        }
        let (epoch, driver) = connection
        let request = r.request
        let generated = r.state.withLock { $0.generated }
        let remaining = request.maxNewTokens - generated.count
        if remaining <= 0 { return r.finish(.done(.length, generated: generated.count)) }
        var replay = request
        replay.prompt = request.prompt + generated
        replay.maxNewTokens = remaining
        replay.history = Array((request.history + generated).suffix(Int(request.sampling.penaltyLastN)))
        replay.randomDraws = request.randomDraws + (request.sampling.temperature > 0 ? UInt64(generated.count) : 0)
        if failedEpoch != nil {
            replays.add(1, ordering: .relaxed)
            logger.info("replaying a request on a new pipeline",
                        metadata: ["epoch": "\(epoch)", "tokens": "\(replay.prompt.count)", "pause_ms": "\(Int((Self.now() - failedAt) * 1000))"])
        }
        do {
            let sequence = try driver.submit(replay) { [self] event in received(event, for: r, epoch: epoch, on: driver) }
            if !r.attach(driver: driver, sequence: sequence) { driver.cancel(sequence) }
        } catch {
            received(.failed(error), for: r, epoch: epoch, on: driver)
        }
    }

    /// An event of the request's current sequence (on the connection's event loop).
    private func received(_ event: PipelineEvent, for r: ClusterRequest, epoch: UInt64, on driver: PipelineDriver) {
        switch event {
        case let .token(token):
            guard r.state.withLock({ s -> Bool in
                guard !s.finished else { return false }
                s.generated.append(token.tokenID)
                return true
            }) else { return }
            r.onEvent(.token(token))
        case let .done(cause, _):
            r.finish(.done(cause, generated: r.state.withLock { $0.generated.count }))
        case let .failed(error) where Self.isRetryable(error) && !r.isCancelled:
            logger.notice("pipeline failed under a request; waiting for the next plan", metadata: ["epoch": "\(epoch)", "error": "\(error)"])
            r.state.withLock { s in
                s.lastError = error
                s.failedEpoch = epoch
                s.failedAt = Self.now()
                s.sequence = nil
            }
            if Self.brokeTheConnection(error) { dropLink(driver) }
            r.task.withLock { $0 = Task { await self.attempt(r) } }
        case let .failed(error):
            r.finish(.failed(error))
        }
    }

    /// A connection to node 0 of a ready plan: a newer epoch than the one that failed, or the
    /// same epoch again after a second (a link reset that did not need a re-plan).
    private func pipeline(after failed: UInt64?, failedAt: Double) async throws -> (UInt64, PipelineDriver) {
        let deadline = Self.now() + failoverTimeoutSeconds
        var lastProblem = "no ready pipeline"
        while true {
            try Task.checkCancellation()
            if let current = link.withLock({ $0 }), failed.map({ current.epoch > $0 }) ?? true {
                return (current.epoch, current.driver)
            }
            do {
                let plan = try await source.currentPlan()
                if let problem = plan.problem { throw PipelineError.notDeployed(problem) }
                let fresh = failed.map { plan.epoch > $0 || Self.now() - failedAt > 1 } ?? true
                if plan.ready, fresh, let entry = plan.entry {
                    return try await connect(epoch: plan.epoch, entry: entry, digest: plan.modelDigest)
                }
                lastProblem = plan.ready ? "waiting for a new plan" : "the pipeline of epoch \(plan.epoch) is not ready"
            } catch let error as PipelineError {
                if case .notDeployed = error { throw error }
                lastProblem = "\(error)"
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                lastProblem = "hub: \(error)"
            }
            if Self.now() > deadline {
                throw PipelineError.connectFailed("no ready pipeline within \(failoverTimeoutSeconds) s (\(lastProblem))")
            }
            logger.debug("waiting for a pipeline", metadata: ["why": "\(lastProblem)"])
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func connect(epoch: UInt64, entry: String, digest: [UInt8]) async throws -> (UInt64, PipelineDriver) {
        if let current = link.withLock({ $0 }), current.epoch >= epoch { return (current.epoch, current.driver) }
        guard let (host, port) = ControlAddress.parse(entry) else { throw PipelineError.connectFailed("bad node 0 address \(entry)") }
        let driver = try await PipelineDriver.connect(host: host, port: port, clusterToken: clusterToken, modelDigest: digest, security: security)
        // Another request may have connected meanwhile: keep the newer connection, close the other.
        let (kept, stale) = link.withLock { l -> ((UInt64, PipelineDriver), PipelineDriver?) in
            if let current = l, current.epoch >= epoch { return ((current.epoch, current.driver), driver) }
            let old = l?.driver
            l = (epoch, entry, driver)
            return ((epoch, driver), old)
        }
        if let stale { Task { await stale.close() } }
        return kept
    }

    /// Whether the failure means the connection to node 0 (or its ring) is gone, so every
    /// request on it needs a new one; a busy or idle sequence leaves it usable.
    static func brokeTheConnection(_ error: PipelineError) -> Bool {
        switch error {
        case let .remote(code, _): code == StarStreamErrorCode.pipelineBroken
        case .connectionLost, .refused, .connectFailed: true
        case .timedOut, .invalidRequest, .notDeployed: false
        }
    }

    /// The connection failed a request; the next request gets a new one.
    private func dropLink(_ driver: PipelineDriver) {
        let dropped = link.withLock { l -> Bool in
            guard let current = l, current.driver === driver else { return false }
            l = nil
            return true
        }
        if dropped { Task { await driver.close() } }
    }

    public func close() async {
        let driver = link.withLock { l in
            defer { l = nil }
            return l?.driver
        }
        await driver?.close()
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

/// One request a `ClusterDriver` runs: its history (the tokens passed to the client so far),
/// where it runs now, and how its failures went. Cancel it to stop it wherever it is.
public final class ClusterRequest: Sendable {
    struct State {
        var generated: [Int32] = []
        var failedEpoch: UInt64?
        var failedAt = 0.0
        var lastError: PipelineError?
        var attempts = 0
        var sequence: (driver: PipelineDriver, id: UInt64)?
        var finished = false
        var cancelled = false
    }

    let request: PipelineRequest
    let onEvent: @Sendable (PipelineEvent) -> Void
    let state = Mutex(State())
    let task = Mutex<Task<Void, Never>?>(nil)

    init(request: PipelineRequest, onEvent: @escaping @Sendable (PipelineEvent) -> Void) {
        self.request = request
        self.onEvent = onEvent
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Records where the request runs now; false when it was cancelled meanwhile.
    func attach(driver: PipelineDriver, sequence: UInt64) -> Bool {
        state.withLock { s in
            guard !s.cancelled, !s.finished else { return false }
            s.sequence = (driver, sequence)
            return true
        }
    }

    /// Delivers the last event, once.
    func finish(_ event: PipelineEvent) {
        let first = state.withLock { s -> Bool in
            defer { s.finished = true }
            return !s.finished
        }
        if first { onEvent(event) }
    }

    /// Stops the request: its sequence is cancelled on the ring, and it ends with DONE(cancelled).
    public func cancel() {
        let (sequence, generated) = state.withLock { s -> ((driver: PipelineDriver, id: UInt64)?, Int) in
            s.cancelled = true
            return (s.sequence, s.generated.count)
        }
        task.withLock { $0?.cancel() }
        sequence.map { $0.driver.cancel($0.id) }
        finish(.done(.cancelled, generated: generated))
    }
}
