import ClusterTrust
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import StarStream
import Synchronization

/// One generation request as a driver sends it into a pipeline.
public struct PipelineRequest: Sendable {
    public var prompt: [Int32]
    public var maxNewTokens: Int
    public var sampling: WireSampling
    /// Tokens that end the sequence (end of generation); node 0 checks them.
    public var stopTokens: [Int32]
    /// The prompt tail the sampler's penalties should see (the last `penalty_last_n` tokens).
    public var history: [Int32]
    public var logprobs: Bool
    /// Random draws the sampler made before this request was replayed (see `SequenceOpen`).
    public var randomDraws: UInt64
    /// How many of the most likely tokens each TOKEN carries (0...20).
    public var topLogprobs: Int

    public init(prompt: [Int32], maxNewTokens: Int, sampling: WireSampling, stopTokens: [Int32],
                history: [Int32] = [], logprobs: Bool = false, randomDraws: UInt64 = 0, topLogprobs: Int = 0) {
        self.prompt = prompt
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.history = history
        self.logprobs = logprobs
        self.randomDraws = randomDraws
        self.topLogprobs = topLogprobs
    }
}

/// What a running request reports, in order: tokens, then exactly one `done` or `failed`.
public enum PipelineEvent: Sendable {
    /// A sampled token, with its logprob and alternatives when the request asked for them.
    case token(TokenMessage)
    case done(FinishCause, generated: Int)
    case failed(PipelineError)
}

/// Why a request or a connection failed.
public enum PipelineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Node 0 (or a stage behind it) answered with an ERROR frame.
    case remote(code: UInt16, message: String)
    /// The connection to node 0 is gone.
    case connectionLost
    /// Nothing arrived for the request within the stall timeout.
    case timedOut(seconds: Double)
    /// The request cannot be sent (empty prompt, too many tokens, bad frame).
    case invalidRequest(String)
    case connectFailed(String)
    case refused(String)
    /// The cluster cannot serve the model (its nodes cannot hold it): the hub's reason.
    case notDeployed(String)

    public var description: String {
        switch self {
        case let .remote(code, message): "pipeline error \(code): \(message)"
        case .connectionLost: "the connection to the pipeline was lost"
        case let .timedOut(s): "no answer from the pipeline for \(s) s"
        case let .invalidRequest(m): "invalid request: \(m)"
        case let .connectFailed(m): "cannot connect to the pipeline: \(m)"
        case let .refused(m): "the pipeline refused this driver: \(m)"
        case let .notDeployed(m): "the model is not deployed: \(m)"
        }
    }
}

/// Runs requests through a ring of pipeline nodes over one StarStream connection to node 0:
/// OPEN and PROMPT go in, TOKEN frames come back as the last node samples them (node 0 relays
/// the ring's tokens to the request's origin while it already runs the next step), then DONE.
/// Thread-safe; many requests may run at once on one driver.
public final class PipelineDriver: Sendable {
    private let channel: Channel
    private let group: EventLoopGroup
    private let ownsGroup: Bool
    private let state: Mutex<DriverState>
    private let sequenceBase: UInt64
    private let counter = Atomic<UInt64>(0)
    private let watchdog: Mutex<RepeatedTask?>
    /// When the last keepalive PING went out: node 0 closes a connection that is silent for its
    /// idle timeout (60 s by default), so an idle driver pings well within it.
    private let lastKeepalive = Atomic<UInt64>(PipelineDriver.now())
    private let keepaliveSeconds: Double
    /// Most token ids one PROMPT frame (prompt chunk) or OPEN (penalty history) carries, so
    /// every node's frame cap admits them.
    public static let maxTokensPerFrame = StarStreamLimits.maxTokensPerDriverFrame
    /// A request that hears nothing for this long fails with `timedOut`.
    public let stallTimeoutSeconds: Double
    /// The HELLO node 0 answered with.
    public let nodeHello: Hello

    struct DriverState {
        var handlers: [UInt64: Handler] = [:]
        var probes: [UInt64: CheckedContinuation<Void, Error>] = [:]
        var closed = false
    }

    struct Handler {
        var onEvent: @Sendable (PipelineEvent) -> Void
        var lastHeard: UInt64
    }

