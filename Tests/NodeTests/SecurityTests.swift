#if canImport(Glibc)
import Glibc
#endif
import ClusterTrust
import ControlPlane
import Foundation
import GGUF
import GRPCCore
import Hub
import Kernels
import Models
import NIOCore
import NIOPosix
import Node
import PipelineClient
import StarStream
import Synchronization
import Testing
import TestSupport

/// Mutual TLS against live in-process nodes and hubs on loopback: who may connect, what an
/// observer on the wire sees, and that the cluster goes on serving a good client.
@Suite(.serialized) struct SecurityTests {
    let request = PipelineRequest(prompt: [5, 6, 7, 8, 9, 10, 11, 12], maxNewTokens: 6, sampling: greedyWire, stopTokens: [])

    /// A cluster's authority with a node's and a gateway's credentials.
    struct Cluster {
        let authority: ClusterAuthority
        let node: TransportSecurity
        let gateway: TransportSecurity

        init(_ name: String = "test") throws {
            authority = try ClusterAuthority.create(clusterName: name)
            node = .mutualTLS(try authority.makeMember(name: "node", role: .node))
            gateway = .mutualTLS(try authority.makeMember(name: "gateway", role: .gateway))
        }
    }

    /// A relay between node 0 and node 1 records every byte in transit. Over plain TCP the
    /// cluster token and node 0's hidden states for a known prompt are there to be found (which
    /// shows the search works); over mutual TLS neither is, and the tokens are the same.
    @Test(arguments: [false, true]) func aRelayBetweenNodesSeesNoTokenAndNoHiddenStatesUnderTLS(tls: Bool) async throws {
        let cluster = try Cluster()
        let relay = try await RecordingRelay.start()
        defer { relay.stop() }
        let secretToken = "cluster-secret-\(UInt64.random(in: 1 ... .max))"
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6]) { c in
            c.clusterToken = secretToken
            if tls { c.security = cluster.node }
            if c.layers.lowerBound == 0 { c.next = NodeAddress(host: "127.0.0.1", port: relay.port) }
        }
        defer { ring.stop() }
        relay.target.withLock { $0 = ring.ports[1] }
        let driver = try await PipelineDriver.connect(host: "127.0.0.1", port: ring.ports[0], clusterToken: secretToken, modelDigest: ring.digest,
                                                      security: tls ? cluster.gateway : .insecure, stallTimeoutSeconds: 10)
        try await driver.waitUntilReady(seconds: 10)
        let result = await collect(driver, request)
        await driver.close()
        #expect(result.tokens == (try ring.localGreedy(prompt: request.prompt, count: 6)))

        // Node 0's output for the prompt: what travels to node 1 (F32 wire, so bit for bit).
        let model = try TransformerModel(file: GGUFFile(path: ring.path), layers: 0 ..< 3)
        let state = ForwardState(config: model.config, maxTokens: 64, contextCapacity: 64, logitRows: 1, pool: ComputePool(threadCount: 1))
        let hidden = try request.prompt.withUnsafeBufferPointer {
            Array(try model.forward(.tokens($0), start: 0, cache: model.makeCache(capacity: 64), state: state))
        }
        let width = model.config.embeddingLength
        let lastRow = hidden[(request.prompt.count - 1) * width ..< (request.prompt.count - 1) * width + 8]
        let needle = lastRow.withUnsafeBytes { Array($0) }
        let seen = relay.bytes.withLock { $0 }
        #expect(seen.count > 1000, "the relay carried \(seen.count) bytes")
        #expect(Self.contains(seen, needle) == !tls, "hidden states \(tls ? "visible under TLS" : "not found in plain TCP")")
        #expect(Self.contains(seen, Array(secretToken.utf8)) == !tls, "cluster token \(tls ? "visible under TLS" : "not found in plain TCP")")
    }

    /// A driver refuses a node 0 whose certificate is from another authority, or names a
    /// gateway; a node refuses a gateway that says HELLO as a node; a node refuses a next stage
    /// from another authority, which never reads a frame. A good client is served after each.
    @Test func impostorsOnEitherSideAreRefused() async throws {
        let cluster = try Cluster()
        let other = try Cluster("other")
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6]) { $0.security = cluster.node }
        defer { ring.stop() }

        // A fake node 0: another authority's node certificate.
        let fake = try TestRing(split: [0 ..< 6]) { $0.security = other.node }
        defer { fake.stop() }
        await #expect(throws: PipelineError.self) {
            _ = try await PipelineDriver.connect(host: "127.0.0.1", port: fake.ports[0], clusterToken: fake.token, modelDigest: fake.digest,
                                                 security: cluster.gateway)
        }
        // A fake node 0 with this cluster's certificate, but a gateway's.
        let posing = try TestRing(split: [0 ..< 6]) { $0.security = cluster.gateway }
        defer { posing.stop() }
        do {
            _ = try await PipelineDriver.connect(host: "127.0.0.1", port: posing.ports[0], clusterToken: posing.token, modelDigest: posing.digest,
                                                 security: cluster.gateway)
            Issue.record("a driver accepted a node 0 with a gateway's certificate")
        } catch let error {
            #expect("\(error)".contains("gateway"), "\(error)")
        }
        // A client of another authority, and one without TLS, get no HELLO from node 0.
        for security in [other.gateway, TransportSecurity.insecure] {
            await #expect(throws: PipelineError.self) {
                _ = try await PipelineDriver.connect(host: "127.0.0.1", port: ring.ports[0], clusterToken: ring.token, modelDigest: ring.digest,
                                                     security: security)
            }
        }
        // A gateway's certificate saying HELLO as a node to node 1.
        let reply = try await Self.helloAsNode(port: ring.ports[1], security: cluster.gateway, digest: ring.digest, token: ring.token)
        #expect(reply.contains { if case let .error(code, message) = $0.payload { code == StarStreamErrorCode.unauthorized && message.contains("certificate") } else { false } },
                "\(reply.map(\.payload.frameType))")

        // A rogue listener at node 0's next address: another authority's TLS server. Node 0
        // never completes a handshake with it, so it reads nothing, and the ring stays broken.
        let rogue = try await RogueListener.start(security: other.node)
        defer { rogue.stop() }
        let misled = try TestRing(split: [0 ..< 3, 3 ..< 6]) { c in
            c.security = cluster.node
            if c.layers.lowerBound == 0 { c.next = NodeAddress(host: "127.0.0.1", port: rogue.port) }
        }
        defer { misled.stop() }
        try await waitFor("node 0 to try the rogue listener", seconds: 10) { rogue.connections.withLock { $0 } >= 2 }
        #expect(rogue.plaintext.withLock { $0 }.isEmpty, "the rogue listener read \(rogue.plaintext.withLock { $0.count }) bytes")
        let misledDriver = try await PipelineDriver.connect(host: "127.0.0.1", port: misled.ports[0], clusterToken: misled.token,
                                                            modelDigest: misled.digest, security: cluster.gateway)
        await #expect(throws: (any Error).self) { try await misledDriver.waitUntilReady(seconds: 1) }
        await misledDriver.close()

        // The real cluster serves a good client.
        let driver = try await PipelineDriver.connect(host: "127.0.0.1", port: ring.ports[0], clusterToken: ring.token, modelDigest: ring.digest,
                                                      security: cluster.gateway, stallTimeoutSeconds: 10)
        try await driver.waitUntilReady(seconds: 10)
        let result = await collect(driver, request)
        await driver.close()
        #expect(result.tokens == (try ring.localGreedy(prompt: request.prompt, count: 6)))
    }

    /// The hub over mutual TLS: registry calls need a node's certificate; a joiner with the
    /// token enrolls and is then let in; a wrong token and a replayed enrollment are refused.
    @Test func theHubLetsInOnlyEnrolledMembers() async throws {
        let directory = NSTemporaryDirectory() + "pangalactic-enroll-\(UInt64.random(in: 1 ... .max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let authority = try ClusterAuthority.create()
        try authority.save(to: directory)
        let (token, _) = try JoinTokenFile.create(in: directory, authority: authority, lifetime: 600)
        let hubSecurity = TransportSecurity.mutualTLS(try authority.makeMember(name: "hub", role: .hub))
        let server = try HubServer(settings: HubSettings(), store: MemoryClusterStore(), logger: quietLogger)
        let ports = Mutex<(control: Int?, enroll: Int?)>((nil, nil))
        let enrollment = HubServer.EnrollmentEndpoint(host: "127.0.0.1", port: 0, authority: EnrollmentAuthority(authority: authority, directory: directory))
        let task = Task {
            try await server.run(host: "127.0.0.1", port: 0, security: hubSecurity, enrollment: enrollment) { p in
                ports.withLock { $0.control = p }
            } onEnrollmentListening: { p in
                ports.withLock { $0.enroll = p }
            }
        }
        defer {
            server.prepareToStop()
            task.cancel()
        }
        try await waitFor("the hub to listen", seconds: 10) { ports.withLock { $0.control != nil && $0.enroll != nil } }
        let (controlPort, enrollPort) = ports.withLock { ($0.control ?? 0, $0.enroll ?? 0) }

        // A node enrolls with the token and may then call the hub.
        let node = try await Enrollment.join(host: "127.0.0.1", port: enrollPort, token: token, role: .node, name: "joiner")
        #expect(node.role == .node && node.name == "joiner")
        let connection = try HubConnection(host: "127.0.0.1", port: controlPort, security: .mutualTLS(node))
        defer { connection.close() }
        _ = try await connection.control.clusterStatus(.init(), options: HubConnection.deadline(seconds: 10))

        // A wrong token (right id, wrong secret) is refused.
        var wrongSecret = token.secret
        wrongSecret[0] ^= 1
        let wrong = JoinToken(id: token.id, secret: wrongSecret, authorityFingerprint: token.authorityFingerprint)
        await #expect(throws: RPCError.self) { _ = try await Enrollment.join(host: "127.0.0.1", port: enrollPort, token: wrong, role: .node, name: "x") }

        // A gateway's certificate cannot register a node; neither can another authority's.
        let gateway = try await Enrollment.join(host: "127.0.0.1", port: enrollPort, token: token, role: .gateway, name: "gw")
        let asGateway = try HubConnection(host: "127.0.0.1", port: controlPort, security: .mutualTLS(gateway))
        defer { asGateway.close() }
        do {
            _ = try await asGateway.control.register(.init(), options: HubConnection.deadline(seconds: 10))
            Issue.record("a gateway certificate registered a node")
        } catch let error as RPCError {
            #expect(error.code == .permissionDenied, "\(error)")
        }
        let stranger = try ClusterAuthority.create(clusterName: "stranger").makeMember(name: "s", role: .node)
        let asStranger = try HubConnection(host: "127.0.0.1", port: controlPort, security: .mutualTLS(stranger))
        defer { asStranger.close() }
        await #expect(throws: (any Error).self) { _ = try await asStranger.control.clusterStatus(.init(), options: HubConnection.deadline(seconds: 3)) }
        let plain = try HubConnection(host: "127.0.0.1", port: controlPort)
        defer { plain.close() }
        await #expect(throws: (any Error).self) { _ = try await plain.control.clusterStatus(.init(), options: HubConnection.deadline(seconds: 3)) }

        // A replayed enrollment: the same nonce, request and proof a second time.
        let enrollmentAuthority = EnrollmentAuthority(authority: authority, directory: directory)
        let joiner = try EnrollmentRequest(token: token, role: .node, name: "again")
        let nonce = enrollmentAuthority.challenge()
        let proof = joiner.proof(nonce: nonce)
        _ = try enrollmentAuthority.enroll(tokenID: token.id, nonce: nonce, role: "node", request: joiner.request, proof: proof)
        #expect(throws: EnrollmentError.unknownNonce) {
            _ = try enrollmentAuthority.enroll(tokenID: token.id, nonce: nonce, role: "node", request: joiner.request, proof: proof)
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == first, Array(haystack[i ..< i + needle.count]) == needle { return true }
            i += 1
        }
        return false
    }

    /// Connects with `security`, says HELLO as a node (layers 0..<3, so node 1 would take it),
    /// and returns the frames that come back before the connection closes.
    static func helloAsNode(port: Int, security: TransportSecurity, digest: [UInt8], token: String) async throws -> [StarStreamFrame] {
        let frames = FrameCollector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try security.addHandlers(to: channel.pipeline.syncOperations, side: .client, accepting: [.node]) { _ in }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(StarStreamFrameDecoder(limits: StarStreamLimits(maxPayloadBytes: 1 << 20))),
                        MessageToByteHandler(StarStreamFrameEncoder()),
                        frames,
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let hello = Hello(role: .node, clusterToken: token, modelDigest: digest, firstLayer: 0, endLayer: 3)
        try await channel.writeAndFlush(StarStreamFrame(payload: .hello(hello))).get()
        try await waitFor("the node to answer", seconds: 10) { !channel.isActive || !frames.frames.withLock { $0 }.isEmpty }
        try? await channel.closeFuture.get()
        return frames.frames.withLock { $0 }
    }

    final class FrameCollector: ChannelInboundHandler, Sendable {
        typealias InboundIn = StarStreamFrame
        let frames = Mutex<[StarStreamFrame]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            frames.withLock { $0.append(frame) }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}

