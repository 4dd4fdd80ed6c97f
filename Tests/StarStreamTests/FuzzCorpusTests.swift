import NIOCore
import StarStream
import Testing
import TestSupport

/// Replays the StarStream decoder's fuzz corpus (scripts/fuzz starstream-decoder) with the
/// fuzz target's rules: byte 0 picks the gate and the cap, byte 1 seeds the read splits, and
/// every decoded frame survives encode → decode → encode unchanged.
@Suite struct StarStreamFuzzCorpusTests {
    @Test func theCorpusDecodesOrFailsWithATypedErrorAndFramesRoundTrip() throws {
        let inputs = FuzzCorpus.inputs("starstream-decoder")
        #expect(inputs.count >= 7, "the seed corpus is missing")
        var frames = 0
        for (name, bytes) in inputs where bytes.count >= 2 {
            let gate = StarStreamGate()
            if bytes[0] & 1 == 1 { gate.open() }
            let limits = StarStreamLimits(maxPayloadBytes: bytes[0] & 2 == 0 ? 1 << 16 : 1 << 20)
            var decoder = StarStreamFrameDecoder(limits: limits, gate: gate)
            var splits = ReadSplits(seed: UInt64(bytes[1]))
            var buffer = ByteBuffer()
            var offset = 2
            stream: while offset < bytes.count {
                let chunk = min(bytes.count - offset, 1 + Int(splits.next() % 97))
                buffer.writeBytes(bytes[offset ..< offset + chunk])
                offset += chunk
                do {
                    while let frame = try decoder.decodeFrame(&buffer) {
                        frames += 1
                        var first = ByteBuffer()
                        try StarStreamCodec.encode(frame, into: &first)
                        var copy = first
                        var again = StarStreamFrameDecoder(limits: StarStreamLimits(maxPayloadBytes: max(limits.maxPayloadBytes, first.readableBytes)))
                        let decoded = try #require(try again.decodeFrame(&copy), "\(name)")
                        var second = ByteBuffer()
                        try StarStreamCodec.encode(decoded, into: &second)
                        #expect(first == second, "\(name): a frame changed on a round trip")
                        if case .hello = frame.payload { gate.open() }
                    }
                } catch is StarStreamError {
                    break stream
                }
            }
        }
        #expect(frames >= 14, "the seeds' frames decode")
    }
}

/// The fuzz target's read splits (Fuzz/StarStreamDecoder), so a replay splits alike.
struct ReadSplits {
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
