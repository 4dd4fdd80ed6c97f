import NIOCore
import StarStream
import TestSupport

/// The shared deterministic generator, so every run sees the same inputs.
typealias SeededRandom = SplitMix64

func randomValues(_ count: Int, scale: Float = 4, using rng: inout SeededRandom) -> [Float] {
    (0..<count).map { _ in Float.random(in: -scale...scale, using: &rng) }
}

func activationsFrame(
    dtype: WireDType, count: Int, width: Int, firstPosition: UInt32 = 7, sequenceID: UInt64 = 42,
    using rng: inout SeededRandom
) -> StarStreamFrame {
    let positions = (0..<count).map { firstPosition + UInt32($0) * 2 }
    let values = randomValues(count * width, using: &rng)
    return StarStreamFrame(
        sequenceID: sequenceID, position: firstPosition,
        payload: .activations(Activations(dtype: dtype, positions: positions, width: width, values: values)))
}

let sampleDigest: [UInt8] = (0..<32).map { UInt8($0 * 7 & 0xFF) }

/// Sampling settings with a distinct value in every field, so a swapped field shows.
let sampleSampling = WireSampling(
    temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, frequencyPenalty: 0.25,
    presencePenalty: -0.5, penaltyLastN: 64, seed: 0x0123_4567_89AB_CDEF)

/// One valid frame of every type (and every dtype).
func sampleFrames() -> [StarStreamFrame] {
    var rng = SeededRandom(seed: 1)
    return [
        StarStreamFrame(payload: .hello(Hello(role: .driver, clusterToken: "s3cret-τoken", modelDigest: sampleDigest))),
        StarStreamFrame(
            payload: .hello(
                Hello(role: .node, clusterToken: "", modelDigest: sampleDigest, firstLayer: 8, endLayer: 16))),
        activationsFrame(dtype: .f32, count: 2, width: 8, using: &rng),
        activationsFrame(dtype: .f16, count: 3, width: 16, using: &rng),
        activationsFrame(dtype: .q8, count: 2, width: 64, using: &rng),
        StarStreamFrame(sequenceID: 9, position: 100, payload: .token(TokenMessage(tokenID: 1234, logprob: -0.25))),
        StarStreamFrame(sequenceID: 9, position: 101, payload: .token(TokenMessage(tokenID: -1, logprob: nil))),
        StarStreamFrame(sequenceID: 9, payload: .cancel),
        StarStreamFrame(payload: .error(code: 101, message: "unknown sequence ✗")),
        StarStreamFrame(payload: .ping(0xDEAD_BEEF_0123_4567)),
        StarStreamFrame(payload: .pong(0xDEAD_BEEF_0123_4567)),
        StarStreamFrame(
            sequenceID: 9,
            payload: .open(
                SequenceOpen(
                    promptLength: 5, maxNewTokens: 128, wantsLogprobs: true, sampling: sampleSampling,
                    stopTokens: [2, 151_645], history: [11, -3, 0x7FFF_FFFF]))),
        StarStreamFrame(
            sequenceID: 10, payload: .open(SequenceOpen(promptLength: 1, maxNewTokens: 0, sampling: sampleSampling))),
        StarStreamFrame(
            sequenceID: 9, position: 3, payload: .prompt(PromptChunk(firstPosition: 3, tokens: [101, 7, Int32.min]))),
        StarStreamFrame(sequenceID: 9, payload: .done(.length, generated: 128)),
        StarStreamFrame(sequenceID: 10, payload: .done(.cancelled, generated: 0)),
        StarStreamFrame(payload: .probe(0x0BAD_CAFE_F00D_0001)),
    ]
}

func encoded(_ frame: StarStreamFrame) throws -> ByteBuffer {
    try StarStreamCodec.encode(frame)
}

func bytes(_ buffer: ByteBuffer) -> [UInt8] {
    buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

/// Overwrites the header's checksum with the CRC of the declared payload (as far as it is there).
func fixChecksum(_ bytes: inout [UInt8]) {
    guard bytes.count >= 32 else { return }
    let length = Int(UInt32(bytes[24]) | UInt32(bytes[25]) << 8 | UInt32(bytes[26]) << 16 | UInt32(bytes[27]) << 24)
    let end = 32 + min(length, bytes.count - 32)
    let crc = CRC32C.checksum(bytes[32..<end])
    for i in 0..<4 { bytes[28 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
}

func setLE32(_ bytes: inout [UInt8], at offset: Int, _ value: UInt32) {
    for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
}

func setLE16(_ bytes: inout [UInt8], at offset: Int, _ value: UInt16) {
    for i in 0..<2 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt16(i))) }
}

/// Runs a fresh decoder over `input` delivered in `chunks` (sizes), collecting frames until it
/// throws or runs out of bytes.
func decodeAll(
    _ input: [UInt8], limits: StarStreamLimits, chunks: [Int]? = nil
) -> (frames: [StarStreamFrame], error: StarStreamError?, leftover: Int) {
    var decoder = StarStreamFrameDecoder(limits: limits)
    var buffer = ByteBuffer()
    var frames: [StarStreamFrame] = []
    var offset = 0
    let sizes = chunks ?? [input.count]
    var chunkIndex = 0
    while offset < input.count || chunkIndex == 0 {
        let size = min(max(1, sizes[chunkIndex % sizes.count]), input.count - offset)
        chunkIndex += 1
        buffer.writeBytes(input[offset..<(offset + size)])
        offset += size
        do {
            while let frame = try decoder.decodeFrame(&buffer) {
                frames.append(frame)
            }
        } catch {
            return (frames, error, buffer.readableBytes)
        }
        if input.isEmpty { break }
    }
    return (frames, nil, buffer.readableBytes)
}

/// Frame equality that treats values bit for bit (NaN payloads included).
func bitwiseEqual(_ a: [StarStreamFrame], _ b: [StarStreamFrame]) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) {
        switch (x.payload, y.payload) {
        case (.activations(let p), .activations(let q)):
            guard x.sequenceID == y.sequenceID, x.position == y.position, p.dtype == q.dtype,
                p.positions == q.positions, p.width == q.width,
                p.values.map(\.bitPattern) == q.values.map(\.bitPattern)
            else { return false }
        default:
            guard x == y else { return false }
        }
    }
    return true
}
