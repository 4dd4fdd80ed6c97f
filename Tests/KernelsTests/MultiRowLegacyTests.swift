import CKernels
import GGUF
import Kernels
import TestSupport
import Testing

/// The four-row prefill kernels must equal four single-row dot products bit for bit, so that
/// prefill and decode compute identical numbers.
@Suite struct MultiRowLegacyTests {
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0])
    func fourRowsEqualSingleRows(_ type: GGMLType) throws {
        let single = try #require(MatMul.quantizedDot(type))
        let four = try #require(MatMul.quantizedDot4(type))
        let format = ActivationFormat(pairingWith: type)
        var rng = SplitMix64(seed: UInt64(type.rawValue) * 31)
        for n in [32, 96, 576, 896, 1536] {
            let w = RandomBlocks.row(type, count: n, scale: 0.05, rng: &rng)
            let stride = format.rowBytes(n) + 32
            var act = [UInt8](repeating: 0, count: 4 * stride)
            for t in 0 ..< 4 {
                let x = rng.floats(n, in: -3 ... 3)
                act.withUnsafeMutableBytes { MatMul.quantizeActivations(format, x, tokens: 1, columns: n, into: $0.baseAddress! + t * stride) }
            }
            for count in 1 ... 4 {
                var out = [Float](repeating: .nan, count: 4)
                w.withUnsafeBytes { wb in act.withUnsafeBytes { ab in
                    four(Int64(n), wb.baseAddress, ab.baseAddress, Int64(stride), Int64(count), &out)
                    for t in 0 ..< count {
                        let expected = single(Int64(n), wb.baseAddress, ab.baseAddress! + t * stride)
                        #expect(out[t].bitPattern == expected.bitPattern, "\(type) n=\(n) count=\(count) row \(t)")
                    }
                } }
            }
        }
    }
}

/// The prefill kernels that read Q8_0 activation scales as floats equal the single-row kernels.
@Suite struct ScaledMultiRowTests {
    @Test(arguments: [(GGMLType.q4_0, 0), (.q5_0, 1), (.q8_0, 2)])
    func scaledFourRowsEqualSingleRows(_ type: GGMLType, _ which: Int) throws {
        let single = try #require(MatMul.quantizedDot(type))
        var rng = SplitMix64(seed: 4242 + UInt64(which))
        for n in [32, 96, 896, 4864] {
            let w = RandomBlocks.row(type, count: n, scale: 0.05, rng: &rng)
            let stride = ActivationFormat.q8_0.rowBytes(n)
            var act = [UInt8](repeating: 0, count: 4 * stride)
            for t in 0 ..< 4 {
                let x = rng.floats(n, in: -3 ... 3)
                act.withUnsafeMutableBytes { MatMul.quantizeActivations(.q8_0, x, tokens: 1, columns: n, into: $0.baseAddress! + t * stride) }
            }
            var scales = [Float](repeating: 0, count: 4 * n / 32)
            var out = [Float](repeating: .nan, count: 4)
            w.withUnsafeBytes { wb in act.withUnsafeBytes { ab in
                pg_q8_0_row_scales(ab.baseAddress, Int64(stride), 4, Int64(n), &scales)
                switch which {
                case 0: pg_vec_dot4s_q4_0_q8_0(Int64(n), wb.baseAddress, ab.baseAddress, Int64(stride), scales, Int64(n / 32), &out)
                case 1: pg_vec_dot4s_q5_0_q8_0(Int64(n), wb.baseAddress, ab.baseAddress, Int64(stride), scales, Int64(n / 32), &out)
                default: pg_vec_dot4s_q8_0_q8_0(Int64(n), wb.baseAddress, ab.baseAddress, Int64(stride), scales, Int64(n / 32), &out)
                }
                for t in 0 ..< 4 {
                    let expected = single(Int64(n), wb.baseAddress, ab.baseAddress! + t * stride)
                    #expect(out[t].bitPattern == expected.bitPattern, "\(type) n=\(n) row \(t)")
                }
            } }
        }
    }
}
