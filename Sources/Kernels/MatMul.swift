#if canImport(Glibc)
import Glibc
#endif
import CKernels
import GGUF

/// Mat-vec and mat-mul over weights kept in their stored format.
///
/// `out[t][r] = dot(W.row(r), x[t])` for every token row `t`. Activations are quantized once per
/// call to the weight's partner format, then every weight row meets every token row through an
/// integer SIMD dot product. This is the one entry point the forward pass uses for weights, so
/// faster strategies can replace its insides without touching model code.
public enum MatMul {
    public typealias DotKernel = @convention(c) (Int64, UnsafeRawPointer?, UnsafeRawPointer?) -> Float

    /// The SIMD dot product for a quantized weight type (nil for float types).
    public static func quantizedDot(_ type: GGMLType) -> DotKernel? {
        switch type {
        case .q4_0: return pg_vec_dot_q4_0_q8_0
        case .q4_1: return pg_vec_dot_q4_1_q8_1
        case .q5_0: return pg_vec_dot_q5_0_q8_0
        case .q5_1: return pg_vec_dot_q5_1_q8_1
        case .q8_0: return pg_vec_dot_q8_0_q8_0
        case .q4_K: return pg_vec_dot_q4_K_q8_K
        case .q5_K: return pg_vec_dot_q5_K_q8_K
        case .q6_K: return pg_vec_dot_q6_K_q8_K
        default: return nil
        }
    }

    public typealias Dot4Kernel = @convention(c) (Int64, UnsafeRawPointer?, UnsafeRawPointer?, Int64, Int64, UnsafeMutablePointer<Float>?) -> Void

    /// The dot product of one K-quant weight row with up to four activation rows at once
    /// (prefill), equal bit for bit to single-row dots. The 32-wide formats take the
    /// unpack-once path instead (`unpackSigned`, `unpackUnsigned`).
    public static func quantizedDot4(_ type: GGMLType) -> Dot4Kernel? {
        switch type {
        case .q4_K: return pg_vec_dot4_q4_K_q8_K
        case .q5_K: return pg_vec_dot4_q5_K_q8_K
        case .q6_K: return pg_vec_dot4_q6_K_q8_K
        default: return nil
        }
    }

    public typealias UnpackKernel = @convention(c) (UnsafeRawPointer?, Int64, UnsafeMutableRawPointer?,
                                                    UnsafeMutablePointer<Float>?) -> Void
    public typealias Dot4UnpackedKernel = @convention(c) (Int64, UnsafeRawPointer?, UnsafePointer<Float>?, UnsafeRawPointer?, Int64,
                                                          UnsafePointer<Float>?, Int64, UnsafeMutablePointer<Float>?) -> Void

    /// For prefill with Q8_0 activations: unpacks a weight row once into signed bytes, for
    /// `unpackedDot4` to meet many activation rows with.
    public static func unpackSigned(_ type: GGMLType) -> UnpackKernel? {
        switch type {
        case .q4_0: return pg_unpack_q4_0_signed
        case .q5_0: return pg_unpack_q5_0_signed
        case .q8_0: return pg_unpack_q8_0_signed
        default: return nil
        }
    }

    /// For prefill with Q8_1 activations (the formats with a min): unpacks a weight row once
    /// into unsigned bytes and (d, m) pairs, for `unpackedDot4Min`.
    public static func unpackUnsigned(_ type: GGMLType) -> UnpackKernel? {
        switch type {
        case .q4_1: return pg_unpack_q4_1
        case .q5_1: return pg_unpack_q5_1
        default: return nil
        }
    }

    /// Four activation rows against an unpacked weight row (AVX-VNNI where the CPU has it; the
    /// results are the same either way).
    public static let unpackedDot4: Dot4UnpackedKernel = hasAVXVNNI ? pg_vec_dot4u_i8_q8_0_vnni : pg_vec_dot4u_i8_q8_0
    public static let unpackedDot4Min: Dot4UnpackedKernel = hasAVXVNNI ? pg_vec_dot4u_u8_q8_1_vnni : pg_vec_dot4u_u8_q8_1

    /// Whether the int8 kernels use AVX-VNNI. `PANGALACTIC_NO_VNNI=1` turns it off, for
    /// comparisons at the plain AVX2 level.
    public static let hasAVXVNNI = pg_cpu_has_avx_vnni() != 0 && getenv("PANGALACTIC_NO_VNNI") == nil

