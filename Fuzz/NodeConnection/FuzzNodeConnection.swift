#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GGUF
import Logging
import NIOCore
import Node
import StarStream
import TestSupport

/// libFuzzer target: a stateful node harness. One node 0 (a whole tiny model, so it is also the
/// last stage) runs in this process on loopback. Each input is one authenticated driver: it
/// says HELLO, then sends the frames the input describes (OPEN, PROMPT, CANCEL, PING, PROBE,
/// node-only frames a driver must not send, and raw bytes), reads for a while, and hangs up.
/// After each input the node must hold nothing: no active or waiting sequence and no KV bytes
/// (a sequence its driver abandoned must be freed), and it must still serve a good request.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNodeConnection(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let harness = NodeHarness.shared
    var input = InputReader(UnsafeBufferPointer(start: data, count: size))
    var stream = ByteBuffer()
    while !input.isEmpty, stream.readableBytes < 1 << 16 {
        input.appendFrame(to: &stream, digest: harness.digest)
    }
    let start = Date()
    harness.run(driverBytes: Array(stream.readableBytesView))
    let sent = Date()
    harness.checkEmpty()
    if harness.trace {
        FileHandle.standardError.write(Data("input: \(Int(sent.timeIntervalSince(start) * 1000)) ms talking, \(Int(Date().timeIntervalSince(sent) * 1000)) ms until empty\n".utf8))
    }
    return 0
}

final class NodeHarness: @unchecked Sendable {
    static let shared = NodeHarness()
    let node: PipelineNode
    let port: Int
    let digest: [UInt8]
    var inputs = 0
    /// Inbound connections of the ring itself (node 0's link to itself), open between inputs.
    var ringConnections = 1
    /// `PANGALACTIC_FUZZ_TRACE=1`: how long each input talked and how long the node took to let go.
    let trace = getenv("PANGALACTIC_FUZZ_TRACE") != nil

    init() {
        do {
            var spec = TinyModelSpec()
            spec.layers = 2
            spec.vocabulary = 64
            let bytes = try TinyModel.writer(spec).serialize()
            let path = NSTemporaryDirectory() + "pangalactic-fuzz-node-\(getpid()).gguf"
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            port = try NodeAddress.freeLoopbackPort()
            var configuration = NodeConfiguration(modelPath: path, layers: 0 ..< 2, listen: NodeAddress(host: "127.0.0.1", port: port),
                                                  next: NodeAddress(host: "127.0.0.1", port: port))
            configuration.clusterToken = "fuzz"
            configuration.threads = 1
            configuration.maxSequences = 4
            configuration.contextLength = 64
            configuration.maxBatchTokens = 16
            // Long enough that only the hang-up can free what a driver leaves (checked below).
            configuration.sequenceIdleSeconds = 600
            configuration.probeIntervalSeconds = 0.1
            var logger = Logger(label: "fuzz")
            // PANGALACTIC_FUZZ_LOG=debug|info|… shows what the node does with each input.
            logger.logLevel = getenv("PANGALACTIC_FUZZ_LOG").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .critical
            node = try PipelineNode(configuration: configuration, logger: logger)
            digest = node.modelDigest
            try node.start()
            let deadline = Date().addingTimeInterval(10)
            while !node.isRingHealthy, Date() < deadline { usleep(10000) }
            guard node.isRingHealthy else { fatalError("the harness node's ring did not close") }
            ringConnections = node.connectionCount
        } catch {
            fatalError("harness: \(error)")
        }
    }

