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

    /// Quantizes `tokens` rows of `columns` floats into `dst` in `format`.
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
    /// `scratch` must hold at least `ActivationFormat(pairingWith: W.type).rowBytes(W.columns) *
    /// tokens` bytes. Rows are split across the pool's threads.
    public static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int,
                                into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutableRawPointer,
                                pool: ComputePool) {
        let format = ActivationFormat(pairingWith: w.type)
        let columns = w.columns, rows = w.rows
        let act: UnsafeRawPointer
        if format == .f32 {
            act = UnsafeRawPointer(x)
        } else {
            quantizeActivations(format, x, tokens: tokens, columns: columns, into: scratch)
            act = UnsafeRawPointer(scratch)
        }
        let actStride = format.rowBytes(columns)
        let n = Int64(columns)
        if let dot = quantizedDot(w.type) {
            pool.parallelFor(rows, granule: 8) { range in
                for r in range {
                    let wr = w.row(r)
                    for t in 0 ..< tokens { out[t * rows + r] = dot(n, wr, act + t * actStride) }
                }
            }
            return
        }
        let xf = act.assumingMemoryBound(to: Float.self)
        pool.parallelFor(rows, granule: 8) { range in
            for r in range {
                let wr = w.row(r)
                for t in 0 ..< tokens {
                    let xr = xf + t * columns
                    switch w.type {
                    case .f16: out[t * rows + r] = pg_vec_dot_f16_f32(n, wr.assumingMemoryBound(to: UInt16.self), xr)
                    case .bf16: out[t * rows + r] = pg_vec_dot_bf16_f32(n, wr.assumingMemoryBound(to: UInt16.self), xr)
                    default: out[t * rows + r] = pg_vec_dot_f32_f32(n, wr.assumingMemoryBound(to: Float.self), xr)
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