    /// Connects to node 0 at `host:port`, says HELLO as a driver, and waits for its HELLO.
    /// With mutual TLS, node 0's certificate must chain to the cluster's authority and name a node.
    public static func connect(host: String, port: Int, clusterToken: String, modelDigest: [UInt8],
                               security: TransportSecurity = .insecure,
                               stallTimeoutSeconds: Double = 30, keepaliveSeconds: Double = 10,
                               group: EventLoopGroup? = nil) async throws(PipelineError) -> PipelineDriver {
        do { try security.requireAllowed(host: host) } catch { throw .connectFailed("\(error)") }
        let refusal = Mutex<String?>(nil)
        let ownsGroup = group == nil
        let group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = DriverBox()
        let gate = StarStreamGate()
        let hello = Hello(role: .driver, clusterToken: clusterToken, modelDigest: modelDigest)
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try security.addHandlers(to: channel.pipeline.syncOperations, side: .client, accepting: [.node]) { reason in
                        refusal.withLock { $0 = reason }
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(StarStreamFrameDecoder(limits: StarStreamLimits(maxPayloadBytes: 1 << 20), gate: gate)),
                        StarStreamErrorHandler(),
                        MessageToByteHandler(StarStreamFrameEncoder()),
                        DriverHandler(box: box, gate: gate),
                    ])
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            if ownsGroup { try? await group.shutdownGracefully() }
            throw .connectFailed("\(host):\(port): \(error)")
        }
        let peer: Hello
        do {
            peer = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Hello, Error>) in
                box.helloWaiter.withLock { $0 = continuation }
                channel.writeAndFlush(StarStreamFrame(payload: .hello(hello)), promise: nil)
                channel.eventLoop.scheduleTask(in: .seconds(5)) {
                    box.resolveHello(.failure(PipelineError.refused("no HELLO from node 0 within 5 s")))
                }
            }
        } catch {
            try? await channel.close()
            if ownsGroup { try? await group.shutdownGracefully() }
            if let reason = refusal.withLock({ $0 }) { throw .refused("\(host):\(port) is not node 0 of this cluster: \(reason)") }
            throw (error as? PipelineError) ?? .refused("\(error)")
        }
        // Node 0 must prove it belongs to the cluster too (a listener at node 0's address that
        // cannot must never see a prompt) and must really be node 0.
        if let problem = HelloPolicy.check(peer, against: hello, role: .node) ?? (peer.firstLayer == 0 ? nil : "it serves layers \(peer.firstLayer)..<\(peer.endLayer), not node 0's") {
            try? await channel.close()
            if ownsGroup { try? await group.shutdownGracefully() }
            throw .refused("\(host):\(port) is not node 0 of this cluster: \(problem)")
        }
        let driver = PipelineDriver(channel: channel, group: group, ownsGroup: ownsGroup, nodeHello: peer,
                                    stallTimeoutSeconds: stallTimeoutSeconds, keepaliveSeconds: keepaliveSeconds)
        box.driver.withLock { $0 = driver }
        if !channel.isActive { driver.connectionClosed() }
        return driver
    }

    private init(channel: Channel, group: EventLoopGroup, ownsGroup: Bool, nodeHello: Hello, stallTimeoutSeconds: Double,
                 keepaliveSeconds: Double) {
        self.keepaliveSeconds = max(0.05, keepaliveSeconds)
        self.channel = channel
        self.group = group
        self.ownsGroup = ownsGroup
        self.nodeHello = nodeHello
        self.stallTimeoutSeconds = stallTimeoutSeconds
        state = Mutex(DriverState())
        sequenceBase = UInt64.random(in: 1 ... UInt64(UInt32.max)) << 32
        watchdog = Mutex(nil)
        let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .milliseconds(500)) { [weak self] _ in
            self?.checkStalls()
        }
        watchdog.withLock { $0 = task }
    }

    /// Starts `request`; `onEvent` is called on the connection's event loop for each token and
    /// once at the end. Returns the sequence id (for `cancel`).
    @discardableResult
    public func submit(_ request: PipelineRequest, onEvent: @escaping @Sendable (PipelineEvent) -> Void) throws(PipelineError) -> UInt64 {
        guard !request.prompt.isEmpty else { throw .invalidRequest("empty prompt") }
        guard request.maxNewTokens >= 0, request.maxNewTokens <= Int(UInt32.max) else { throw .invalidRequest("max tokens out of range") }
        guard request.stopTokens.count <= SequenceOpen.maxStopTokens else { throw .invalidRequest("more than \(SequenceOpen.maxStopTokens) stop tokens") }
        let id = sequenceBase | (counter.add(1, ordering: .relaxed).newValue & 0xFFFF_FFFF)
        let open = SequenceOpen(promptLength: UInt32(request.prompt.count), maxNewTokens: UInt32(request.maxNewTokens),
                                wantsLogprobs: request.logprobs, sampling: request.sampling, stopTokens: request.stopTokens,
                                history: Array(request.history.suffix(Self.maxTokensPerFrame)), randomDraws: request.randomDraws,
                                topLogprobs: request.topLogprobs)
        var frames = [StarStreamFrame(sequenceID: id, payload: .open(open))]
        var position = 0
        // Prompt chunks small enough for any node's frame cap.
        while position < request.prompt.count {
            let end = min(request.prompt.count, position + Self.maxTokensPerFrame / 2)
            frames.append(StarStreamFrame(sequenceID: id, position: UInt32(position),
                                          payload: .prompt(PromptChunk(firstPosition: UInt32(position), tokens: Array(request.prompt[position ..< end])))))
            position = end
        }
        var buffer = channel.allocator.buffer(capacity: 64 + 4 * request.prompt.count + 4 * open.history.count)
        for frame in frames {
            do { try StarStreamCodec.encode(frame, into: &buffer) } catch { throw .invalidRequest("\(error)") }
        }
        let closed = state.withLock { s -> Bool in
            if s.closed { return true }
            s.handlers[id] = Handler(onEvent: onEvent, lastHeard: Self.now())
            return false
        }
        if closed { throw .connectionLost }
        for frame in frames { channel.write(frame, promise: nil) }
        channel.flush()
        return id
    }

    /// The same as a stream of events; cancelling the consuming task cancels the request.
    public func events(_ request: PipelineRequest) -> AsyncStream<PipelineEvent> {
        AsyncStream { continuation in
            do {
                let id = try submit(request) { event in
                    continuation.yield(event)
                    switch event {
                    case .done, .failed: continuation.finish()
                    case .token: break
                    }
                }
                continuation.onTermination = { [weak self] reason in
                    if case .cancelled = reason { self?.cancel(id) }
                }
            } catch let error as PipelineError {
                continuation.yield(.failed(error))
                continuation.finish()
            } catch {
                continuation.yield(.failed(.invalidRequest("\(error)")))
                continuation.finish()
            }
        }
    }

    /// Stops a running request; node 0 frees it along the ring and answers DONE(cancelled).
    public func cancel(_ sequenceID: UInt64) {
        channel.writeAndFlush(StarStreamFrame(sequenceID: sequenceID, payload: .cancel), promise: nil)
    }

    /// Sends a probe around the whole ring (driver → node 0 → … → last → node 0 → driver) and
    /// returns the round trip in seconds: the latency of the StarStream hops without compute.
    public func probeRoundTrip(timeoutSeconds: Double = 5) async throws -> Double {
        let nonce = UInt64.random(in: 1 ... UInt64.max)
        let start = Self.now()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let closed = state.withLock { s -> Bool in
                if s.closed { return true }
                s.probes[nonce] = continuation
                return false
            }
            if closed { return continuation.resume(throwing: PipelineError.connectionLost) }
            channel.writeAndFlush(StarStreamFrame(payload: .probe(nonce)), promise: nil)
            channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeoutSeconds * 1e9))) { [self] in
                let waiter = state.withLock { $0.probes.removeValue(forKey: nonce) }
                waiter?.resume(throwing: PipelineError.timedOut(seconds: timeoutSeconds))
            }
        }
        return Double(Self.now() - start) * 1e-9
    }

    /// Waits until a probe makes it around the ring (the pipeline is complete), up to `seconds`.
    public func waitUntilReady(seconds: Double) async throws {
        let deadline = Self.now() + UInt64(seconds * 1e9)
        while true {
            do {
                _ = try await probeRoundTrip(timeoutSeconds: 1)
                return
            } catch {
                if Self.now() > deadline { throw error }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
    }

    public func close() async {
        watchdog.withLock { $0?.cancel() }
        try? await channel.close()
        connectionClosed()
        if ownsGroup { try? await group.shutdownGracefully() }
    }

    // MARK: Inbound

    fileprivate func received(_ frame: StarStreamFrame) {
        let id = frame.sequenceID
        switch frame.payload {
        case let .token(token):
            let handler = state.withLock { s -> Handler? in
                s.handlers[id]?.lastHeard = Self.now()
                return s.handlers[id]
            }
            handler?.onEvent(.token(token))
        case let .done(cause, generated):
            let handler = state.withLock { $0.handlers.removeValue(forKey: id) }
            handler?.onEvent(.done(cause, generated: Int(generated)))
        case let .error(code, message):
            if id == 0 {
                failAll(.remote(code: code, message: message))
            } else {
                let handler = state.withLock { $0.handlers.removeValue(forKey: id) }
                handler?.onEvent(.failed(.remote(code: code, message: message)))
            }
        case let .probe(nonce):
            let waiter = state.withLock { $0.probes.removeValue(forKey: nonce) }
            waiter?.resume()
        default:
            break
        }
    }

    fileprivate func connectionClosed() {
        failAll(.connectionLost)
    }

    private func failAll(_ error: PipelineError) {
        let (handlers, probes) = state.withLock { s -> ([Handler], [CheckedContinuation<Void, Error>]) in
            s.closed = true
            defer { s.handlers.removeAll(); s.probes.removeAll() }
            return (Array(s.handlers.values), Array(s.probes.values))
        }
        for h in handlers { h.onEvent(.failed(error)) }
        for p in probes { p.resume(throwing: error) }
    }

    /// Fails every request that has heard nothing for the stall timeout, and CANCELs it, so
    /// node 0 frees its slot (and the ring its caches) even though the request went quiet.
    private func checkStalls() {
        let now = Self.now()
        let last = lastKeepalive.load(ordering: .relaxed)
        if now > last, now - last > UInt64(keepaliveSeconds * 1e9) {
            lastKeepalive.store(now, ordering: .relaxed)
            channel.writeAndFlush(StarStreamFrame(payload: .ping(now)), promise: nil)
        }
        let limit = UInt64(stallTimeoutSeconds * 1e9)
        let stalled = state.withLock { s -> [(UInt64, Handler)] in
            let ids = s.handlers.filter { now > $0.value.lastHeard && now - $0.value.lastHeard > limit }.map(\.key)
            return ids.compactMap { id in s.handlers.removeValue(forKey: id).map { (id, $0) } }
        }
        for (id, h) in stalled {
            cancel(id)
            h.onEvent(.failed(.timedOut(seconds: stallTimeoutSeconds)))
        }
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Connects the channel handler (created before the driver exists) to the driver.
private final class DriverBox: Sendable {
    let driver = Mutex<PipelineDriver?>(nil)
    let helloWaiter = Mutex<CheckedContinuation<Hello, Error>?>(nil)

    func resolveHello(_ result: Result<Hello, Error>) {
        let waiter = helloWaiter.withLock { w in
            defer { w = nil }
            return w
        }
        waiter?.resume(with: result)
    }
}

private final class DriverHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = StarStreamFrame
    let box: DriverBox
    let gate: StarStreamGate

    init(box: DriverBox, gate: StarStreamGate) {
        self.box = box
        self.gate = gate
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let driver = box.driver.withLock({ $0 }) {
            driver.received(frame)
            return
        }
        switch frame.payload {
        case let .hello(hello):
            gate.open()
            box.resolveHello(.success(hello))
        case let .error(code, message): box.resolveHello(.failure(PipelineError.refused("error \(code): \(message)")))
        default: box.resolveHello(.failure(PipelineError.refused("expected HELLO, got \(frame.payload.frameType)")))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        box.resolveHello(.failure(PipelineError.connectionLost))
        box.driver.withLock { $0 }?.connectionClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
