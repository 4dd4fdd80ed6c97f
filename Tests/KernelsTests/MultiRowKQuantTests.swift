// The multi-row K-quant dot products (prefill) against the single-row kernels: for every count
// 1...4 each output must equal, bit for bit, the single-row result on that activation row.
import CKernels
import GGUF
import Kernels
import TestSupport
import Testing

private typealias KMultiRNG = SplitMix64

private enum KType: String, CaseIterable, CustomStringConvertible {
    case q4K, q5K, q6K
    var description: String { rawValue }
    var blockBytes: Int { switch self { case .q4K: 144; case .q5K: 176; case .q6K: 210 } }
    /// Offsets of the f16 d (and dmin, where the format has one) inside a block.
    var scaleOffsets: [Int] { switch self { case .q4K, .q5K: [0, 2]; case .q6K: [208] } }

    var ggml: GGMLType { switch self { case .q4K: .q4_K; case .q5K: .q5_K; case .q6K: .q6_K } }

    func single(_ level: ISALevel, _ n: Int64, _ w: UnsafeRawPointer, _ a: UnsafeRawPointer) -> Float {
        KernelTable(level: level).kernels(for: ggml).dot!(n, w, a)
    }
    func multi(_ level: ISALevel, _ n: Int64, _ w: UnsafeRawPointer, _ a: UnsafeRawPointer, _ stride: Int64, _ count: Int64,
               _ out: UnsafeMutablePointer<Float>) {
        KernelTable(level: level).kernels(for: ggml).dot4!(n, w, a, stride, count, out)
    }
}

/// Random weight row of n values: random bytes, with small positive f16 d/dmin in every block.
private func weightRow(_ type: KType, _ n: Int, _ rng: inout KMultiRNG) -> [UInt8] {
    let blocks = n / 256
    var w = (0..<(blocks * type.blockBytes)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 56) }
    for b in 0..<blocks {
        for off in type.scaleOffsets {
            let bits = Float16(rng.float(0.001, 0.01)).bitPattern
            w[b * type.blockBytes + off] = UInt8(bits & 0xFF)
            w[b * type.blockBytes + off + 1] = UInt8(bits >> 8)
        }
    }
    return w
}

/// Four Q8_K activation rows, `stride` bytes apart (stride >= n/256*292; padding is garbage).
private func activationRows(_ n: Int, stride: Int, _ rng: inout KMultiRNG) -> [UInt8] {
    var a = (0..<(4 * stride)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 56) }
    for r in 0..<4 {
        let x = (0..<n).map { _ in rng.float(-3, 3) }
        a.withUnsafeMutableBytes { buf in
            x.withUnsafeBufferPointer { pg_quantize_row_q8_K_ref($0.baseAddress!, buf.baseAddress! + r * stride, Int64(n)) }
        }
    }
    return a
}

@Suite struct MultiRowKQuantTests {
    @Test(arguments: KType.allCases, [256, 768, 1280, 4864])
    fileprivate func matchesSingleRowBitForBit(_ type: KType, _ n: Int) {
        var rng = KMultiRNG(seed: UInt64(n) &* 1_000_003 &+ UInt64(type.blockBytes))
        let tight = n / 256 * 292
        for stride in [tight, tight + 292 * 3 + 37] {
            for trial in 0..<3 {
                let w = weightRow(type, n, &rng)
                let a = activationRows(n, stride: stride, &rng)
                w.withUnsafeBytes { wb in
                    a.withUnsafeBytes { ab in
                        // Every SIMD level: four rows equal single rows, and equal every other level's.
                        let first = (0..<4).map { r in type.single(KernelTable.simdLevels[0], Int64(n), wb.baseAddress!, ab.baseAddress! + r * stride) }
                        for level in KernelTable.simdLevels {
                            let single = (0..<4).map { r in type.single(level, Int64(n), wb.baseAddress!, ab.baseAddress! + r * stride) }
                            #expect(single.map(\.bitPattern) == first.map(\.bitPattern), "\(type) \(level) differs from \(KernelTable.simdLevels[0])")
                            for count in 1...4 {
                                var out = [Float](repeating: .nan, count: 5)
                                type.multi(level, Int64(n), wb.baseAddress!, ab.baseAddress!, Int64(stride), Int64(count), &out)
                                for r in 0..<count {
                                    #expect(out[r].bitPattern == single[r].bitPattern,
                                            "\(type) \(level) n=\(n) stride=\(stride) trial=\(trial) count=\(count) row=\(r): \(out[r]) vs \(single[r])")
                                }
                                #expect(out[count].isNaN, "wrote past count")
                            }
                        }
                    }
                }
            }
        }
    }
}