    public static func quantizeActivations(_ format: ActivationFormat, _ x: UnsafePointer<Float>, tokens: Int,
                                           columns: Int, into dst: UnsafeMutableRawPointer) {
        let stride = format.rowBytes(columns)
        for t in 0 ..< tokens {
            let src = x + t * columns, out = dst + t * stride
            switch format {
            case .f32: out.copyMemory(from: src, byteCount: columns * 4)
            case .q8_0: pg_quantize_row_q8_0(src, out, Int64(columns))
            case .q8_1: pg_quantize_row_q8_1(src, out, Int64(columns))
            case .q8_K: pg_quantize_row_q8_K(src, out, Int64(columns))
            }
        }
    }

    /// out[tokens × W.rows] = x[tokens × W.columns] · Wᵀ.
    ///
    /// A convenience for tests and one-off calls: it builds a one-matrix group per call, so the
    /// forward pass uses groups built at load instead. `scratch` must hold
    /// `MatrixGroup(single: w).scratchBytes(tokens:)` bytes.
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int,
                                into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutableRawPointer,
                                pool: ComputePool) {
        withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Float>.self, capacity: 1) { outs in
            outs[0] = out
            multiply(MatrixGroup(unchecked: [w]), x, tokens: tokens, into: UnsafePointer(outs.baseAddress!), scratch: scratch, pool: pool)
        }
    }

    /// Multiplies the same activations by every matrix of a group in one parallel region:
    /// `outputs[i][t × rows_i + r] = dot(group.matrices[i].row(r), x[t])`. One region instead
    /// of one per matrix saves a barrier per matrix, and the activations are quantized once
    /// per partner format, not once per matrix.
    /// Prefill takes tokens in chunks of this many, so their activations (under 32 KiB at a
    /// width of 896) stay in L1 while the weight rows of a thread's range meet them.
    static let tokenChunk = 32

    public static func multiply(_ group: MatrixGroup, _ x: UnsafePointer<Float>, tokens: Int,
                                into outputs: UnsafePointer<UnsafeMutablePointer<Float>>,
                                scratch: UnsafeMutableRawPointer, pool: ComputePool) {
        let columns = group.columns
        // Quantize once per distinct partner format, in parallel when there are many tokens.
        for (f, format) in group.formats.enumerated() where format != .f32 {
            let dst = scratch + group.scratchOffset(format: f, tokens: tokens)
            let stride = format.rowBytes(columns)
            if tokens >= 16 {
                pool.parallelFor(tokens) { range in
                    quantizeActivations(format, x + range.lowerBound * columns, tokens: range.count, columns: columns,
                                        into: dst + range.lowerBound * stride)
                }
            } else {
                quantizeActivations(format, x, tokens: tokens, columns: columns, into: dst)
            }
        }
        // Prefill reads Q8_0 block scales as floats, converted here once rather than per weight row.
        let scales = (scratch + group.scaleOffset(tokens: tokens)).assumingMemoryBound(to: Float.self)
        if tokens >= 4, let f = group.formats.firstIndex(of: .q8_0) {
            pg_q8_0_row_scales(scratch + group.scratchOffset(format: f, tokens: tokens), Int64(ActivationFormat.q8_0.rowBytes(columns)),
                               Int64(tokens), Int64(columns), scales)
        }
        let pairScales = (scratch + group.pairScaleOffset(tokens: tokens)).assumingMemoryBound(to: Float.self)
        if tokens >= 4, let f = group.formats.firstIndex(of: .q8_1) {
            pg_q8_1_row_scales(scratch + group.scratchOffset(format: f, tokens: tokens), Int64(ActivationFormat.q8_1.rowBytes(columns)),
                               Int64(tokens), Int64(columns), pairScales)
        }
        let blocksPerRow = Int64(columns / 32)
        let n = Int64(columns)
        pool.parallelFor(group.totalRows, granule: 8) { range in
            for (i, w) in group.matrices.enumerated() {
                let base = group.rowOffsets[i]
                let lo = max(range.lowerBound, base), hi = min(range.upperBound, base + w.rows)
                guard lo < hi else { continue }
                let out = outputs[i], rows = w.rows
                let f = group.formatIndex[i]
                let format = group.formats[f]
                if let dot = quantizedDot(w.type) {
                    let act = UnsafeRawPointer(scratch + group.scratchOffset(format: f, tokens: tokens))
                    let actStride = format.rowBytes(columns)
                    let dot4 = tokens >= 4 ? quantizedDot4(w.type) : nil
                    // Prefill: the weight row unpacked once per chunk of tokens, and the
                    // matching kernel with the activations' block scales as floats.
                    let nb = Int(blocksPerRow)
                    var unpack: UnpackKernel?, unpackedDot: Dot4UnpackedKernel = unpackedDot4
                    var actScales = scales, scalesPerBlock = 1
                    if tokens >= 4 {
                        if format == .q8_0, let u = unpackSigned(w.type) {
                            unpack = u
                        } else if format == .q8_1, let u = unpackUnsigned(w.type) {
                            (unpack, unpackedDot, actScales, scalesPerBlock) = (u, unpackedDot4Min, pairScales, 2)
                        }
                    }
                    // Room for four results, and for an unpacked row (64 bytes and up to two
                    // scales per block) only where prefill unpacks.
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: unpack == nil ? 4 : 4 + 18 * nb) { buffer in
                        let four = buffer.baseAddress!, rowScales = four + 4
                        let unpacked = UnsafeMutableRawPointer(rowScales + 2 * nb)
                        // Tokens in chunks whose activations stay in L1 while every weight row of
                        // this range meets them; each row is unpacked once per chunk.
                        let grouped = unpack == nil ? 0 : tokens - tokens % 4
                        var chunkStart = 0
                        while let unpack, chunkStart < grouped {
                            let chunkEnd = min(grouped, chunkStart + Self.tokenChunk)
                            for r in (lo - base) ..< (hi - base) {
                                unpack(w.row(r), blocksPerRow, unpacked, rowScales)
                                var t = chunkStart
                                while t < chunkEnd {
                                    unpackedDot(blocksPerRow, unpacked, rowScales, act + t * actStride, Int64(actStride),
                                                actScales + t * nb * scalesPerBlock, blocksPerRow, four)
                                    for i in 0 ..< 4 { out[(t + i) * rows + r] = four[i] }
                                    t += 4
                                }
                            }
                            chunkStart = chunkEnd
                        }
                        for r in (lo - base) ..< (hi - base) {
                            let wr = w.row(r)
                            var t = grouped
                            if unpack == nil, let dot4 {
                                while t + 4 <= tokens {
                                    dot4(n, wr, act + t * actStride, Int64(actStride), 4, four)
                                    for i in 0 ..< 4 { out[(t + i) * rows + r] = four[i] }
                                    t += 4
                                }
                            }
                            while t < tokens {
                                out[t * rows + r] = dot(n, wr, act + t * actStride)
                                t += 1
                            }
                        }
                    }
                } else {
                    for r in (lo - base) ..< (hi - base) {
                        let wr = w.row(r)
                        for t in 0 ..< tokens {
                            let xr = x + t * columns
                            switch w.type {
                            case .f16: out[t * rows + r] = pg_vec_dot_f16_f32(n, wr.assumingMemoryBound(to: UInt16.self), xr)
                            case .bf16: out[t * rows + r] = pg_vec_dot_bf16_f32(n, wr.assumingMemoryBound(to: UInt16.self), xr)
                            default: out[t * rows + r] = pg_vec_dot_f32_f32(n, wr.assumingMemoryBound(to: Float.self), xr)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The plain reference twin of `multiply`: dequantize each weight row to floats and take an
    /// exact float dot product with the unquantized activations.
    public static func referenceMultiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int,
                                         into out: UnsafeMutablePointer<Float>) {
        let rowBuffer = UnsafeMutablePointer<Float>.allocate(capacity: w.columns)
        defer { rowBuffer.deallocate() }
        for r in 0 ..< w.rows {
            w.dequantizeRow(r, into: rowBuffer)
            for t in 0 ..< tokens {
                var acc: Double = 0
                for c in 0 ..< w.columns { acc += Double(rowBuffer[c]) * Double(x[t * w.columns + c]) }
                out[t * w.rows + r] = Float(acc)
            }
        }
    }
}
