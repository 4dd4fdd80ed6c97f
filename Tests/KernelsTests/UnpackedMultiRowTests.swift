import CKernels
import GGUF
import Kernels
import TestSupport
import Testing

/// The prefill kernels of the 32-wide formats equal the single-row kernels.
@Suite struct UnpackedMultiRowTests {
    /// Prefill of the formats with a min unpacks a weight row once and meets four activation
    /// rows at a time; the result must equal the single-row kernel bit for bit, at every SIMD
    /// level this CPU has, so prefill agrees with decode whatever the batch.
    @Test(arguments: [GGMLType.q4_1, .q5_1], KernelTable.simdLevels)
    func unpackedFourRowsEqualSingleRows(_ type: GGMLType, _ level: ISALevel) throws {
        let table = KernelTable(level: level)
        let k = table.kernels(for: type)
        let single = try #require(k.dot)
        let format = ActivationFormat.q8_1
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

    /// The Q8_0-paired formats: the C twin, the single-row kernel, the eight-row decode kernel
    /// and the packed prefill kernels (eight rows, and sixteen where the level has them; four
    /// tokens at a time and the tokens left over) give the same floats bit for bit, at every
    /// SIMD level, for 19 rows (groups from row 0 and from row 3) and 7 tokens.
    @Test(arguments: [GGMLType.q4_0, .q5_0, .q8_0], KernelTable.simdLevels)
    func packedRowsAndEightRowDecodeEqualTheCTwin(_ type: GGMLType, _ level: ISALevel) throws {
        let table = KernelTable(level: level)
        let k = table.kernels(for: type)
        let single = try #require(k.dot), dot8 = try #require(k.dot8)
        let pack = try #require(k.pack8), gemm = try #require(k.packedGemm)
        let twin = try #require(KernelTable(level: .reference).kernels(for: type).dot)
        let rowScales = try #require(table.rowScales(.q8_0))
        #expect(k.prefill == .packedRows)
        var rng = SplitMix64(seed: 777 + UInt64(type.rawValue))
        let rows = 19, tokens = 7
        // The last case is the extreme one: every weight at its format's most negative value
        // (Q8_0 -128, Q4_0 -8, Q5_0 -16) against activations of ±127.
        for (n, extreme) in [(32, false), (96, false), (896, false), (4864, false), (896, true)] {
            let nb = n / 32
            var w = RandomBlocks.row(type, count: rows * n, scale: 0.05, rng: &rng)
            let wStride = w.count / rows
            if extreme {
                let blockBytes = wStride / nb
                for b in 0 ..< rows * nb {
                    // Every byte after the f16 scale: Q8_0's values, Q4_0's nibbles, Q5_0's high bits and nibbles.
                    for i in 2 ..< blockBytes { w[b * blockBytes + i] = type == .q8_0 ? 0x80 : 0x00 }
                }
            }
            let stride = ActivationFormat.q8_0.rowBytes(n)
            // Full-range activations, so the int8 products reach their largest magnitudes.
            let x = extreme ? (0 ..< tokens * n).map { $0 % 3 == 0 ? Float(-3) : 3 } : rng.floats(tokens * n, in: -3 ... 3)
            var act = [UInt8](repeating: 0, count: tokens * stride)
            act.withUnsafeMutableBytes { MatMul.quantizeActivations(.q8_0, x, tokens: tokens, columns: n, into: $0.baseAddress!, table: table) }
            var scales = [Float](repeating: 0, count: tokens * nb)
            var biased = [UInt8](repeating: 0, count: tokens * n)
            try w.withUnsafeBytes { wb in try act.withUnsafeBytes { ab in
                let wp = try #require(wb.baseAddress), ap = try #require(ab.baseAddress)
                rowScales(ap, Int64(stride), Int64(tokens), Int64(n), &scales)
                if k.biasedActivations, let bias = table.biasRows {
                    biased.withUnsafeMutableBytes { bias(ap, Int64(stride), Int64(tokens), Int64(n), $0.baseAddress) }
                }
                func expected(_ r: Int, _ t: Int) -> Float { twin(Int64(n), wp + r * wStride, ap + t * stride) }
                for r in 0 ..< rows {
                    for t in 0 ..< tokens {
                        let got = single(Int64(n), wp + r * wStride, ap + t * stride)
                        #expect(got.bitPattern == expected(r, t).bitPattern, "\(type) \(level) single n=\(n) row \(r) token \(t): \(got) vs \(expected(r, t))")
                    }
                }
                for first in [0, 3] {
                    for t in 0 ..< tokens {
                        var eight = [Float](repeating: .nan, count: 9)
                        dot8(Int64(n), wp + first * wStride, Int64(wStride), ap + t * stride, &eight)
                        for j in 0 ..< 8 {
                            #expect(eight[j].bitPattern == expected(first + j, t).bitPattern, "\(type) \(level) dot8 n=\(n) row \(first + j) token \(t)")
                        }
                        #expect(eight[8].isNaN, "dot8 wrote past its eight results")
                    }
                    var forms: [(Int, WeightKernels.Pack8, WeightKernels.PackedGemm)] = [(8, pack, gemm)]
                    if let (pack16, gemm16) = k.wide { forms.append((16, pack16, gemm16)) }
                    #expect((level == .avx512) == (k.wide != nil))
                    for (width, pack, gemm) in forms {
                        var packed = [UInt8](repeating: 0, count: width / 8 * Int(PG_PACK8_BYTES) * nb)
                        packed.withUnsafeMutableBytes { pack(wp + first * wStride, Int64(wStride), Int64(nb), $0.baseAddress) }
                        // Output rows wider than the kernel's, so a write past its columns shows.
                        let outStride = width + 5
                        var out = [Float](repeating: .nan, count: tokens * outStride)
                        biased.withUnsafeBytes { bb in
                            let (a, aStride) = k.biasedActivations ? (bb.baseAddress, n) : (ap, stride)
                            packed.withUnsafeBytes {
                                gemm(Int64(nb), $0.baseAddress, a, Int64(aStride), Int64(tokens), scales, Int64(nb), &out, Int64(outStride))
                            }
                        }
                        for t in 0 ..< tokens {
                            for j in 0 ..< width {
                                #expect(out[t * outStride + j].bitPattern == expected(first + j, t).bitPattern,
                                        "\(type) \(level) packed \(width) n=\(n) row \(first + j) token \(t)")
                            }
                            let guardsIntact = out[t * outStride + width ..< (t + 1) * outStride].allSatisfy(\.isNaN)
                            #expect(guardsIntact, "packed \(width) wrote past its rows")
                        }
                    }
                }
            } }
        }
    }
}
