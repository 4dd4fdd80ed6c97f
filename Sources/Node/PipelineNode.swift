#if canImport(Glibc)
import Glibc
#endif
import ClusterTrust
import GGUF
import Logging
import Models
import NIOCore
import NIOPosix
import StarStream
import Synchronization

/// One stage of a pipeline: a process that serves layers `A ..< B` of a model over StarStream.
///
/// It loads only its layers (plus the embedding on node 0 and the output head on the last
/// node), accepts HELLO-authenticated connections from its upstream stage (and, on node 0, from
/// drivers), keeps a KV cache per sequence, batches every ready sequence through its layers on
/// a compute thread, and sends the results to the next stage. Node 0 also watches the ring with
/// probes and fails every sequence with a clean ERROR when a stage disappears.
public final class PipelineNode: @unchecked Sendable {
    public let configuration: NodeConfiguration
    public let model: TransformerModel
    public let modelDigest: [UInt8]
    let scheduler: StageScheduler
    private let group: MultiThreadedEventLoopGroup
    private let hello: Hello
    private let limits: StarStreamLimits
    private var link: NextStageLink!
    private var serverChannel: Channel?
    private var probeTask: RepeatedTask?
    private let logger: Logger

    // Ring health (node 0).
    private let ring = RingHealth()
    private let stopped = Atomic<Bool>(false)
    private let probePrefix = UInt64.random(in: 1 ... UInt64(UInt32.max)) << 32
    private let probeCounter = Atomic<UInt64>(0)
    private let lastProbeReturn = Atomic<UInt64>(0)
    private let lastProbeSent = Atomic<UInt64>(0)
    private let driverProbes = Mutex<[UInt64: Channel]>([:])
    /// Inbound connections open now, against `configuration.maxConnections`.
    private let openConnections = Atomic<Int>(0)
    /// Monotonic second of the last "too many connections" log line (one per second at most).
    private let lastRefusalLog = Atomic<UInt64>(0)

    public var counters: StageCounters { scheduler.counters }
    public var isFirst: Bool { model.isFirst }
    public var isLast: Bool { model.isLast }
    /// Whether node 0 has seen a probe come back around the ring recently.
    public var isRingHealthy: Bool { ring.healthy.load(ordering: .relaxed) }

    /// Loads the model slice. Networking starts with `start()`.
    public convenience init(configuration: NodeConfiguration, logger: Logger = Logger(label: "pangalactic.node")) throws(NodeError) {
        let file: GGUFFile
        do { file = try GGUFFile(path: configuration.modelPath) } catch { throw .model("\(configuration.modelPath): \(error)") }
        let digest: [UInt8]
        do { digest = try file.modelDigest() } catch { throw .model("digest: \(error)") }
        try self.init(configuration: configuration, file: file, modelDigest: digest, logger: logger)
    }

