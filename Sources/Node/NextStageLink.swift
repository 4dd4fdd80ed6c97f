#if canImport(Glibc)
import Glibc
#endif
import ClusterTrust
import Logging
import NIOCore
import NIOPosix
import StarStream
import Synchronization

/// The outbound connection to the next stage. It connects (and reconnects) in the background,
/// checks the next node's HELLO (cluster token, model digest, and that its layers continue
/// ours), and only then carries frames. Frames sent while it is down are dropped: node 0 finds
/// a broken ring through its probes and fails the sequences cleanly.
final class NextStageLink: @unchecked Sendable {
    private let group: EventLoopGroup
    private let address: NodeAddress
    private let hello: Hello
    private let expectedFirstLayer: UInt32
    private let limits: StarStreamLimits
    private let logger: Logger
    private let onDown: @Sendable () -> Void
    private let channel = Mutex<Channel?>(nil)
    private let stopped = Atomic<Bool>(false)
    private let lastComplaint = Mutex<String>("")
    /// Connection attempts since the link was last up: the first second retries every 50 ms
    /// (a re-planned ring comes together quickly), then every 200 ms.
    private let failedAttempts = Atomic<Int>(0)
    /// Recent PING round trips to the next stage, in nanoseconds (newest last, at most 32).
    private let roundTrips = Mutex<[UInt64]>([])

    private let security: TransportSecurity

    init(group: EventLoopGroup, address: NodeAddress, hello: Hello, expectedFirstLayer: UInt32, limits: StarStreamLimits,
         security: TransportSecurity, logger: Logger, onDown: @escaping @Sendable () -> Void) {
        self.security = security
        self.group = group
        self.address = address
        self.hello = hello
        self.expectedFirstLayer = expectedFirstLayer
        self.limits = limits
        self.logger = logger
        self.onDown = onDown
    }

    var isConnected: Bool { channel.withLock { $0 != nil } }

    /// Sends `frames` with one flush if the link is up; returns false (and drops them)
    /// otherwise. One flush keeps a batch's rows together on the wire, so the next stage can
    /// run them as one batch too.
    @discardableResult
    func send(_ frames: [StarStreamFrame]) -> Bool {
        guard let ch = channel.withLock({ $0 }) else { return false }
        if frames.count == 1 {
            ch.writeAndFlush(frames[0], promise: nil)
        } else {
            ch.eventLoop.execute {
                for frame in frames { ch.write(frame, promise: nil) }
                ch.flush()
            }
        }
        return true
    }

    func start() { connect(after: 0) }

    /// Sends a PING timed by its nonce; the PONG's round trip feeds `hopMillisecondsP50`.
    func ping() {
        send([StarStreamFrame(payload: .ping(Self.nanoseconds()))])
    }

    /// Half the median of the recent PING round trips: one hop to the next stage, without compute.
    var hopMillisecondsP50: Double? {
        let sorted = roundTrips.withLock { $0 }.sorted()
        guard !sorted.isEmpty else { return nil }
        return Double(sorted[sorted.count / 2]) / 2e6
    }

    fileprivate func pongArrived(_ nonce: UInt64) {
        let now = Self.nanoseconds()
        guard now >= nonce, now - nonce < 60_000_000_000 else { return }
        roundTrips.withLock { r in
            r.append(now - nonce)
            if r.count > 32 { r.removeFirst(r.count - 32) }
        }
    }

    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        let ch = channel.withLock { c in
            defer { c = nil }
            return c
        }
        ch?.close(promise: nil)
    }

    private func complain(_ message: String) {
        // Log each distinct reason once, not every retry.
        let fresh = lastComplaint.withLock { last in
            defer { last = message }
            return last != message
        }
        if fresh { logger.notice("\(message)") }
    }

    private func connect(after delay: Double) {
        guard !stopped.load(ordering: .relaxed) else { return }
        group.next().scheduleTask(in: .milliseconds(Int64(delay * 1000))) { [self] in
            attempt()
        }
    }

    private func attempt() {
        guard !stopped.load(ordering: .relaxed) else { return }
        let gate = StarStreamGate()
        let handshake = HandshakeHandler(expected: hello, expectedFirstLayer: expectedFirstLayer, link: self, gate: gate)
        let limits = self.limits
        let security = self.security
        do { try security.requireAllowed(host: address.host) } catch {
            complain("next stage \(address): \(error)")
            connect(after: 1)
            return
        }
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    // A listener at the next address without a node certificate of this cluster
                    // never sees a frame: the handshake or the role check ends the connection.
                    _ = try security.addHandlers(to: channel.pipeline.syncOperations, side: .client, accepting: [.node]) { [self] reason in
                        refused(reason)
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(StarStreamFrameDecoder(limits: limits, gate: gate)),
                        StarStreamErrorHandler(),
                        MessageToByteHandler(StarStreamFrameEncoder()),
                        handshake,
                    ])
                }
            }
        bootstrap.connect(host: address.host, port: address.port).whenComplete { [self] result in
            switch result {
            case let .success(ch):
                ch.writeAndFlush(StarStreamFrame(payload: .hello(hello)), promise: nil)
                ch.closeFuture.whenComplete { [self] _ in
                    let wasUp = channel.withLock { c -> Bool in
                        guard let current = c, current === ch else { return false }
                        c = nil
                        return true
                    }
                    if wasUp {
                        onDown()
                    }
                    connect(after: retryDelay())
                }
            case let .failure(error):
                complain("next stage \(address) unreachable (\(error)); retrying")
                connect(after: retryDelay())
            }
        }
    }

    private func retryDelay() -> Double {
        failedAttempts.add(1, ordering: .relaxed).newValue <= 20 ? 0.05 : 0.2
    }

    fileprivate func accepted(_ ch: Channel) {
        failedAttempts.store(0, ordering: .relaxed)
        if stopped.load(ordering: .relaxed) { ch.close(promise: nil); return }
        channel.withLock { $0 = ch }
        lastComplaint.withLock { $0 = "" }
        logger.info("connected to next stage", metadata: ["next": "\(address)"])
    }

    fileprivate func refused(_ reason: String) {
        complain("next stage \(address) refused: \(reason)")
    }

    /// Waits for the next node's HELLO. After it, the next stage sends only PONGs this node acts
    /// on (its answers travel the ring forward); other frames are ignored.
    private final class HandshakeHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = StarStreamFrame
        let expected: Hello
        let expectedFirstLayer: UInt32
        unowned let link: NextStageLink
        let gate: StarStreamGate
        var ready = false

        init(expected: Hello, expectedFirstLayer: UInt32, link: NextStageLink, gate: StarStreamGate) {
            self.expected = expected
            self.expectedFirstLayer = expectedFirstLayer
            self.link = link
            self.gate = gate
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            guard ready else {
                guard case let .hello(peer) = frame.payload else {
                    if case let .error(code, message) = frame.payload { link.refused("error \(code): \(message)") }
                    context.close(promise: nil)
                    return
                }
                if let problem = HelloPolicy.check(peer, against: expected, role: .node) {
                    link.refused(problem)
                    context.close(promise: nil)
                } else if peer.firstLayer != expectedFirstLayer {
                    link.refused("it serves layers \(peer.firstLayer)..<\(peer.endLayer), expected them to start at \(expectedFirstLayer)")
                    context.close(promise: nil)
                } else {
                    ready = true
                    gate.open()
                    link.accepted(context.channel)
                }
                return
            }
            if case let .pong(nonce) = frame.payload { link.pongArrived(nonce) }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}

