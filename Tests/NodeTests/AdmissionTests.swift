#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import Node
import PipelineClient
import StarStream
import Testing
import TestSupport

/// Caps before trust, against live nodes on loopback: what an unauthenticated or misbehaving
/// peer can make a node hold is bounded, and the node goes on serving a good client afterwards.
@Suite(.serialized) struct AdmissionTests {
    let request = PipelineRequest(prompt: [5, 6], maxNewTokens: 6, sampling: greedyWire, stopTokens: [])

    @Test func maximumLengthFramesBeforeTheHandshakeAreRefusedFromTheHeader() async throws {
        let ring = try TestRing(split: [0 ..< 6])
        defer { ring.stop() }
        let driver = try await ring.driver()
        let baseline = await collect(driver, request)
        // A flood of connections, each declaring the largest payload the wire allows, in a frame
        // type that needs no trust (HELLO) and in one that does (ACTIVATIONS): each is refused as
        // soon as its header is in, without the node waiting for (or buffering) the payload.
        for round in 0 ..< 40 {
            let type: UInt16 = round % 2 == 0 ? StarStreamFrameType.activations.rawValue : StarStreamFrameType.hello.rawValue
            let reply = try RawConnection(port: ring.ports[0]).sendAndReadUntilClosed(frameHeader(type: type, length: UInt32.max), seconds: 5)
            let code = errorCode(reply)
            #expect(code == (type == 1 ? StarStreamErrorCode.payloadTooLarge : StarStreamErrorCode.notAuthenticated), "round \(round)")
        }
        let after = await collect(driver, request)
        #expect(after.tokens == baseline.tokens && after.tokens.count == 6)
        await driver.close()
    }

