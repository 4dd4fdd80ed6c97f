#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import StarStream

/// libFuzzer target: the StarStream decoder fed one input in random read splits, before and
/// after the gate opens. Input: byte 0 picks the gate state and frame cap, byte 1 seeds the
/// splits, the rest is the stream. Every decoded frame must survive encode → decode → encode
/// with the same bytes; any decoder error ends the stream, as a node closes the connection.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStarStreamDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let gate = StarStreamGate()
    if bytes[0] & 1 == 1 { gate.open() }
    let limits = StarStreamLimits(maxPayloadBytes: bytes[0] & 2 == 0 ? 1 << 16 : 1 << 20)
    var decoder = StarStreamFrameDecoder(limits: limits, gate: gate)
    var splits = SplitMix64(seed: UInt64(bytes[1]))
    var buffer = ByteBufferAllocator().buffer(capacity: size)
    var offset = 2
    while offset < size {
        let chunk = min(size - offset, 1 + Int(splits.next() % 97))
        buffer.writeBytes(UnsafeBufferPointer(rebasing: bytes[offset ..< offset + chunk]))
        offset += chunk
        do {
            while let frame = try decoder.decodeFrame(&buffer) {
                checkRoundTrip(frame, limits: limits)
                if case .hello = frame.payload { gate.open() }
            }
        } catch {
            return 0
        }
    }
    return 0
}

/// A decoded frame encodes to bytes that decode to a frame that encodes to the same bytes.
func checkRoundTrip(_ frame: StarStreamFrame, limits: StarStreamLimits) {
    var first = ByteBuffer()
    do { try StarStreamCodec.encode(frame, into: &first) } catch {
        fatalError("a decoded frame does not encode: \(error)")
    }
    var decoder = StarStreamFrameDecoder(limits: StarStreamLimits(maxPayloadBytes: max(limits.maxPayloadBytes, first.readableBytes)))
    var copy = first
    guard let again = try? decoder.decodeFrame(&copy) else { fatalError("an encoded frame does not decode") }
    var second = ByteBuffer()
    do { try StarStreamCodec.encode(again, into: &second) } catch { fatalError("a re-decoded frame does not encode: \(error)") }
    if first != second { fatalError("encode → decode → encode changed the bytes") }
}

/// Seeds for the corpus (`PANGALACTIC_FUZZ_SEEDS=DIR`): one valid frame of every type, and a
/// HELLO followed by sequence frames, each behind the two control bytes.
@_cdecl("LLVMFuzzerInitialize")
public func initializeStarStreamDecoder(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    guard let directory = getenv("PANGALACTIC_FUZZ_SEEDS").map({ String(cString: $0) }) else { return 0 }
    let sampling = WireSampling(temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.1, frequencyPenalty: 0.1,
                                presencePenalty: 0.2, penaltyLastN: 64, seed: 42)
    let hello = StarStreamFrame(payload: .hello(Hello(role: .node, clusterToken: "token", modelDigest: Array(repeating: 7, count: 32),
                                                      firstLayer: 0, endLayer: 10)))
    let frames: [(String, [StarStreamFrame])] = [
        ("hello", [hello]),
        ("activations-f32", [hello, StarStreamFrame(sequenceID: 1, position: 3, payload: .activations(Activations(dtype: .f32, positions: [3, 4], width: 4, values: [1, -2, 3.5, 0, 0.25, 8, -1, 2])))]),
        ("activations-f16", [hello, StarStreamFrame(sequenceID: 1, position: 3, payload: .activations(Activations(dtype: .f16, positions: [3], width: 8, values: [1, -2, 3.5, 0, 0.25, 8, -1, 2])))]),
        ("activations-q8", [hello, StarStreamFrame(sequenceID: 1, position: 3, payload: .activations(Activations(dtype: .q8, positions: [3], width: 32, values: (0 ..< 32).map { Float($0) / 7 })))]),
        ("token", [hello, StarStreamFrame(sequenceID: 2, position: 9, payload: .token(TokenMessage(tokenID: 17, logprob: -0.5, alternatives: [TokenAlternative(tokenID: 18, logprob: -1.5)])))]),
        ("open-prompt", [hello, StarStreamFrame(sequenceID: 3, payload: .open(SequenceOpen(promptLength: 4, maxNewTokens: 16, wantsLogprobs: true, sampling: sampling, stopTokens: [2], history: [5, 6], randomDraws: 1, topLogprobs: 2))),
                         StarStreamFrame(sequenceID: 3, payload: .prompt(PromptChunk(firstPosition: 0, tokens: [1, 2, 3, 4])))]),
        ("control", [hello, StarStreamFrame(sequenceID: 4, payload: .cancel), StarStreamFrame(payload: .ping(99)), StarStreamFrame(payload: .pong(99)),
                     StarStreamFrame(payload: .probe(5)), StarStreamFrame(sequenceID: 4, payload: .done(.length, generated: 16)),
                     StarStreamFrame(payload: .error(code: 100, message: "refused"))]),
    ]
    mkdir(directory, 0o755)
    for (name, list) in frames {
        var buffer = ByteBuffer(bytes: [1, 0])
        for frame in list { try? StarStreamCodec.encode(frame, into: &buffer) }
        let bytes = Array(buffer.readableBytesView)
        guard let file = fopen(directory + "/" + name, "wb") else { continue }
        _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    exit(0)
}

/// Deterministic read splits (StarStreamTests' `ReadSplits` is the same, so a replay splits alike).
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
