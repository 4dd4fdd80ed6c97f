import CKernels
import GGUF
import Kernels
import TestSupport
import Testing

/// The kernel table: every SIMD level this machine has gives the same bytes and the same
/// products as every other, and the plain C level stays close to them.
@Suite struct ISALevelTests {
    @Test func levelsAreDetectedFromTheCPUAndTheOS() {
        let available = ISALevel.available
        #expect(available.first == .reference)
        #expect(available.contains(ISALevel.best))
        #expect(available.allSatisfy { $0 <= ISALevel.best })
        #expect(ISALevel.active <= ISALevel.best)
        // A level needs the OS to enable its registers, not only cpuid's word for it.
        let names = CPUFeatures.names
        if ISALevel.best >= .avx2 { #expect(names.contains("os:ymm")) }
        if ISALevel.best == .avx512 { #expect(names.contains("os:zmm") && names.contains("avx512_vnni")) }
    }

    @Test(arguments: [ActivationFormat.q8_0, .q8_1, .q8_K])
    func quantizersWriteTheSameBytesAtEveryLevel(_ format: ActivationFormat) throws {
        var rng = SplitMix64(seed: 99)
        let n = 4864
        let x = rng.floats(n, in: -4 ... 4)
        var outputs: [[UInt8]] = []
        for level in KernelTable.simdLevels {
            let quantize = try #require(KernelTable(level: level).quantizer(format))
            var out = [UInt8](repeating: 0xCD, count: format.rowBytes(n))
            x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBytes { quantize(xp.baseAddress, $0.baseAddress, Int64(n)) } }
            outputs.append(out)
        }
        #expect(outputs.allSatisfy { $0 == outputs[0] })
    }

    /// A whole multiply (decode and prefill strategies, a group of two matrices) gives the same
    /// floats at every SIMD level, and the plain C level agrees to quantization precision (bit
    /// for bit for the Q8_0-paired formats).
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .f16])
    func multiplyAgreesAcrossLevels(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: 7 + UInt64(type.rawValue))
        // 21 and 13 rows: the eight-row kernels leave rows over, and the group's second matrix
        // starts off a multiple of eight.
        let columns = 512, rows = 21, rowsB = 13
        let pool = ComputePool(threadCount: 2)
        let bytesA = RandomBlocks.row(type, count: rows * columns, scale: 0.05, rng: &rng)
        let bytesB = RandomBlocks.row(type, count: rowsB * columns, scale: 0.05, rng: &rng)
        for tokens in [1, 3, 9] {
            let x = rng.floats(tokens * columns, in: -2 ... 2)
            var results: [(ISALevel, [Float])] = []
            for level in ISALevel.available {
                let table = KernelTable(level: level)
                var outA = [Float](repeating: .nan, count: tokens * rows), outB = [Float](repeating: .nan, count: tokens * rowsB)
                try bytesA.withUnsafeBytes { a in
                    try bytesB.withUnsafeBytes { b in
                        let wa = try WeightMatrix(type: type, rows: rows, columns: columns, data: a.baseAddress!)
                        let wb = try WeightMatrix(type: type, rows: rowsB, columns: columns, data: b.baseAddress!)
                        let group = try MatrixGroup([wa, wb], table: table)
                        var scratch = [UInt8](repeating: 0, count: group.scratchBytes(tokens: tokens))
                        outA.withUnsafeMutableBufferPointer { oa in
                            outB.withUnsafeMutableBufferPointer { ob in
                                let outs = [oa.baseAddress!, ob.baseAddress!]
                                outs.withUnsafeBufferPointer { o in
                                    scratch.withUnsafeMutableBytes { s in
                                        MatMul.multiply(group, x, tokens: tokens, into: o.baseAddress!, scratch: s.baseAddress!, pool: pool)
                                    }
                                }
                            }
                        }
                    }
                }
                results.append((level, outA + outB))
            }
            let simd = results.filter { $0.0 != .reference }
            for (level, out) in simd {
                #expect(out.map(\.bitPattern) == simd[0].1.map(\.bitPattern), "\(type) tokens=\(tokens): \(level) vs \(simd[0].0)")
            }
            // The Q8_0-paired formats fold blocks in one order everywhere, the C twins included.
            if [.q4_0, .q5_0, .q8_0].contains(type), let reference = results.first(where: { $0.0 == .reference })?.1 {
                for (level, out) in simd {
                    #expect(out.map(\.bitPattern) == reference.map(\.bitPattern), "\(type) tokens=\(tokens): \(level) vs the C twins")
                }
            }
            if let reference = results.first(where: { $0.0 == .reference })?.1, let fast = simd.first?.1 {
                let scale = reference.map { abs($0) }.max() ?? 1
                for (r, f) in zip(reference, fast) {
                    #expect(abs(r - f) <= 0.02 * max(scale, 1), "\(type) tokens=\(tokens): reference \(r) vs SIMD \(f)")
                }
            }
        }
    }
}
