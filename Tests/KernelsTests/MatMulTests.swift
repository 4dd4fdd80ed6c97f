#if canImport(Glibc)
import Glibc
#endif
import CKernels
import GGUF
import Kernels
import TestSupport
import Testing

@Suite struct MatMulTests {
    static let pool = ComputePool(threadCount: 2)
    static let types: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K]

    /// The SIMD mat-mul agrees with the plain dequantize-then-dot twin, within the error that
    /// quantizing activations to 8 bits allows.
    @Test(arguments: types)
    func matchesReferenceTwin(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) + 100)
        let columns = type.blockSize == 256 ? 512 : 96, rows = 37, tokens = 3
        var bytes: [UInt8] = []
        for _ in 0 ..< rows { bytes += RandomBlocks.row(type, count: columns, scale: 0.05, rng: &rng) }
        let x = rng.floats(tokens * columns, in: -2 ... 2)
        var fast = [Float](repeating: 0, count: tokens * rows), slow = fast
        var scratch = [UInt8](repeating: 0, count: tokens * columns * 2 + 1024)
        try bytes.withUnsafeBytes { wb in
            let w = try WeightMatrix(type: type, rows: rows, columns: columns, data: wb.baseAddress!)
            MatMul.multiply(w, x, tokens: tokens, into: &fast, scratch: &scratch, pool: Self.pool)
            MatMul.referenceMultiply(w, x, tokens: tokens, into: &slow)
            // Scale of each dot product: Σ|w||x|.
            let row = UnsafeMutablePointer<Float>.allocate(capacity: columns)
            defer { row.deallocate() }
            for r in 0 ..< rows {
                w.dequantizeRow(r, into: row)
                for t in 0 ..< tokens {
                    var mag: Float = 0
                    for c in 0 ..< columns { mag += abs(row[c] * x[t * columns + c]) }
                    let tolerance: Float = (ActivationFormat(pairingWith: type) == .f32 ? 1e-5 : 1e-2) * mag + 1e-6
                    let i = t * rows + r
                    #expect(abs(fast[i] - slow[i]) <= tolerance, "\(type) row \(r) token \(t): \(fast[i]) vs \(slow[i])")
                }
            }
        }
    }

    @Test func weightMatrixRejectsBadShapes() {
        let bytes = [UInt8](repeating: 0, count: 64)
        bytes.withUnsafeBytes { b in
            #expect(throws: WeightMatrix.ShapeError.notBlockAligned(columns: 33, type: .q4_0)) {
                try WeightMatrix(type: .q4_0, rows: 1, columns: 33, data: b.baseAddress!)
            }
            #expect(throws: WeightMatrix.ShapeError.unsupportedType(.q2_K)) {
                try WeightMatrix(type: .q2_K, rows: 1, columns: 256, data: b.baseAddress!)
            }
        }
    }

    @Test func dequantizeAnchorsToTheFormulas() {
        // Q4_1 block: d = 0.5, m = -1, qs[0] = 0x3A -> y[0] = 10·0.5 − 1 = 4, y[16] = 3·0.5 − 1 = 0.5.
        var block = [UInt8](repeating: 0, count: 20)
        let d = Float16(0.5).bitPattern, m = Float16(-1).bitPattern
        block[0] = UInt8(d & 0xFF); block[1] = UInt8(d >> 8); block[2] = UInt8(m & 0xFF); block[3] = UInt8(m >> 8)
        block[4] = 0x3A
        var y = [Float](repeating: 0, count: 32)
        block.withUnsafeBytes { Dequantize.row(.q4_1, $0.baseAddress!, &y, count: 32) }
        #expect(y[0] == 4 && y[16] == 0.5 && y[1] == -1)
        // Q8_0: d = 0.25, qs[3] = -8 -> -2.
        var q8 = [UInt8](repeating: 0, count: 34)
        let d8 = Float16(0.25).bitPattern
        q8[0] = UInt8(d8 & 0xFF); q8[1] = UInt8(d8 >> 8); q8[2 + 3] = UInt8(bitPattern: -8)
        q8.withUnsafeBytes { Dequantize.row(.q8_0, $0.baseAddress!, &y, count: 32) }
        #expect(y[3] == -2 && y[0] == 0)
    }
}