    /// Loads the slice from a file that is already open (a node that the hub moves to other
    /// layers keeps its mapping and digest).
    public init(configuration: NodeConfiguration, file: GGUFFile, modelDigest: [UInt8], logger: Logger) throws(NodeError) {
        var configuration = configuration
        do { model = try TransformerModel(file: file, layers: configuration.layers) } catch { throw .model("\(error)") }
        self.modelDigest = modelDigest
        guard configuration.threads >= 1, configuration.maxSequences >= 1, configuration.maxBatchTokens >= 1,
              configuration.contextLength >= 1 else {
            throw .configuration("threads, max sequences, batch size and context must be at least 1")
        }
        configuration.contextLength = min(configuration.contextLength, model.config.trainedContextLength)
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "layers"] = "\(configuration.layers.lowerBound)..<\(configuration.layers.upperBound)"
        self.logger = logger
        let width = model.config.embeddingLength
        // Room for a batch of F32 rows, and for OPEN/PROMPT frames of a whole context of token ids
        // (drivers send prompts in chunks of at most 2048 tokens and at most 4096 history tokens).
        let tokenFrames = 64 + 8 * max(configuration.contextLength, StarStreamLimits.maxTokensPerDriverFrame)
        limits = StarStreamLimits(maxPayloadBytes: max(StarStreamLimits(maxBatchTokens: configuration.maxBatchTokens, width: width).maxPayloadBytes,
                                                       tokenFrames))
        hello = Hello(role: .node, clusterToken: configuration.clusterToken, modelDigest: modelDigest,
                      firstLayer: UInt32(configuration.layers.lowerBound), endLayer: UInt32(configuration.layers.upperBound))
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = LinkBox()
        let ring = self.ring
        let isFirst = configuration.layers.lowerBound == 0
        scheduler = StageScheduler(model: model, configuration: configuration,
                                   sendNext: { frames in box.link?.send(frames) ?? false },
                                   ringReady: { !isFirst || ring.healthy.load(ordering: .relaxed) }, logger: logger)
        let layerCount = UInt32(model.config.layerCount)
        let end = UInt32(configuration.layers.upperBound)
        link = NextStageLink(group: group, address: configuration.next, hello: hello,
                             expectedFirstLayer: end == layerCount ? 0 : end, limits: limits,
                             security: configuration.security, logger: logger,
                             onDown: { [unowned self] in self.nextStageLost() })
        box.link = link
    }

    /// Bytes of the model file this node's tensors occupy.
    public var shardBytes: Int { model.shardBytes }

    /// Times a hop to the next stage (a PING; see `hopMillisecondsP50`).
    public func pingNextStage() { link.ping() }

    /// Half the median PING round trip to the next stage: the cost of one hop.
    public var hopMillisecondsP50: Double? { link.hopMillisecondsP50 }

    /// Binds the listening socket, starts the compute thread, the link to the next stage and
    /// (node 0) the ring probes. Returns the bound port (useful with port 0).
    @discardableResult
    public func start() throws(NodeError) -> Int {
        do { try configuration.security.requireAllowed(host: configuration.listen.host) } catch { throw .configuration("\(error)") }
        scheduler.start()
        let high = max(4096, configuration.peerWriteBufferBytes)
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: high / 2, high: high))
            .childChannelInitializer { [unowned self] channel in
                guard self.admitConnection(channel) else {
                    return channel.eventLoop.makeFailedFuture(NodeError.network("connection limit reached"))
                }
                let gate = StarStreamGate()
                let idle = TimeAmount.nanoseconds(Int64(max(0.05, self.configuration.connectionIdleSeconds) * 1e9))
                let logger = self.logger
                return channel.eventLoop.makeCompletedFuture {
                    // TLS first: until the peer proves with a certificate of this cluster that it
                    // is a node or a gateway, nothing it sends reaches the frame decoder.
                    let certificate = try self.configuration.security.addHandlers(
                        to: channel.pipeline.syncOperations, side: .server, accepting: [.node, .gateway]) { reason in
                        logger.notice("peer refused", metadata: ["peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(reason)"])
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: idle),
                        ByteToMessageHandler(StarStreamFrameDecoder(limits: self.limits, gate: gate)),
                        StarStreamErrorHandler(onError: { [logger] error in
                            logger.notice("peer error", metadata: ["peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)"])
                        }),
                        MessageToByteHandler(StarStreamFrameEncoder()),
                        InboundConnectionHandler(node: self, gate: gate, certificate: certificate),
                    ])
                }
            }
        if let bytes = configuration.socketSendBufferBytes {
            bootstrap = bootstrap.childChannelOption(ChannelOptions.socketOption(.so_sndbuf), value: SocketOptionValue(max(1024, bytes)))
        }
        do {
            serverChannel = try bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).wait()
        } catch {
            scheduler.stop()
            throw .network("cannot listen on \(configuration.listen): \(error)")
        }
        link.start()
        if isFirst {
            // The timer runs every 50 ms; a probe goes out on each tick while the ring is not
            // known to be complete (so a new or re-planned ring is found within a round trip),
            // and once per probe interval after that.
            probeTask = group.next().scheduleRepeatedTask(initialDelay: .milliseconds(20), delay: .milliseconds(50)) { [unowned self] _ in
                self.probeTick()
            }
        }
        return serverChannel?.localAddress?.port ?? configuration.listen.port
    }

    /// Counts a new inbound connection, or refuses it (and says so, at most once a second) when
    /// `maxConnections` are already open, so a flood of connections cannot exhaust the node.
    private func admitConnection(_ channel: Channel) -> Bool {
        let open = openConnections.add(1, ordering: .relaxed).newValue
        guard open <= max(1, configuration.maxConnections) else {
            openConnections.subtract(1, ordering: .relaxed)
            let second = now() / 1_000_000_000
            if lastRefusalLog.exchange(second, ordering: .relaxed) != second {
                logger.warning("connection refused: limit reached", metadata: [
                    "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")", "limit": "\(configuration.maxConnections)"])
            }
            return false
        }
        channel.closeFuture.whenComplete { [weak self] _ in self?.openConnections.subtract(1, ordering: .relaxed) }
        return true
    }

    /// Inbound connections open now.
    public var connectionCount: Int { openConnections.load(ordering: .relaxed) }

    /// The compute thread's sequence table, one line per sequence, once it has handled all the
    /// work queued before the call (nil if that thread does not answer within `seconds`): lets
    /// tests and the fuzz harness check what a hang-up left, after the node has really handled
    /// it. It blocks the caller, so never call it on an event loop or the compute thread.
    package func describeSequences(seconds: Double = 10) -> [String]? { scheduler.describeSequences(seconds: seconds) }

    /// Closes every connection and stops the threads. Calling it again does nothing.
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        probeTask?.cancel()
        link.stop()
        try? serverChannel?.close().wait()
        scheduler.stop()
        try? group.syncShutdownGracefully()
    }

    /// Blocks until the listening socket closes.
    public func wait() {
        try? serverChannel?.closeFuture.wait()
    }

    // MARK: Ring health

    private func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    private func probeTick() {
        let t = now()
        let healthy = ring.healthy.load(ordering: .relaxed)
        if healthy {
            let last = lastProbeReturn.load(ordering: .relaxed)
            if t > last, Double(t - last) * 1e-9 > configuration.probeTimeoutSeconds {
                ringBroken("no probe came back around the ring for \(configuration.probeTimeoutSeconds) s")
            }
            let sent = lastProbeSent.load(ordering: .relaxed)
            if t > sent, Double(t - sent) * 1e-9 < configuration.probeIntervalSeconds { return }
        }
        lastProbeSent.store(t, ordering: .relaxed)
        let nonce = probePrefix | (probeCounter.add(1, ordering: .relaxed).newValue & 0xFFFF_FFFF)
        link.send([StarStreamFrame(payload: .probe(nonce))])
    }

    fileprivate func probeArrived(_ nonce: UInt64) {
        guard isFirst else {
            link.send([StarStreamFrame(payload: .probe(nonce))])
            return
        }
        // Any probe that made it around (ours or a driver's) proves the ring is complete, so a
        // driver that saw its probe return never meets a node 0 that still thinks otherwise.
        lastProbeReturn.store(now(), ordering: .relaxed)
        if !ring.healthy.exchange(true, ordering: .relaxed) { logger.info("pipeline ring is complete") }
        if nonce & 0xFFFF_FFFF_0000_0000 != probePrefix, let driver = driverProbes.withLock({ $0.removeValue(forKey: nonce) }) {
            driver.writeAndFlush(StarStreamFrame(payload: .probe(nonce)), promise: nil)
        }
    }

    /// A driver's probe: it goes around the ring and back to the driver, which times it.
    fileprivate func driverProbe(_ nonce: UInt64, from channel: Channel) {
        let sent = driverProbes.withLock { probes -> Bool in
            guard probes.count < 1024 else { return false }
            probes[nonce] = channel
            return true
        }
        if sent { link.send([StarStreamFrame(payload: .probe(nonce))]) }
    }

    /// Node 0 lost the ring (a probe did not come back, or its upstream went away): it fails
    /// every sequence to its driver and sends a ring reset on, so the nodes it can still reach
    /// free theirs.
    private func ringBroken(_ reason: String) {
        if ring.healthy.exchange(false, ordering: .relaxed) { logger.warning("pipeline broken", metadata: ["reason": "\(reason)"]) }
        scheduler.submit(.dropAll(code: StarStreamErrorCode.pipelineBroken, reason: "pipeline broken: \(reason)",
                                  forwardFrom: hello.firstLayer))
    }

    /// The link to the next stage went down: whatever was in flight on it may be lost, so every
    /// sequence here is dropped (node 0 tells the drivers). Nothing can be forwarded on a link
    /// that is down; the next stage saw the same connection close and resets the rest of the ring.
    private func nextStageLost() {
        if isFirst { ring.healthy.store(false, ordering: .relaxed) }
        logger.warning("next stage disconnected", metadata: ["next": "\(configuration.next)"])
        scheduler.submit(.dropAll(code: StarStreamErrorCode.pipelineBroken,
                                  reason: "pipeline broken: next stage \(configuration.next) disconnected", forwardFrom: nil))
    }

    /// The upstream stage's connection closed: frames it sent may be lost, so this node drops
    /// every sequence and starts a ring reset that travels on to node 0 (which fails them to
    /// their drivers) and around to the nodes before this one.
    fileprivate func upstreamLost() {
        if isFirst { return ringBroken("upstream stage disconnected") }
        logger.warning("upstream stage disconnected; resetting the ring")
        scheduler.submit(.dropAll(code: StarStreamErrorCode.pipelineBroken, reason: "pipeline broken: upstream of layer \(hello.firstLayer) disconnected",
                                  forwardFrom: hello.firstLayer))
    }

    /// A ring reset from upstream (ERROR on sequence 0) that started at the node serving
    /// `origin`: drop every sequence and pass it on, unless it has come back to where it started.
    fileprivate func ringReset(origin: UInt32, code: UInt16, message: String) {
        guard origin != hello.firstLayer else { return }
        scheduler.submit(.dropAll(code: code, reason: message, forwardFrom: origin))
    }

    fileprivate var ourHello: Hello { hello }
    fileprivate var log: Logger { logger }
    fileprivate var stalledPeerTimeout: TimeAmount { .nanoseconds(Int64(max(0.05, configuration.stalledPeerSeconds) * 1e9)) }
    fileprivate var helloTimeout: TimeAmount { .nanoseconds(Int64(configuration.helloTimeoutSeconds * 1e9)) }
}