    func hello() -> [UInt8] {
        var buffer = ByteBuffer()
        try? StarStreamCodec.encode(StarStreamFrame(payload: .hello(Hello(role: .driver, clusterToken: "fuzz", modelDigest: digest))), into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// One driver connection: HELLO, the bytes, then a PING; reads until its PONG (so the node
    /// has taken in every frame before it), the node closes, or 2 s pass; then hangs up.
    func run(driverBytes: [UInt8], until finished: ((StarStreamFrame) -> Bool)? = nil) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { fatalError("socket: \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if connected != 0 {
            // A signal (libFuzzer's timers) can interrupt a blocking connect, which then goes on
            // in the background: wait for it to finish.
            guard errno == EINTR else { fatalError("the node refused a connection: \(errno)") }
            var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var ready = poll(&writable, 1, 5000)
            while ready < 0 && errno == EINTR { ready = poll(&writable, 1, 5000) }
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard ready > 0, getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0, failure == 0 else {
                fatalError("the node refused a connection: poll \(ready), error \(failure), errno \(errno)")
            }
        }
        var ping = ByteBuffer()
        let nonce: UInt64 = 0xF0CC_ED0F_F1CE
        try? StarStreamCodec.encode(StarStreamFrame(payload: .ping(nonce)), into: &ping)
        let all = hello() + driverBytes + Array(ping.readableBytesView)
        var sent = 0
        while sent < all.count {
            let n = all[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            sent += n
        }
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        var replies = ByteBuffer()
        var decoder = StarStreamFrameDecoder(limits: StarStreamLimits(maxPayloadBytes: 1 << 20))
        let deadline = Date().addingTimeInterval(2)
        reading: while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 20) > 0 else { continue }
            let n = recv(fd, &scratch, scratch.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            replies.writeBytes(scratch[0 ..< n])
            do {
                while let frame = try decoder.decodeFrame(&replies) {
                    if let finished {
                        if finished(frame) { break reading }
                    } else if case .pong(nonce) = frame.payload {
                        break reading
                    }
                }
            } catch {
                fatalError("the node sent a frame its own decoder refuses: \(error)")
            }
        }
    }

    /// The node must let go of everything the driver left behind when it hangs up (long before
    /// the idle deadline), and must still serve a good request. Zero counters alone prove
    /// nothing (the node may not have read the driver's frames yet), so this waits until the
    /// node has seen the hang-up and its compute thread has handled everything queued before.
    func checkEmpty() {
        let deadline = Date().addingTimeInterval(5)
        while node.connectionCount > ringConnections, Date() < deadline { usleep(200) }
        guard node.connectionCount <= ringConnections else {
            fatalError("the node still counts \(node.connectionCount - ringConnections) driver connections 5 s after the driver hung up")
        }
        guard let table = node.describeSequences() else { fatalError("the node's compute thread did not answer within 10 s") }
        let counters = node.counters
        let active = counters.activeSequences.load(ordering: .relaxed), waiting = counters.waitingSequences.load(ordering: .relaxed)
        let kv = counters.kvBytes.load(ordering: .relaxed)
        guard table.isEmpty, active == 0, waiting == 0, kv == 0 else {
            fatalError("after its driver hung up the node kept \(active) active, \(waiting) waiting sequences and \(kv) KV bytes:\n\(table.joined(separator: "\n"))")
        }
        inputs += 1
        guard inputs % 1000 == 0 else { return }
        // Every thousand inputs: a good request still gets its tokens.
        var request = ByteBuffer()
        let open = SequenceOpen(promptLength: 2, maxNewTokens: 3, sampling: .greedy)
        try? StarStreamCodec.encode(StarStreamFrame(sequenceID: 9, payload: .open(open)), into: &request)
        try? StarStreamCodec.encode(StarStreamFrame(sequenceID: 9, payload: .prompt(PromptChunk(firstPosition: 0, tokens: [1, 2]))), into: &request)
        let before = node.counters.tokens.load(ordering: .relaxed)
        // Stay connected until the sequence is done (hanging up earlier would cancel it).
        run(driverBytes: Array(request.readableBytesView)) { frame in
            switch frame.payload {
            case .done, .error: frame.sequenceID == 9
            default: false
            }
        }
        guard node.counters.tokens.load(ordering: .relaxed) > before else { fatalError("the node serves no tokens any more") }
    }
}

/// Turns fuzz bytes into frames: mostly well-formed (so the node's logic is reached past the
/// decoder), with bounded sizes, and now and then raw bytes.
struct InputReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var offset = 0
    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }
    var isEmpty: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func token() -> Int32 { Int32(Int8(bitPattern: byte())) &* Int32(byte() % 4 + 1) }