@Suite struct OpsTests {
    @Test func ropeMatchesTheDefinition() {
        for layout in [RotaryEmbedding.Layout.interleaved, .neox] {
            let rope = RotaryEmbedding(layout: layout, dimensions: 8, base: 10000)
            var rng = SplitMix64(seed: 9)
            let x = rng.floats(16)
            var y = x
            var table = [Float](repeating: 0, count: 8)
            rope.table(position: 7, into: &table)
            rope.apply(&y, heads: 2, headDim: 8, table: table)
            for h in 0 ..< 2 {
                for i in 0 ..< 4 {
                    let theta = 7 * Double(10000).pow(-2 * Double(i) / 8)
                    let (a, b) = layout == .interleaved ? (h * 8 + 2 * i, h * 8 + 2 * i + 1) : (h * 8 + i, h * 8 + i + 4)
                    let ea = Double(x[a]) * cos(theta) - Double(x[b]) * sin(theta)
                    let eb = Double(x[a]) * sin(theta) + Double(x[b]) * cos(theta)
                    #expect(abs(Double(y[a]) - ea) < 1e-4 && abs(Double(y[b]) - eb) < 1e-4)
                }
            }
        }
    }

    @Test func attentionMatchesNaiveSoftmax() {
        let pool = ComputePool(threadCount: 2)
        let shape = Attention.Shape(heads: 4, kvHeads: 2, headDim: 8)
        var rng = SplitMix64(seed: 5)
        let positions: [Int32] = [3, 4, 5]
        let keys = rng.floats(6 * shape.kvWidth), values = rng.floats(6 * shape.kvWidth)
        let q = rng.floats(3 * shape.qWidth)
        var out = [Float](repeating: 0, count: 3 * shape.qWidth)
        var scores = [Float](repeating: 0, count: 2 * 32)
        Attention.causal(shape: shape, q: q, tokens: 3, positions: positions, keys: keys, values: values,
                         out: &out, scores: &scores, scoreStride: 32, pool: pool)
        for t in 0 ..< 3 {
            for h in 0 ..< 4 {
                let g = h / 2, span = Int(positions[t]) + 1
                var s = [Double](repeating: 0, count: span)
                for j in 0 ..< span {
                    var dot = 0.0
                    for i in 0 ..< 8 {
                        let qv = Double(q[t * 32 + h * 8 + i]), kv = Double(keys[j * 16 + g * 8 + i])
                        dot += qv * kv
                    }
                    s[j] = dot / 8.0.squareRoot()
                }
                let m = s.max() ?? 0
                var z = 0.0
                for j in 0 ..< span {
                    s[j] = exp(s[j] - m)
                    z += s[j]
                }
                for i in 0 ..< 8 {
                    var e = 0.0
                    for j in 0 ..< span { e += s[j] / z * Double(values[j * 16 + g * 8 + i]) }
                    #expect(abs(Double(out[t * 32 + h * 8 + i]) - e) < 1e-5)
                }
            }
        }
    }

    @Test func rmsNormAndSwiGLU() {
        var x: [Float] = [1, -2, 3, -4]
        let w: [Float] = [1, 1, 2, 0.5]
        var y = [Float](repeating: 0, count: 4)
        Ops.rmsNorm(x, weight: w, eps: 0, count: 4, into: &y)
        let r = Float((30.0 / 4).squareRoot())
        #expect(zip(y, [1 / r, -2 / r, 6 / r, -2 / r]).allSatisfy { abs($0 - $1) < 1e-6 })
        Ops.swiglu(&x, [1, 1, 1, 1], count: 4)
        #expect(abs(x[0] - Float(1 / (1 + exp(-1.0)))) < 1e-6)
    }

    @Test func poolVisitsEveryIndexOnce() {
        let pool = ComputePool(threadCount: 3)
        for count in [0, 1, 7, 64, 1000] {
            var hits = [Int](repeating: 0, count: count)
            hits.withUnsafeMutableBufferPointer { h in
                let p = h.baseAddress
                for _ in 0 ..< 50 { pool.parallelFor(count, granule: 4) { r in for i in r { p?[i] += 1 } } }
            }
            #expect(hits.allSatisfy { $0 == 50 })
        }
    }
}

private extension Double {
    func pow(_ e: Double) -> Double { Glibc.pow(self, e) }
}

