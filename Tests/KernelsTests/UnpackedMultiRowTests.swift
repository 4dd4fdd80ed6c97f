import CKernels
import GGUF
import Kernels
import TestSupport
import Testing

/// The prefill kernels of the 32-wide formats equal the single-row kernels.
@Suite struct UnpackedMultiRowTests {
    /// Prefill unpacks a weight row once and meets four activation rows at a time; the result
    /// must equal the single-row kernel bit for bit, at every SIMD level this CPU has, so
    /// prefill agrees with decode whatever the batch.
    @Test(arguments: [GGMLType.q4_0, .q5_0, .q8_0, .q4_1, .q5_1], KernelTable.simdLevels)
    func unpackedFourRowsEqualSingleRows(_ type: GGMLType, _ level: ISALevel) throws {
        let table = KernelTable(level: level)
        let k = table.kernels(for: type)
        let single = try #require(k.dot)
        let withMin = type == .q4_1 || type == .q5_1
        let format: ActivationFormat = withMin ? .q8_1 : .q8_0
        let unpack = try #require(k.unpack)
        let kernels = [("\(level)", try #require(k.unpackedDot4))]
        let rowScales = try #require(table.rowScales(format))
        var rng = SplitMix64(seed: 4242 + UInt64(type.rawValue))
        for n in [32, 96, 896, 4864] {
            let nb = n / 32
            let w = RandomBlocks.row(type, count: n, scale: 0.05, rng: &rng)
            let stride = format.rowBytes(n)
            var act = [UInt8](repeating: 0, count: 4 * stride)
            for t in 0 ..< 4 {
                // Full-range activations, so the int8 products reach their largest magnitudes.
                let x = rng.floats(n, in: -3 ... 3)
                act.withUnsafeMutableBytes {
                    MatMul.quantizeActivations(format, x, tokens: 1, columns: n, into: $0.baseAddress! + t * stride, table: table)
                }
            }
            var scales = [Float](repeating: 0, count: 4 * nb * 2)
            var unpacked = [UInt8](repeating: 0, count: 64 * nb)
            var weightScales = [Float](repeating: 0, count: 2 * nb)
            w.withUnsafeBytes { wb in act.withUnsafeBytes { ab in
                rowScales(ab.baseAddress, Int64(stride), 4, Int64(n), &scales)
                unpacked.withUnsafeMutableBytes { unpack(wb.baseAddress, Int64(nb), $0.baseAddress, &weightScales) }
                // The VNNI levels read the activations biased to unsigned bytes.
                var biased = [UInt8](repeating: 0, count: 4 * n)
                if k.biasedActivations, let bias = table.biasRows {
                    biased.withUnsafeMutableBytes { bias(ab.baseAddress, Int64(stride), 4, Int64(n), $0.baseAddress) }
                }
                for (name, kernel) in kernels {
                    var out = [Float](repeating: .nan, count: 4)
                    biased.withUnsafeBytes { bb in
                        let (rows, rowStride) = k.biasedActivations ? (bb.baseAddress, n) : (ab.baseAddress, stride)
                        unpacked.withUnsafeBytes { kernel(Int64(nb), $0.baseAddress, weightScales, rows, Int64(rowStride), scales, Int64(nb), &out) }
                    }
                    for t in 0 ..< 4 {
                        let expected = single(Int64(n), wb.baseAddress, ab.baseAddress! + t * stride)
                        #expect(out[t].bitPattern == expected.bitPattern, "\(type) \(name) n=\(n) row \(t)")
                    }
                }
            } }
        }
    }
}