    @Test func tenThousandOpensAreRefusedNotQueued() async throws {
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6], maxSequences: 4, contextLength: 256) {
            $0.maxWaitingSequences = 64
            $0.maxSequencesPerDriver = 96
        }
        defer { ring.stop() }
        let flood = try await ring.driver()
        let busy = Counter()
        let finished = Counter()
        let ended = Counter()
        let short = PipelineRequest(prompt: [7, 8], maxNewTokens: 2, sampling: greedyWire, stopTokens: [])
        for _ in 0 ..< 10_000 {
            _ = try flood.submit(short) { event in
                switch event {
                case .token: break
                case .done:
                    finished.increment()
                    ended.increment()
                case let .failed(error):
                    if case let .remote(code, _) = error, code == StarStreamErrorCode.busy { busy.increment() }
                    ended.increment()
                }
            }
        }
        try await waitFor("every flooded OPEN answered", seconds: 60) { ended.value == 10_000 }
        // At most a driver's share was ever held; the rest were refused, not queued.
        #expect(finished.value <= 96 * 2 + 64 && finished.value >= 4, "finished \(finished.value)")
        #expect(busy.value == 10_000 - finished.value)
        #expect(ring.nodes[0].counters.waitingSequences.load(ordering: .relaxed) == 0)
        let good = try await ring.driver()
        let served = await collect(good, request)
        #expect(served.tokens.count == 6)
        await good.close()
        await flood.close()
    }

    @Test func aDriverThatNeverReadsIsDisconnected() async throws {
        let ring = try TestRing(split: [0 ..< 6], contextLength: 256) {
            $0.stalledPeerSeconds = 0.3
            $0.peerWriteBufferBytes = 4096
            $0.socketSendBufferBytes = 4096
        }
        defer { ring.stop() }
        let ready = try await ring.driver()
        await ready.close()
        let lazy = try RawConnection(port: ring.ports[0], receiveBuffer: 2048)
        var frames = try driverHello(ring)
        for id in UInt64(1) ... 8 {
            let open = SequenceOpen(promptLength: 2, maxNewTokens: 250, wantsLogprobs: true, sampling: greedyWire, topLogprobs: 20)
            frames += try encode(StarStreamFrame(sequenceID: id, payload: .open(open)))
            frames += try encode(StarStreamFrame(sequenceID: id, payload: .prompt(PromptChunk(firstPosition: 0, tokens: [5, 6]))))
        }
        let node = ring.nodes[0]
        let tokensBefore = node.counters.tokens.load(ordering: .relaxed)
        lazy.send(frames)
        // A count that only grows: the sequences may come and go before this task looks.
        try await waitFor("the node to generate for the lazy driver", seconds: 10) {
            node.counters.tokens.load(ordering: .relaxed) > tokensBefore
        }
        // It never reads: the node stops reading from it, then disconnects it and frees its slots.
        try await waitFor("the node to drop the driver that does not read", seconds: 20) {
            node.connectionCount == 1 && node.counters.activeSequences.load(ordering: .relaxed) == 0
                && node.counters.waitingSequences.load(ordering: .relaxed) == 0
        }
        lazy.close()
        let good = try await ring.driver()
        let served = await collect(good, request)
        #expect(served.tokens.count == 6)
        await good.close()
    }

    /// A driver that opens sequences and is then refused for a frame a driver must not send:
    /// the refusal closes its connection, and that frees its sequences at once, not after the
    /// idle deadline (an hour here).
    @Test func aDriverRefusedForABadFrameLeavesNoSequence() async throws {
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6], maxSequences: 2, contextLength: 256) {
            $0.sequenceIdleSeconds = 3600
        }
        defer { ring.stop() }
        let ready = try await ring.driver()
        await ready.close()
        let node = ring.nodes[0]
        let bad = try RawConnection(port: ring.ports[0])
        var frames = try driverHello(ring)
        // Three OPENs (one waits for a slot), prompts that never finish, then a node-only frame.
        for id in UInt64(1) ... 3 {
            frames += try encode(StarStreamFrame(sequenceID: id, payload: .open(SequenceOpen(promptLength: 4, maxNewTokens: 8, sampling: greedyWire))))
            frames += try encode(StarStreamFrame(sequenceID: id, payload: .prompt(PromptChunk(firstPosition: 0, tokens: [5, 6]))))
        }
        bad.send(frames)
        try await waitFor("the node to hold the driver's sequences", seconds: 10) {
            node.counters.activeSequences.load(ordering: .relaxed) == 2 && node.counters.waitingSequences.load(ordering: .relaxed) == 1
        }
        bad.send(try encode(StarStreamFrame(sequenceID: 2, payload: .activations(Activations(dtype: .f32, positions: [0], width: 1, values: [1])))))
        #expect(bad.closedByPeer(within: 5), "the node kept a driver that sent ACTIVATIONS")
        try await waitFor("the node to close the refused driver", seconds: 5) { node.connectionCount == 1 }
        let table = try #require(node.describeSequences(), "the compute thread did not answer")
        #expect(table.isEmpty, "left behind: \(table)")
        #expect(node.counters.activeSequences.load(ordering: .relaxed) == 0 && node.counters.waitingSequences.load(ordering: .relaxed) == 0
                && node.counters.kvBytes.load(ordering: .relaxed) == 0)
        #expect(node.counters.idleExpired.load(ordering: .relaxed) == 0)
        bad.close()
        let good = try await ring.driver()
        let served = await collect(good, request)
        #expect(served.tokens.count == 6)
        await good.close()
    }

    /// A driver that opens two sequences (one runs, one never gets its prompt) and a refused
    /// third, asks for a PONG and hangs up as soon as it has it, while the first is still
    /// generating: once the node has seen the hang-up, nothing is left, every time. (The node
    /// fuzz harness's input that first looked like a leak here; the fault was the harness's.)
    @Test func aDriverThatHangsUpMidGenerationLeavesNoSequence() async throws {
        var spec = TinyModelSpec()
        spec.layers = 2
        let ring = try TestRing(split: [0 ..< 2], spec: spec, maxSequences: 4, contextLength: 64) {
            $0.sequenceIdleSeconds = 3600
        }
        defer { ring.stop() }
        let ready = try await ring.driver()
        await ready.close()
        let node = ring.nodes[0]
        var frames = try driverHello(ring)
        for id in [UInt64(1), 2, 0] {
            frames += try encode(StarStreamFrame(sequenceID: id, payload: .open(SequenceOpen(promptLength: 3, maxNewTokens: 6, sampling: greedyWire))))
        }
        frames += try encode(StarStreamFrame(sequenceID: 1, payload: .prompt(PromptChunk(firstPosition: 0, tokens: [6, 0, 0]))))
        frames += try encode(StarStreamFrame(payload: .ping(9))) + encode(StarStreamFrame(payload: .probe(9)))
        frames += try encode(StarStreamFrame(payload: .ping(0xF0CC)))
        for round in 0 ..< 100 {
            let driver = try RawConnection(port: ring.ports[0])
            driver.send(frames)
            try #require(driver.readUntilPong(0xF0CC, seconds: 5), "round \(round): no PONG")
            driver.close()
            // Zero counters alone prove nothing (the node may not have read the frames yet):
            // wait until it has seen the hang-up, then let its compute thread catch up.
            try await waitFor("round \(round): the node to see the hang-up", seconds: 5) { node.connectionCount == 1 }
            let table = try #require(node.describeSequences(), "round \(round): the compute thread did not answer")
            #expect(table.isEmpty, "round \(round): left behind: \(table)")
            #expect(node.counters.activeSequences.load(ordering: .relaxed) == 0 && node.counters.kvBytes.load(ordering: .relaxed) == 0)
            if !table.isEmpty { break }
        }
        #expect(node.counters.idleExpired.load(ordering: .relaxed) == 0)
    }

    @Test func aNodePeerThatConnectsAndClosesDropsNoSequence() async throws {
        // A long sequence (1000 tokens), so it is still decoding when this task gets to run
        // however busy the machine is; the peers stop after 30 rounds.
        var spec = TestRing.spec()
        spec.contextLength = 2048
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6], spec: spec, contextLength: 2048)
        defer { ring.stop() }
        let driver = try await ring.driver()
        let seen = Counter()
        let long = PipelineRequest(prompt: [5, 6], maxNewTokens: 1000, sampling: greedyWire, stopTokens: [])
        let expected = try ring.localGreedy(prompt: [5, 6], count: 1000)
        let run = Task { () -> (tokens: [Int32], end: PipelineEvent?) in
            var tokens: [Int32] = []
            var end: PipelineEvent?
            for await event in driver.events(long) {
                switch event {
                case let .token(t):
                    tokens.append(t.tokenID)
                    seen.increment()
                case .done, .failed: end = event
                }
            }
            return (tokens, end)
        }
        try await waitFor("the first tokens", seconds: 10) { seen.value > 0 }
        // Node peers with the right credentials and layers say HELLO to each node and hang up,
        // again and again while the sequence decodes.
        let upstreamOf: [(port: Int, first: UInt32, end: UInt32)] = [(ring.ports[0], 3, 6), (ring.ports[1], 0, 3)]
        var midFlight = 0
        while seen.value < 1000, midFlight < 30 {
            for target in upstreamOf {
                let hello = Hello(role: .node, clusterToken: ring.token, modelDigest: ring.digest,
                                  firstLayer: target.first, endLayer: target.end)
                let peer = try RawConnection(port: target.port)
                peer.send(try encode(StarStreamFrame(payload: .hello(hello))))
                let reply = peer.read(atLeast: 32, seconds: 2)
                #expect(reply.count >= 32, "no HELLO back from port \(target.port)")
                peer.close()
            }
            if seen.value < 1000 { midFlight += 1 }
        }
        let result = await run.value
        #expect(midFlight > 0, "no peer hung up while the sequence decoded")
        #expect(result.tokens == expected)
        if case .done = result.end {} else { Issue.record("sequence ended with \(String(describing: result.end))") }
        await driver.close()
    }

    @Test func connectionsOverTheLimitAreClosedOnAccept() async throws {
        let ring = try TestRing(split: [0 ..< 6]) {
            $0.maxConnections = 4
            $0.helloTimeoutSeconds = 60
        }
        defer { ring.stop() }
        let node = ring.nodes[0]
        // The ring's own link (this one node is its own next stage) holds one connection.
        let ready = try await ring.driver()
        await ready.close()
        try await waitFor("only the ring's link connected", seconds: 5) { node.connectionCount == 1 }
        let held = try (0 ..< 3).map { _ in try RawConnection(port: ring.ports[0]) }
        try await waitFor("four connections counted", seconds: 5) { node.connectionCount == 4 }
        let extra = try RawConnection(port: ring.ports[0])
        #expect(extra.closedByPeer(within: 5), "a fourth connection stayed open")
        extra.close()
        for c in held { c.close() }
        let going = Date()
        while node.connectionCount > 1, Date().timeIntervalSince(going) < 5 { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(node.connectionCount == 1, "\(node.connectionCount) connections still counted")
        let driver = try await ring.driver()
        #expect(await collect(driver, request).tokens.count == 6)
        await driver.close()
    }

    @Test func silentConnectionsAreClosedAndIdleDriversKeepTheirs() async throws {
        let ring = try TestRing(split: [0 ..< 6]) { $0.connectionIdleSeconds = 1.5 }
        defer { ring.stop() }
        let silent = try RawConnection(port: ring.ports[0])
        silent.send(try encode(StarStreamFrame(payload: .hello(Hello(role: .driver, clusterToken: ring.token, modelDigest: ring.digest)))))
        _ = silent.read(atLeast: 32, seconds: 2)
        #expect(silent.closedByPeer(within: 10), "a silent driver connection stayed open")
        silent.close()
        let driver = try await PipelineDriver.connect(host: "127.0.0.1", port: ring.ports[0], clusterToken: ring.token,
                                                      modelDigest: ring.digest, keepaliveSeconds: 0.2)
        let start = Date()
        try await waitFor("three idle timeouts to pass", seconds: 10) { Date().timeIntervalSince(start) > 4.5 }
        #expect(await collect(driver, request).tokens.count == 6)
        await driver.close()
    }

    @Test func kvCachesStayWithinTheBudget() async throws {
        // 6 layers × 2 (keys, values) × 32 floats × 4 bytes = 1536 bytes per position.
        let ring = try TestRing(split: [0 ..< 6], contextLength: 256) { $0.kvBudgetBytes = 1536 * 100 }
        defer { ring.stop() }
        let driver = try await ring.driver()
        let node = ring.nodes[0]
        let most = Counter()
        let sampling = Task {
            while !Task.isCancelled {
                most.raise(to: node.counters.kvBytes.load(ordering: .relaxed))
                try? await Task.sleep(nanoseconds: 200_000)
            }
        }
        let fits = PipelineRequest(prompt: [5, 6], maxNewTokens: 58, sampling: greedyWire, stopTokens: [])
        async let a = collect(driver, fits)
        async let b = collect(driver, fits)
        let (first, second) = await (a, b)
        sampling.cancel()
        #expect(first.tokens.count == 58 && second.tokens.count == 58)
        #expect(most.value <= 1536 * 100, "KV bytes reached \(most.value)")
        let tooBig = await collect(driver, PipelineRequest(prompt: [5, 6], maxNewTokens: 198, sampling: greedyWire, stopTokens: []))
        if case let .failed(.remote(code, message)) = tooBig.end {
            #expect(code == StarStreamErrorCode.busy && message.contains("budget"))
        } else {
            Issue.record("a sequence over the KV budget ended with \(String(describing: tooBig.end))")
        }
        await driver.close()
    }
}