@Suite struct AttentionKernelTests {
    /// The fused SIMD attention kernel against its scalar twin, for head sizes with and without
    /// a SIMD path, spans with and without a tail of under 8, and query scales from mild to
    /// ones whose scores underflow e^x.
    @Test(arguments: [8, 16, 64, 80, 128, 12, 48, 160, 256], [(1, Float(1)), (8, 1), (9, 1), (77, 1), (77, 40)])
    func fusedHeadMatchesReferenceTwin(_ headDim: Int, _ spanAndScale: (Int, Float)) {
        let (span, sharpness) = spanAndScale
        var rng = SplitMix64(seed: UInt64(headDim * 1000 + span))
        let stride = headDim * 3
        let q = rng.floats(headDim, in: -2 ... 2).map { $0 * sharpness }
        let k = rng.floats(span * stride, in: -2 ... 2), v = rng.floats(span * stride, in: -2 ... 2)
        var fast = [Float](repeating: 0, count: headDim), slow = fast
        var scratch = [Float](repeating: 0, count: span)
        let scale = 1 / Float(headDim).squareRoot()
        pg_attend_head_f32(q, k, v, Int64(stride), Int64(span), Int64(headDim), scale, &scratch, &fast)
        pg_attend_head_f32_ref(q, k, v, Int64(stride), Int64(span), Int64(headDim), scale, &scratch, &slow)
        for i in 0 ..< headDim { #expect(abs(fast[i] - slow[i]) <= 1e-5 * max(1, abs(slow[i])), "i \(i)") }
        // The AVX-512 kernel does the AVX2 kernel's arithmetic in wider registers: same bits
        // (16 and 256 are the smallest and largest head its generic path takes).
        if ISALevel.available.contains(.avx512) {
            var avx2 = [Float](repeating: 0, count: headDim), avx512 = avx2
            pg_attend_head_f32_avx2(q, k, v, Int64(stride), Int64(span), Int64(headDim), scale, &scratch, &avx2)
            pg_attend_head_f32_avx512(q, k, v, Int64(stride), Int64(span), Int64(headDim), scale, &scratch, &avx512)
            #expect(avx512.map(\.bitPattern) == avx2.map(\.bitPattern), "head \(headDim) span \(span)")
        }
    }
}

@Suite struct MatrixGroupTests {
    /// A group whose matrices need three different activation formats gives the same results
    /// as multiplying by each matrix alone, for decode (1 token) and prefill (many tokens).
    @Test(arguments: [1, 3, 20])
    func groupEqualsSeparateMultiplies(_ tokens: Int) throws {
        var rng = SplitMix64(seed: 77)
        let columns = 256
        let types: [GGMLType] = [.q4_K, .q8_0, .q4_1]
        let rows = [24, 8, 16]
        let blobs = zip(types, rows).map { type, r in (0 ..< r).flatMap { _ in RandomBlocks.row(type, count: columns, rng: &rng) } }
        let x = rng.floats(tokens * columns, in: -2 ... 2)
        let pool = ComputePool(threadCount: 2)
        try blobs[0].withUnsafeBytes { b0 in
            try blobs[1].withUnsafeBytes { b1 in
                try blobs[2].withUnsafeBytes { b2 in
                    let ws = try zip(types, zip(rows, [b0, b1, b2])).map { type, rb in
                        try WeightMatrix(type: type, rows: rb.0, columns: columns, data: rb.1.baseAddress!)
                    }
                    let group = try MatrixGroup(ws)
                    var scratch = [UInt8](repeating: 0, count: group.scratchBytes(tokens: tokens))
                    let outs = rows.map { UnsafeMutablePointer<Float>.allocate(capacity: $0 * tokens) }
                    defer { outs.forEach { $0.deallocate() } }
                    MatMul.multiply(group, x, tokens: tokens, into: outs, scratch: &scratch, pool: pool)
                    for (i, w) in ws.enumerated() {
                        var alone = [Float](repeating: 0, count: w.rows * tokens)
                        var s = [UInt8](repeating: 0, count: MatrixGroup(single: w).scratchBytes(tokens: tokens))
                        MatMul.multiply(w, x, tokens: tokens, into: &alone, scratch: &s, pool: pool)
                        #expect(Array(UnsafeBufferPointer(start: outs[i], count: alone.count)) == alone, "matrix \(i) (\(w.type))")
                    }
                }
            }
        }
        #expect(throws: MatrixGroup.GroupError.empty) { try MatrixGroup([]) }
    }
}
