import GGUF

/// Plain, obviously-correct dequantization of every computable format, written straight from
/// the block layouts in docs/kernels.md. It is the reference twin the SIMD dot products are
/// tested against, and it also serves embedding lookups, where speed does not matter.
public enum Dequantize {
    @inline(__always) static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    @inline(__always) static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
        p.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// Expands `count` values of `type` starting at `src` into `dst`.
    /// `count` must be a multiple of the type's block size; callers validate shapes beforehand.
    public static func row(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        switch type {
        case .f32:
            dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16:
            for i in 0 ..< count { dst[i] = half(src, 2 * i) }
        case .bf16:
            for i in 0 ..< count {
                dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0:
            for b in 0 ..< count / 32 { legacyBlock(type, src + b * type.bytesPerBlock, dst + 32 * b) }
        case .q4_K, .q5_K:
            for b in 0 ..< count / 256 { q45KBlock(type, src + b * type.bytesPerBlock, dst + 256 * b) }
        case .q6_K:
            for b in 0 ..< count / 256 { q6KBlock(src + b * type.bytesPerBlock, dst + 256 * b) }
        default:
            dst.update(repeating: .nan, count: count)
        }
    }

    static func legacyBlock(_ type: GGMLType, _ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        switch type {
        case .q4_0:
            for j in 0 ..< 16 {
                let q = byte(p, 2 + j)
                y[j] = Float(Int(q & 0xF) - 8) * d
                y[j + 16] = Float(Int(q >> 4) - 8) * d
            }
        case .q4_1:
            let m = half(p, 2)
            for j in 0 ..< 16 {
                let q = byte(p, 4 + j)
                y[j] = Float(q & 0xF) * d + m
                y[j + 16] = Float(q >> 4) * d + m
            }
        case .q5_0, .q5_1:
            let hasMin = type == .q5_1
            let m = hasMin ? half(p, 2) : 0
            let qhOffset = hasMin ? 4 : 2
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: qhOffset, as: UInt32.self))
            for j in 0 ..< 16 {
                let q = byte(p, qhOffset + 4 + j)
                let xh0 = UInt8(truncatingIfNeeded: ((qh >> UInt32(j)) << 4) & 0x10)
                let xh1 = UInt8(truncatingIfNeeded: (qh >> UInt32(j + 12)) & 0x10)
                let lo = Int((q & 0xF) | xh0), hi = Int((q >> 4) | xh1)
                if hasMin {
                    y[j] = Float(lo) * d + m
                    y[j + 16] = Float(hi) * d + m
                } else {
                    y[j] = Float(lo - 16) * d
                    y[j + 16] = Float(hi - 16) * d
                }
            }
        case .q8_0:
            for j in 0 ..< 32 { y[j] = Float(Int8(bitPattern: byte(p, 2 + j))) * d }
        default:
            break
        }
    }

    /// ggml's get_scale_min_k4: 6-bit scale and min for sub-block `j` of a Q4_K/Q5_K block.
    @inline(__always) static func scaleMin(_ j: Int, _ q: UnsafeRawPointer) -> (Float, Float) {
        if j < 4 {
            return (Float(byte(q, j) & 63), Float(byte(q, j + 4) & 63))
        }
        let sc = (byte(q, j + 4) & 0xF) | ((byte(q, j - 4) >> 6) << 4)
        let m = (byte(q, j + 4) >> 4) | ((byte(q, j) >> 6) << 4)
        return (Float(sc), Float(m))
    }

    static func q45KBlock(_ type: GGMLType, _ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0), dmin = half(p, 2)
        let scales = p + 4
        let five = type == .q5_K
        let qh = p + 16
        let qs = p + (five ? 48 : 16)
        for c in 0 ..< 4 {
            let (sc1, m1) = scaleMin(2 * c, scales)
            let (sc2, m2) = scaleMin(2 * c + 1, scales)
            let u1 = UInt8(1 << (2 * c)), u2 = UInt8(2 << (2 * c))
            for l in 0 ..< 32 {
                let q = byte(qs, 32 * c + l)
                var lo = Float(q & 0xF), hi = Float(q >> 4)
                if five {
                    let h = byte(qh, l)
                    if h & u1 != 0 { lo += 16 }
                    if h & u2 != 0 { hi += 16 }
                }
                y[64 * c + l] = d * sc1 * lo - dmin * m1
                y[64 * c + 32 + l] = d * sc2 * hi - dmin * m2
            }
        }
    }

    static func q6KBlock(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 208)
        for n in 0 ..< 2 {
            let L = p + 64 * n, H = p + 128 + 32 * n, S = p + 192 + 8 * n
            for l in 0 ..< 32 {
                let s = l / 16
                let h = byte(H, l)
                let a = byte(L, l), b = byte(L, l + 32)
                let q1 = Int((a & 0xF) | ((h & 3) << 4)) - 32
                let q2 = Int((b & 0xF) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int((b >> 4) | (((h >> 6) & 3) << 4)) - 32
                @inline(__always) func sc(_ i: Int) -> Float { Float(Int8(bitPattern: byte(S, i))) }
                y[128 * n + l] = d * sc(s) * Float(q1)
                y[128 * n + l + 32] = d * sc(s + 2) * Float(q2)
                y[128 * n + l + 64] = d * sc(s + 4) * Float(q3)
                y[128 * n + l + 96] = d * sc(s + 6) * Float(q4)
            }
        }
    }
}
