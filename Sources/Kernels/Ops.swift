import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Element-wise and row-wise float operations of a transformer block. They are cheap next to
/// the mat-muls, so they stay plain Swift over unsafe pointers.
public enum Ops {
    /// y = x / sqrt(mean(x²) + eps) ⊙ weight, for one row of `n` values. `y` may alias `x`.
    public static func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float,
                               count n: Int, into y: UnsafeMutablePointer<Float>) {
        var sum: Double = 0
        for i in 0 ..< n { sum += Double(x[i]) * Double(x[i]) }
        let scale = Float(1.0 / (sum / Double(n) + Double(eps)).squareRoot())
        for i in 0 ..< n { y[i] = x[i] * scale * weight[i] }
    }

    /// a[i] += b[i]
    public static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) {
        for i in 0 ..< n { a[i] += b[i] }
    }

    /// gate[i] = silu(gate[i]) * up[i], the SwiGLU of a llama-style feed-forward block.
    public static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count n: Int) {
        for i in 0 ..< n {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// In-place softmax of one row; returns nothing, leaves probabilities summing to 1.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        guard n > 0 else { return }
        var m = -Float.infinity
        for i in 0 ..< n where x[i] > m { m = x[i] }
        var sum: Double = 0
        for i in 0 ..< n {
            let e = expf(x[i] - m)
            x[i] = e
            sum += Double(e)
        }
        let inv = Float(1 / sum)
        for i in 0 ..< n { x[i] *= inv }
    }
}

/// Rotary position embedding as ggml computes it: the angle for pair i is pos·base^(−2i/d),
/// built by repeated multiplication in Float so results match llama.cpp bit for bit as far as
/// possible.
public struct RotaryEmbedding: Sendable {
    public enum Layout: Sendable {
        /// Rotate adjacent pairs (x[2i], x[2i+1]): llama, mistral.
        case interleaved
        /// Rotate halves (x[i], x[i + d/2]): NeoX, qwen2, qwen3.
        case neox
    }

    public let layout: Layout
    public let dimensions: Int
    public let base: Float
    public let thetaScale: Float
    /// Optional per-pair frequency divisors (llama 3 `rope_freqs`).
    public let frequencyFactors: [Float]?

    public init(layout: Layout, dimensions: Int, base: Float, frequencyFactors: [Float]? = nil) {
        self.layout = layout
        self.dimensions = dimensions
        self.base = base
        thetaScale = powf(base, -2.0 / Float(dimensions))
        self.frequencyFactors = frequencyFactors
    }

    /// Fills `cosSin` (2·dimensions/2 floats: cos, sin interleaved) for one position.
    public func table(position: Int, into cosSin: UnsafeMutablePointer<Float>) {
        var theta = Float(position)
        for i in 0 ..< dimensions / 2 {
            let t = frequencyFactors.map { theta / $0[i] } ?? theta
            cosSin[2 * i] = cosf(t)
            cosSin[2 * i + 1] = sinf(t)
            theta *= thetaScale
        }
    }

    /// Rotates `heads` consecutive head vectors of `headDim` values in place, using a table
    /// from `table(position:into:)`. Only the first `dimensions` values of each head rotate.
    public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, table cs: UnsafePointer<Float>) {
        let half = dimensions / 2
        for h in 0 ..< heads {
            let v = x + h * headDim
            switch layout {
            case .interleaved:
                for i in 0 ..< half {
                    let c = cs[2 * i], s = cs[2 * i + 1]
                    let a = v[2 * i], b = v[2 * i + 1]
                    v[2 * i] = a * c - b * s
                    v[2 * i + 1] = a * s + b * c
                }
            case .neox:
                for i in 0 ..< half {
                    let c = cs[2 * i], s = cs[2 * i + 1]
                    let a = v[i], b = v[i + half]
                    v[i] = a * c - b * s
                    v[i + half] = a * s + b * c
                }
            }
        }
    }
}

/// Causal multi-head attention with grouped-query heads over a float KV cache.
public enum Attention {
    public struct Shape: Sendable {
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        public init(heads: Int, kvHeads: Int, headDim: Int) {
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDim = headDim
        }
        public var qWidth: Int { heads * headDim }
        public var kvWidth: Int { kvHeads * headDim }
    }

    /// For each of `tokens` queries (query t sits at absolute position `positions[t]`), attends
    /// over cache rows 0...positions[t]. `q` is [tokens × heads·headDim]; `keys`/`values` are
    /// [capacity × kvHeads·headDim]; `out` is [tokens × heads·headDim]. `scores` needs
    /// `pool.activeThreads × scoreStride` floats with scoreStride > every position.
    public static func causal(shape: Shape, q: UnsafePointer<Float>, tokens: Int, positions: UnsafePointer<Int32>,
                              keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                              out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
                              scoreStride: Int, pool: ComputePool) {
        let rowKeys = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: max(1, tokens))
        let rowValues = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: max(1, tokens))
        defer { rowKeys.deallocate(); rowValues.deallocate() }
        for t in 0 ..< tokens {
            rowKeys[t] = keys
            rowValues[t] = values
        }
        causal(shape: shape, q: q, tokens: tokens, positions: positions, rowKeys: rowKeys, rowValues: rowValues,
               out: out, scores: scores, scoreStride: scoreStride, pool: pool)
    }

    /// The same, but query t attends over its own cache `rowKeys[t]` / `rowValues[t]`: rows of
    /// different sequences share one batch (and one barrier) while each reads only its own keys.
    public static func causal(shape: Shape, q: UnsafePointer<Float>, tokens: Int, positions: UnsafePointer<Int32>,
                              rowKeys: UnsafePointer<UnsafePointer<Float>>, rowValues: UnsafePointer<UnsafePointer<Float>>,
                              out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
                              scoreStride: Int, pool: ComputePool) {
        let hd = shape.headDim, group = shape.heads / shape.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        let kvw = shape.kvWidth
        let total = tokens * shape.heads
        let threads = pool.activeThreads
        // Items are dealt out in turn, not in blocks: later tokens attend over longer spans, so
        // blocks would leave one thread with most of a causal prefill's work.
        pool.run { worker in
            let sc = scores + worker * scoreStride
            var item = worker
            while item < total {
                let t = item / shape.heads, h = item % shape.heads
                let g = h / group
                let qh = q + t * shape.qWidth + h * hd
                let span = Int(positions[t]) + 1
                pg_attend_head_f32(qh, rowKeys[t] + g * hd, rowValues[t] + g * hd, Int64(kvw), Int64(span), Int64(hd), scale,
                                   sc, out + t * shape.qWidth + h * hd)
                item += threads
            }
        }
    }
}
