import GGUF

/// A deterministic generator so every test failure reproduces.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func float(in range: ClosedRange<Float>) -> Float { Float.random(in: range, using: &self) }

    public mutating func floats(_ n: Int, in range: ClosedRange<Float> = -1 ... 1) -> [Float] {
        (0 ..< n).map { _ in float(in: range) }
    }
}

public enum RandomBlocks {
    static func putHalf(_ bytes: inout [UInt8], _ at: Int, _ value: Float) {
        let bits = Float16(value).bitPattern
        bytes[at] = UInt8(bits & 0xFF)
        bytes[at + 1] = UInt8(bits >> 8)
    }

    /// Random bytes in `type`'s block layout with scale fields set to sane magnitudes, so the
    /// weights they encode are finite and of order `scale`.
    public static func row(_ type: GGMLType, count: Int, scale: Float = 0.02, rng: inout SplitMix64) -> [UInt8] {
        switch type {
        case .f32:
            return rng.floats(count, in: -scale ... scale).flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }
        case .f16:
            return rng.floats(count, in: -scale ... scale).flatMap { f in withUnsafeBytes(of: Float16(f).bitPattern.littleEndian) { Array($0) } }
        case .bf16:
            return rng.floats(count, in: -scale ... scale).flatMap { f in withUnsafeBytes(of: UInt16(f.bitPattern >> 16).littleEndian) { Array($0) } }
        default:
            break
        }
        let blocks = count / type.blockSize
        var bytes = (0 ..< blocks * type.bytesPerBlock).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
        for b in 0 ..< blocks {
            let o = b * type.bytesPerBlock
            let d = rng.float(in: scale / 16 ... scale / 4) * (Bool.random(using: &rng) ? 1 : -1)
            switch type {
            case .q4_0, .q5_0, .q8_0:
                putHalf(&bytes, o, type == .q8_0 ? d / 8 : d)
            case .q4_1, .q5_1:
                putHalf(&bytes, o, abs(d) / 2)
                putHalf(&bytes, o + 2, -abs(d) * 4)
            case .q4_K, .q5_K:
                putHalf(&bytes, o, abs(d) / 32)
                putHalf(&bytes, o + 2, abs(d) / 32)
            case .q6_K:
                putHalf(&bytes, o + 208, d / 64)
            default:
                break
            }
        }
        return bytes
    }
}