/// Lets the scheduler's send closure reach the link, which is created after it.
private final class LinkBox: @unchecked Sendable {
    var link: NextStageLink?
}

/// A driver connection as the origin of its sequences.
private final class ChannelOrigin: SequenceOrigin {
    let channel: Channel
    init(_ channel: Channel) { self.channel = channel }
    func send(_ frame: StarStreamFrame) { channel.writeAndFlush(frame, promise: nil) }
}

/// One inbound connection: a driver (node 0 only) or the upstream stage. It must HELLO first;
/// after that, each frame type is accepted only from the role that may send it.
private final class InboundConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = StarStreamFrame
    typealias OutboundOut = StarStreamFrame

    private enum Peer { case unknown, driver, node, closed }
    private let node: PipelineNode
    private let gate: StarStreamGate
    private var peer = Peer.unknown
    /// What the peer's accepted HELLO made it (kept after `peer` turns `.closed`, so a driver
    /// refused for a bad frame still has its sequences freed when the connection ends).
    private var authenticated: Peer?
    /// A node-role peer that has sent sequence work (OPEN, ACTIVATIONS, TOKEN, CANCEL, ERROR):
    /// only losing such a connection can lose frames in flight. One that handshakes and closes
    /// without carrying any drops nothing.
    private var carriedWork = false
    /// Set while the peer leaves what it is sent unread: closes it when it fires.
    private var stall: Scheduled<Void>?
    /// This connection as the origin of the sequences a driver opens on it.
    private var channelOrigin: ChannelOrigin?

    private func origin(_ context: ChannelHandlerContext) -> ChannelOrigin {
        if let channelOrigin { return channelOrigin }
        let made = ChannelOrigin(context.channel)
        channelOrigin = made
        return made
    }
    private var timeout: Scheduled<Void>?
    /// Work from the frames of one read, handed over together at the end of the read, so the
    /// rows of one upstream batch (sent with a single flush) reach the compute thread as one
    /// batch instead of waking it for the first row alone.
    private var inbound: [StageWork] = []

    private func enqueue(_ work: StageWork) {
        inbound.append(work)
    }

    private func handOver() {
        guard !inbound.isEmpty else { return }
        node.scheduler.submit(contentsOf: inbound)
        inbound.removeAll(keepingCapacity: true)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        handOver()
        context.fireChannelReadComplete()
    }

    /// The TLS peer check in front of this handler (nil on plain TCP): the role the peer's
    /// certificate names must be the role its HELLO claims.
    private let certificate: PeerCertificateCheck?

    init(node: PipelineNode, gate: StarStreamGate, certificate: PeerCertificateCheck?) {
        self.node = node
        self.gate = gate
        self.certificate = certificate
    }

    private func peerName(_ context: ChannelHandlerContext) -> String {
        context.channel.remoteAddress.map { "\($0)" } ?? "?"
    }

    /// Back-pressure: while the peer does not read what it is sent, stop reading what it sends
    /// (so it cannot make this node queue more replies), and disconnect it if that lasts.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stall?.cancel()
            stall = nil
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenSuccess { context.read() }
        } else if stall == nil, peer != .closed {
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            let channel = context.channel
            let name = peerName(context)
            let logger = node.log
            let seconds = node.configuration.stalledPeerSeconds
            stall = context.eventLoop.scheduleTask(in: node.stalledPeerTimeout) {
                logger.warning("disconnecting a peer that does not read what it is sent",
                               metadata: ["peer": "\(name)", "seconds": "\(seconds)"])
                channel.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? IdleStateHandler.IdleStateEvent, event == .read {
            if peer == .driver || peer == .node {
                node.log.notice("closing an idle connection", metadata: [
                    "peer": "\(peerName(context))", "seconds": "\(node.configuration.connectionIdleSeconds)"])
            }
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = context.eventLoop.scheduleTask(in: node.helloTimeout) {
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        stall?.cancel()
        handOver()
        // A peer refused after its HELLO is `.closed` by then; what it was decides what it leaves.
        switch authenticated {
        case .driver?: node.scheduler.submit(.originClosed(origin(context)))
        case .node? where carriedWork: node.upstreamLost()
        case .node?: node.log.info("a node connection closed before carrying any sequence", metadata: ["peer": "\(peerName(context))"])
        default: break
        }
        peer = .closed
        context.fireChannelInactive()
    }

    /// Answers ERROR and closes. A refused driver's sequences are freed now, not when the close
    /// completes (a peer that does not read could hold the ERROR's write, and the connection,
    /// open); the close happens after the write or after 2 s, whichever comes first.
    private func reject(_ context: ChannelHandlerContext, _ code: UInt16, _ message: String) {
        node.log.notice("peer refused", metadata: ["peer": "\(peerName(context))", "reason": "\(message)"])
        peer = .closed
        if authenticated == .driver {
            handOver()
            node.scheduler.submit(.originClosed(origin(context)))
        }
        let channel = context.channel
        let deadline = context.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        let frame = StarStreamFrame(payload: .error(code: code, message: message))
        context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
            deadline.cancel()
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let id = frame.sequenceID
        switch (peer, frame.payload) {
        case (.closed, _):
            return
        case let (.unknown, .hello(hello)):
            let ours = node.ourHello
            if let problem = HelloPolicy.check(hello, against: ours, role: nil) {
                return reject(context, StarStreamErrorCode.unauthorized, "HELLO refused: \(problem)")
            }
            // With TLS, the certificate says what the peer is; a gateway cannot pose as a node.
            if let certified = certificate?.peer {
                let claimed: ClusterRole = hello.role == .node ? .node : .gateway
                guard certified.role == claimed else {
                    return reject(context, StarStreamErrorCode.unauthorized,
                                  "HELLO refused: it says \(hello.role) but its certificate is for \(certified.role.rawValue) \(certified.name)")
                }
            }
            switch hello.role {
            case .driver:
                guard node.isFirst else { return reject(context, StarStreamErrorCode.unauthorized, "drivers connect to node 0") }
                peer = .driver
            case .node:
                let layerCount = UInt32(node.model.config.layerCount)
                let expectedEnd = node.isFirst ? layerCount : ours.firstLayer
                guard hello.endLayer == expectedEnd else {
                    return reject(context, StarStreamErrorCode.unauthorized,
                                  "HELLO refused: upstream serves ..<\(hello.endLayer), this node starts at \(ours.firstLayer)")
                }
                peer = .node
            }
            authenticated = peer
            timeout?.cancel()
            gate.open()
            context.writeAndFlush(wrapOutboundOut(StarStreamFrame(payload: .hello(ours))), promise: nil)
        case (.unknown, _):
            reject(context, StarStreamErrorCode.unexpectedFrame, "HELLO first")
        case let (_, .ping(nonce)):
            context.writeAndFlush(wrapOutboundOut(StarStreamFrame(sequenceID: id, payload: .pong(nonce))), promise: nil)
        case (_, .pong):
            break
        case let (.driver, .open(request)):
            enqueue(.open(id, request, origin: origin(context)))
        case let (.driver, .prompt(chunk)):
            enqueue(.prompt(id, chunk, from: origin(context)))
        case (.driver, .cancel):
            enqueue(.cancel(id, from: origin(context)))
        case let (.driver, .probe(nonce)):
            node.driverProbe(nonce, from: context.channel)
        case let (.node, .open(request)) where !node.isFirst:
            carriedWork = true
            enqueue(.open(id, request, origin: nil))
        case let (.node, .activations(activations)) where !node.isFirst:
            carriedWork = true
            enqueue(.activations(id, activations))
        case let (.node, .token(token)) where node.isFirst:
            carriedWork = true
            enqueue(.token(id, position: frame.position, token))
        case (.node, .cancel) where !node.isFirst:
            carriedWork = true
            enqueue(.cancel(id, from: nil))
        case let (.node, .error(code, message)) where id != 0:
            carriedWork = true
            enqueue(.failed(id, code: code, message: message))
        case let (.node, .error(code, message)):
            handOver()
            node.ringReset(origin: frame.position, code: code, message: message)
        case let (.node, .probe(nonce)):
            node.probeArrived(nonce)
        default:
            reject(context, StarStreamErrorCode.unexpectedFrame, "unexpected \(frame.payload.frameType) frame from a \(peer == .driver ? "driver" : "node")")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Resident memory in bytes of this process, or of process `processID` (Linux
/// `/proc/PID/statm`); nil where that is not available.
public func residentMemoryBytes(processID: Int32? = nil) -> Int? {
    let path = processID.map { "/proc/\($0)/statm" } ?? "/proc/self/statm"
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var buffer = [CChar](repeating: 0, count: 256)
    guard fgets(&buffer, Int32(buffer.count), f) != nil else { return nil }
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let fields = text.split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Whether probes make it around the ring (node 0).
private final class RingHealth: Sendable {
    let healthy = Atomic<Bool>(false)
}