/// The HELLO a driver of `ring` opens with, encoded.
private func driverHello(_ ring: TestRing) throws -> [UInt8] {
    try encode(StarStreamFrame(payload: .hello(Hello(role: .driver, clusterToken: ring.token, modelDigest: ring.digest))))
}

private func encode(_ frame: StarStreamFrame) throws -> [UInt8] {
    Array(try StarStreamCodec.encode(frame).readableBytesView)
}

/// A frame header with any type and declared length (magic, version, type, flags, sequence,
/// position, length, checksum).
private func frameHeader(type: UInt16, length: UInt32) -> [UInt8] {
    var b = ByteBuffer()
    b.writeInteger(FrameHeader.magic, endianness: .little, as: UInt32.self)
    b.writeInteger(FrameHeader.currentVersion, endianness: .little, as: UInt16.self)
    b.writeInteger(type, endianness: .little, as: UInt16.self)
    b.writeInteger(UInt32(0), endianness: .little)
    b.writeInteger(UInt64(0), endianness: .little)
    b.writeInteger(UInt32(0), endianness: .little)
    b.writeInteger(length, endianness: .little)
    b.writeInteger(UInt32(0), endianness: .little)
    return Array(b.readableBytesView)
}

/// The code of the first frame in `bytes` when it is an ERROR, else nil.
private func errorCode(_ bytes: [UInt8]) -> UInt16? {
    var buffer = ByteBuffer(bytes: bytes)
    guard let frame = try? StarStreamCodec.decode(&buffer, limits: StarStreamLimits(maxPayloadBytes: 1 << 20)),
          case let .error(code, _) = frame.payload else { return nil }
    return code
}

