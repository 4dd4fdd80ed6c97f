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
    /// Quantizes `tokens` rows of activations to `format` with the process's kernels.
    public static func quantizeActivations(_ format: ActivationFormat, _ x: UnsafePointer<Float>, tokens: Int,
                                           columns: Int, into dst: UnsafeMutableRawPointer) {
        quantizeActivations(format, x, tokens: tokens, columns: columns, into: dst, table: .active)
    }

    public static func quantizeActivations(_ format: ActivationFormat, _ x: UnsafePointer<Float>, tokens: Int,
                                           columns: Int, into dst: UnsafeMutableRawPointer, table: KernelTable) {
        let stride = format.rowBytes(columns)
        guard let quantize = table.quantizer(format) else {
            for t in 0 ..< tokens { (dst + t * stride).copyMemory(from: x + t * columns, byteCount: columns * 4) }
            return
        }
        for t in 0 ..< tokens { quantize(x + t * columns, dst + t * stride, Int64(columns)) }
    }

    /// out[tokens × W.rows] = x[tokens × W.columns] · Wᵀ.
    ///
    /// A convenience for tests and one-off calls: it builds a one-matrix group per call, so the
    /// forward pass uses groups built at load instead. `scratch` must hold
    /// `MatrixGroup(single: w).scratchBytes(tokens:)` bytes.
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int,
                                into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutableRawPointer,
                                pool: ComputePool, table: KernelTable = .active) {
        withUnsafeTemporaryAllocation(of: UnsafeMutablePointer<Float>.self, capacity: 1) { outs in
            guard let base = outs.baseAddress else { return }
            base[0] = out
            multiply(MatrixGroup(unchecked: [w], table: table), x, tokens: tokens, into: UnsafePointer(base), scratch: scratch, pool: pool)
        }
    }

    /// Prefill takes tokens in chunks of this many, so their activations (under 32 KiB at a
    /// width of 896) stay in L1 while the weight rows of a thread's range meet them.
    static let tokenChunk = 32

    /// Multiplies the same activations by every matrix of a group in one parallel region:
    /// `outputs[i][t × rows_i + r] = dot(group.matrices[i].row(r), x[t])`. One region instead
    /// of one per matrix saves a barrier per matrix, and the activations are quantized once
    /// per partner format, not once per matrix. Each matrix runs the strategy its kernels
    /// (resolved when the group was built) call for.
    public static func multiply(_ group: MatrixGroup, _ x: UnsafePointer<Float>, tokens: Int,
                                into outputs: UnsafePointer<UnsafeMutablePointer<Float>>,
                                scratch: UnsafeMutableRawPointer, pool: ComputePool) {
        let columns = group.columns
        let table = group.table
        // Quantize once per distinct partner format, in parallel when there are many tokens.
        for (f, format) in group.formats.enumerated() where format != .f32 {
            let dst = scratch + group.scratchOffset(format: f, tokens: tokens)
            let stride = format.rowBytes(columns)
            if tokens >= 16 {
                pool.parallelFor(tokens) { range in
                    quantizeActivations(format, x + range.lowerBound * columns, tokens: range.count, columns: columns,
                                        into: dst + range.lowerBound * stride, table: table)
                }
            } else {
                quantizeActivations(format, x, tokens: tokens, columns: columns, into: dst, table: table)
            }
        }
        // Prefill reads activation block scales as floats, converted here once rather than per weight row.
        let scales = (scratch + group.scaleOffset(tokens: tokens)).assumingMemoryBound(to: Float.self)
        if tokens >= 4, let f = group.formats.firstIndex(of: .q8_0), let convert = table.q8_0RowScales {
            convert(scratch + group.scratchOffset(format: f, tokens: tokens), Int64(ActivationFormat.q8_0.rowBytes(columns)),
                    Int64(tokens), Int64(columns), scales)
        }
        let pairScales = (scratch + group.pairScaleOffset(tokens: tokens)).assumingMemoryBound(to: Float.self)
        if tokens >= 4, let f = group.formats.firstIndex(of: .q8_1), let convert = table.q8_1RowScales {
            convert(scratch + group.scratchOffset(format: f, tokens: tokens), Int64(ActivationFormat.q8_1.rowBytes(columns)),
                    Int64(tokens), Int64(columns), pairScales)
        }
        let biased = scratch + group.biasOffset(tokens: tokens)
        if tokens >= 4, let f = group.formats.firstIndex(of: .q8_0), let bias = table.biasRows {
            let src = scratch + group.scratchOffset(format: f, tokens: tokens)
            let stride = ActivationFormat.q8_0.rowBytes(columns)
            pool.parallelFor(tokens) { range in
                bias(src + range.lowerBound * stride, Int64(stride), Int64(range.count), Int64(columns), biased + range.lowerBound * columns)
            }
        }
        pool.parallelFor(group.totalRows, granule: 8) { range in
            for (i, w) in group.matrices.enumerated() {
                let base = group.rowOffsets[i]
                let lo = max(range.lowerBound, base), hi = min(range.upperBound, base + w.rows)
                guard lo < hi else { continue }
                let rows = (lo - base) ..< (hi - base)
                let kernels = group.kernels[i]
                let f = group.formatIndex[i]
                let act = Activations(data: UnsafeRawPointer(scratch + group.scratchOffset(format: f, tokens: tokens)),
                                      stride: group.formats[f].rowBytes(columns), tokens: tokens,
                                      prefillData: kernels.biasedActivations ? UnsafeRawPointer(biased) : nil, prefillStride: columns,
                                      scales: kernels.format == .q8_1 ? pairScales : scales,
                                      scalesPerBlock: kernels.format == .q8_1 ? 2 : 1)
                guard let dot = kernels.dot else {
                    floatRows(w, rows: rows, x: x, tokens: tokens, out: outputs[i])
                    continue
                }
                var done = 0
                if tokens >= 4, let pack = kernels.pack8, let gemm = kernels.packedGemm {
                    done = packedRows(w, rows: rows, act: act, pack: pack, gemm: gemm, wide: kernels.wide, dot: dot, out: outputs[i])
                } else if tokens >= 4, let unpack = kernels.unpack, let dot4 = kernels.unpackedDot4 {
                    done = unpackedRows(w, rows: rows, act: act, unpack: unpack, dot4: dot4, out: outputs[i])
                } else if tokens >= 4, let dot4 = kernels.dot4 {
                    done = fourRowBlocks(w, rows: rows, act: act, dot4: dot4, out: outputs[i])
                }
                if done < tokens {
                    if let dot8 = kernels.dot8 {
                        rowGroups(w, rows: rows, act: act, tokens: done ..< tokens, dot8: dot8, dot: dot, out: outputs[i])
                    } else {
                        rowByRow(w, rows: rows, act: act, tokens: done ..< tokens, dot: dot, out: outputs[i])
                    }
                }
            }
        }
    }

    /// A group's quantized activations as one strategy reads them.
    struct Activations {
        let data: UnsafeRawPointer
        /// Bytes from one token's row to the next.
        let stride: Int
        let tokens: Int
        /// The rows the unpacked-row strategy reads instead, where its kernel wants them in
        /// another layout (the VNNI levels' biased bytes), and their stride.
        let prefillData: UnsafeRawPointer?
        let prefillStride: Int
        /// Block scales as floats (Q8_0: d per block; Q8_1: (d, s) per block), for prefill.
        let scales: UnsafePointer<Float>
        let scalesPerBlock: Int

        func row(_ t: Int) -> UnsafeRawPointer { data + t * stride }
    }

    /// Decode, and the tokens the prefill strategies leave: one dot product per (row, token).
    @inline(__always)
    static func rowByRow(_ w: WeightMatrix, rows: Range<Int>, act: Activations, tokens: Range<Int>,
                         dot: WeightKernels.Dot, out: UnsafeMutablePointer<Float>) {
        let n = Int64(w.columns)
        for r in rows {
            let wr = w.row(r)
            for t in tokens { out[t * w.rows + r] = dot(n, wr, act.row(t)) }
        }
    }

    /// Decode of the Q8_0-paired formats: eight weight rows per call, the rows left over one by
    /// one (the kernels fold in the same order, so the grouping never changes a result).
    @inline(__always)
    static func rowGroups(_ w: WeightMatrix, rows: Range<Int>, act: Activations, tokens: Range<Int>,
                          dot8: WeightKernels.Dot8, dot: WeightKernels.Dot, out: UnsafeMutablePointer<Float>) {
        let n = Int64(w.columns)
        let grouped = rows.lowerBound + (rows.count - rows.count % 8)
        var r = rows.lowerBound
        while r < grouped {
            for t in tokens { dot8(n, w.row(r), Int64(w.rowBytes), act.row(t), out + t * w.rows + r) }
            r += 8
        }
        rowByRow(w, rows: grouped ..< rows.upperBound, act: act, tokens: tokens, dot: dot, out: out)
    }

    /// Prefill of the Q8_0-paired formats: sixteen (`wide`, AVX-512) or eight weight rows
    /// interleaved once into a buffer that stays in L1, then met by every token (whose
    /// activations stream from L2). The rows left over go one by one. Returns the number of
    /// tokens covered: all of them.
    static func packedRows(_ w: WeightMatrix, rows: Range<Int>, act: Activations, pack: WeightKernels.Pack8,
                           gemm: WeightKernels.PackedGemm, wide: (WeightKernels.Pack8, WeightKernels.PackedGemm)?,
                           dot: WeightKernels.Dot, out: UnsafeMutablePointer<Float>) -> Int {
        let nb = w.columns / 32
        let aData = act.prefillData ?? act.data
        let aStride = act.prefillData == nil ? act.stride : act.prefillStride
        var r = rows.lowerBound
        withUnsafeTemporaryAllocation(byteCount: 2 * Int(PG_PACK8_BYTES) * nb, alignment: 64) { buffer in
            guard let packed = buffer.baseAddress else { return }
            func run(_ count: Int, _ pack: WeightKernels.Pack8, _ gemm: WeightKernels.PackedGemm) {
                while r + count <= rows.upperBound {
                    pack(w.row(r), Int64(w.rowBytes), Int64(nb), packed)
                    gemm(Int64(nb), packed, aData, Int64(aStride), Int64(act.tokens), act.scales, Int64(nb), out + r, Int64(w.rows))
                    r += count
                }
            }
            if let (pack16, gemm16) = wide { run(16, pack16, gemm16) }
            run(8, pack, gemm)
        }
        rowByRow(w, rows: r ..< rows.upperBound, act: act, tokens: 0 ..< act.tokens, dot: dot, out: out)
        return act.tokens
    }

    /// K-quant prefill: each weight block unpacked once for four token rows. Returns how many
    /// tokens it covered (a multiple of four).
    static func fourRowBlocks(_ w: WeightMatrix, rows: Range<Int>, act: Activations, dot4: WeightKernels.Dot4,
                              out: UnsafeMutablePointer<Float>) -> Int {
        let grouped = act.tokens - act.tokens % 4
        let n = Int64(w.columns)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4) { four in
            guard let four = four.baseAddress else { return }
            for r in rows {
                let wr = w.row(r)
                var t = 0
                while t < grouped {
                    dot4(n, wr, act.row(t), Int64(act.stride), 4, four)
                    for i in 0 ..< 4 { out[(t + i) * w.rows + r] = four[i] }
                    t += 4
                }
            }
        }
        return grouped
    }

    /// Prefill of the 32-wide formats: each weight row unpacked into bytes once per chunk of
    /// tokens (whose activations stay in L1), then met by four token rows at a time. Returns
    /// how many tokens it covered (a multiple of four).
    static func unpackedRows(_ w: WeightMatrix, rows: Range<Int>, act: Activations, unpack: WeightKernels.Unpack,
                             dot4: WeightKernels.UnpackedDot4, out: UnsafeMutablePointer<Float>) -> Int {
        let grouped = act.tokens - act.tokens % 4
        let nb = w.columns / 32
        let prefillStride = act.prefillData == nil ? act.stride : act.prefillStride
        func prefillRow(_ t: Int) -> UnsafeRawPointer { (act.prefillData ?? act.data) + t * prefillStride }
        // Four results, up to two scales per block, then 64 bytes per block of unpacked values.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 + 18 * nb) { buffer in
            guard let four = buffer.baseAddress else { return }
            let rowScales = four + 4
            let unpacked = UnsafeMutableRawPointer(rowScales + 2 * nb)
            var chunkStart = 0
            while chunkStart < grouped {
                let chunkEnd = min(grouped, chunkStart + tokenChunk)
                for r in rows {
                    unpack(w.row(r), Int64(nb), unpacked, rowScales)
                    var t = chunkStart
                    while t < chunkEnd {
                        dot4(Int64(nb), unpacked, rowScales, prefillRow(t), Int64(prefillStride),
                             act.scales + t * nb * act.scalesPerBlock, Int64(nb), four)
                        for i in 0 ..< 4 { out[(t + i) * w.rows + r] = four[i] }
                        t += 4
                    }
                }
                chunkStart = chunkEnd
            }
        }
        return grouped
    }

    /// Float weights (F32, F16, BF16) against the unquantized activations.
    static func floatRows(_ w: WeightMatrix, rows: Range<Int>, x: UnsafePointer<Float>, tokens: Int,
                          out: UnsafeMutablePointer<Float>) {
        let n = Int64(w.columns)
        for r in rows {
            let wr = w.row(r)
            for t in 0 ..< tokens {
                let xr = x + t * w.columns
                switch w.type {
                case .f16: out[t * w.rows + r] = pg_vec_dot_f16_f32(n, wr.assumingMemoryBound(to: UInt16.self), xr)
                case .bf16: out[t * w.rows + r] = pg_vec_dot_bf16_f32(n, wr.assumingMemoryBound(to: UInt16.self), xr)
                default: out[t * w.rows + r] = pg_vec_dot_f32_f32(n, wr.assumingMemoryBound(to: Float.self), xr)
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