/// A TCP relay that records every byte it forwards, in both directions.
final class RecordingRelay: Sendable {
    let target = Mutex<Int?>(nil)
    let bytes = Mutex<[UInt8]>([])
    private let listener = Mutex<Channel?>(nil)

    var port: Int { listener.withLock { $0?.localAddress?.port } ?? 0 }

    static func start() async throws -> RecordingRelay {
        let relay = RecordingRelay()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelInitializer { inbound in
                guard let target = relay.target.withLock({ $0 }) else {
                    return inbound.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                return ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: target)
                    .flatMap { outbound in
                        inbound.eventLoop.makeCompletedFuture {
                            try inbound.pipeline.syncOperations.addHandler(Forward(to: outbound, relay: relay))
                            try outbound.pipeline.syncOperations.addHandler(Forward(to: inbound, relay: relay))
                            try inbound.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        relay.listener.withLock { $0 = channel }
        return relay
    }

    func stop() { listener.withLock { $0 }?.close(promise: nil) }

    final class Forward: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let peer: Channel
        let relay: RecordingRelay
        init(to peer: Channel, relay: RecordingRelay) {
            self.peer = peer
            self.relay = relay
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            relay.bytes.withLock { $0 += Array(buffer.readableBytesView) }
            peer.writeAndFlush(buffer, promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) { peer.close(promise: nil) }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}

/// A TLS listener with credentials of another cluster, counting connections and recording
/// whatever it manages to decrypt.
final class RogueListener: Sendable {
    let connections = Mutex(0)
    let plaintext = Mutex<[UInt8]>([])
    private let listener = Mutex<Channel?>(nil)

    var port: Int { listener.withLock { $0?.localAddress?.port } ?? 0 }

    static func start(security: TransportSecurity) async throws -> RogueListener {
        let rogue = RogueListener()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    rogue.connections.withLock { $0 += 1 }
                    // It would take any member of its own cluster; it never sees one of ours.
                    _ = try security.addHandlers(to: channel.pipeline.syncOperations, side: .server, accepting: Set(ClusterRole.allCases)) { _ in }
                    try channel.pipeline.syncOperations.addHandler(Record(rogue: rogue))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        rogue.listener.withLock { $0 = channel }
        return rogue
    }

    func stop() { listener.withLock { $0 }?.close(promise: nil) }

    final class Record: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let rogue: RogueListener
        init(rogue: RogueListener) { self.rogue = rogue }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            rogue.plaintext.withLock { $0 += Array(buffer.readableBytesView) }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}