    mutating func appendFrame(to stream: inout ByteBuffer, digest: [UInt8]) {
        let op = byte() % 9
        let sequence = UInt64(byte() % 4)
        let frame: StarStreamFrame
        switch op {
        case 0:
            let sampling = WireSampling(temperature: Float(byte()) / 64, topK: UInt32(byte()), topP: Float(byte()) / 255, minP: Float(byte()) / 255,
                                        repetitionPenalty: 1 + Float(byte()) / 128, frequencyPenalty: 0, presencePenalty: 0,
                                        penaltyLastN: UInt32(byte()), seed: UInt64(byte()))
            let stops = (0 ..< Int(byte() % 3)).map { _ in token() }
            let history = (0 ..< Int(byte() % 5)).map { _ in token() }
            frame = StarStreamFrame(sequenceID: sequence, payload: .open(SequenceOpen(
                promptLength: UInt32(byte() % 40), maxNewTokens: UInt32(byte() % 20), wantsLogprobs: byte() & 1 == 1, sampling: sampling,
                stopTokens: stops, history: history, randomDraws: UInt64(byte() % 4), topLogprobs: Int(byte() % 6))))
        case 1:
            let first = UInt32(byte() % 48)
            let tokens = (0 ..< Int(byte() % 24)).map { _ in token() }
            frame = StarStreamFrame(sequenceID: sequence, position: first, payload: .prompt(PromptChunk(firstPosition: first, tokens: tokens)))
        case 2: frame = StarStreamFrame(sequenceID: sequence, payload: .cancel)
        case 3: frame = StarStreamFrame(payload: .ping(UInt64(byte())))
        case 4: frame = StarStreamFrame(payload: .probe(UInt64(byte())))
        case 5:
            let width = Int(byte() % 8) + 1
            frame = StarStreamFrame(sequenceID: sequence, payload: .activations(Activations(dtype: .f32, positions: [UInt32(byte())], width: width,
                                                                                           values: (0 ..< width).map { Float($0) })))
        case 6: frame = StarStreamFrame(sequenceID: sequence, payload: .token(TokenMessage(tokenID: token())))
        case 7: frame = StarStreamFrame(sequenceID: sequence, payload: .done(.length, generated: UInt32(byte())))
        default:
            let count = Int(byte() % 32)
            for _ in 0 ..< count { stream.writeInteger(byte()) }
            return
        }
        try? StarStreamCodec.encode(frame, into: &stream)
    }
}

/// Seeds (`PANGALACTIC_FUZZ_SEEDS=DIR`): a complete request, one cancelled midway, and a burst
/// of opens.
@_cdecl("LLVMFuzzerInitialize")
public func initializeNodeConnection(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    guard let directory = getenv("PANGALACTIC_FUZZ_SEEDS").map({ String(cString: $0) }) else { return 0 }
    mkdir(directory, 0o755)
    // op, sequence, then the op's bytes (see InputReader).
    let open: [UInt8] = [0, 1, 0, 40, 242, 13, 0, 0, 7, 0, 0, 3, 6, 0, 0, 0]
    let prompt: [UInt8] = [1, 1, 0, 3, 5, 0, 6, 0, 7, 0]
    let seeds: [(String, [UInt8])] = [
        ("request", open + prompt),
        ("cancelled", open + prompt + [2, 1]),
        ("opens", open + [0, 2] + open.dropFirst(2) + [0, 3] + open.dropFirst(2) + prompt + [3, 0, 9, 4, 0, 9]),
        ("node-frames", open + [5, 1, 3, 0, 6, 1, 5, 0, 7, 1, 2] + prompt),
    ]
    for (name, bytes) in seeds {
        guard let file = fopen(directory + "/" + name, "wb") else { continue }
        _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    exit(0)
}