/// A blocking TCP client on loopback whose reads all have deadlines.
final class RawConnection: @unchecked Sendable {
    private var fd: Int32

    init(port: Int, receiveBuffer: Int? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            Glibc.close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Sends all of `bytes` unless the peer stops taking them (closed, or a full window for 2 s).
    func send(_ bytes: [UInt8]) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    private func setReadTimeout(_ seconds: Double) {
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Reads until `count` bytes are in, the peer closes, or `seconds` pass.
    func read(atLeast count: Int, seconds: Double) -> [UInt8] {
        let deadline = Date().addingTimeInterval(seconds)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count < count, Date() < deadline {
            setReadTimeout(max(0.01, deadline.timeIntervalSinceNow))
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            out += chunk[0 ..< n]
        }
        return out
    }

    /// Reads frames until a PONG with `nonce` arrives (true), or the peer closes, or `seconds` pass.
    func readUntilPong(_ nonce: UInt64, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = ByteBuffer()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            setReadTimeout(max(0.01, deadline.timeIntervalSinceNow))
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return false }
            buffer.writeBytes(chunk[0 ..< n])
            while let frame = try? StarStreamCodec.decode(&buffer, limits: StarStreamLimits(maxPayloadBytes: 1 << 20)) {
                if case .pong(nonce) = frame.payload { return true }
            }
        }
        return false
    }

    /// Sends `bytes` (as far as the peer takes them) and reads what comes back until it closes.
    func sendAndReadUntilClosed(_ bytes: [UInt8], seconds: Double) -> [UInt8] {
        send(bytes)
        return read(atLeast: Int.max, seconds: seconds)
    }

    /// Whether the peer closes the connection within `seconds` (reading and discarding
    /// whatever it sends first).
    func closedByPeer(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            setReadTimeout(max(0.01, deadline.timeIntervalSinceNow))
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { return true }
            if n < 0 {
                if errno == ECONNRESET { return true }
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return false }
            }
        }
        return false
    }
}
