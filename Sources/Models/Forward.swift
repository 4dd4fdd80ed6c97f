import Kernels

/// What enters a slice of the model.
public enum ForwardInput {
    /// Token ids (first slice only).
    case tokens(UnsafeBufferPointer<Int32>)
    /// Hidden states [count × n_embd] from the previous slice.
    case hidden(UnsafePointer<Float>, count: Int)

    var count: Int {
        switch self {
        case let .tokens(t): return t.count
        case let .hidden(_, n): return n
        }
    }
}

/// Which logits the last slice computes.
public enum LogitRows: Sendable {
    /// Only the last position's (generation).
    case last
    /// Every position's (perplexity, evaluation).
    case all
}

/// Preallocated scratch for forward passes of up to `maxTokens` tokens at a time, so the hot
/// path never allocates. One state per concurrent forward pass.
public final class ForwardState: @unchecked Sendable {
    public let maxTokens: Int
    let config: ModelConfig
    let x, xn, q, k, v, attn, proj, gate, up: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>
    /// Rows of logits one call may return.
    public let logitCapacity: Int
    let scores: UnsafeMutablePointer<Float>
    let scoreStride: Int
    let ropeTable: UnsafeMutablePointer<Float>
    let positions: UnsafeMutablePointer<Int32>
    /// Output pointers handed to a grouped mat-mul (at most three matrices per group).
    let groupOutputs: UnsafeMutablePointer<UnsafeMutablePointer<Float>>
    let quantScratch: UnsafeMutableRawPointer
    let pool: ComputePool

    /// `contextCapacity` bounds attention spans; `logitRows` is how many rows of logits one
    /// call may return (maxTokens for perplexity, 1 for generation).
    public init(config: ModelConfig, maxTokens: Int, contextCapacity: Int, logitRows: Int, pool: ComputePool) {
        self.config = config
        self.maxTokens = max(1, maxTokens)
        self.pool = pool
        let n = self.maxTokens, e = config.embeddingLength
        func alloc(_ c: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, c))
            p.initialize(repeating: 0, count: max(1, c))
            return p
        }
        x = alloc(n * e)
        xn = alloc(n * max(e, config.qWidth))
        q = alloc(n * config.qWidth)
        k = alloc(n * config.kvWidth)
        v = alloc(n * config.kvWidth)
        attn = alloc(n * config.qWidth)
        proj = alloc(n * e)
        gate = alloc(n * config.feedForwardLength)
        up = alloc(n * config.feedForwardLength)
        logitCapacity = max(1, min(logitRows, n))
        logits = alloc(logitCapacity * config.vocabularySize)
        scoreStride = contextCapacity + 16
        scores = alloc(pool.activeThreads * scoreStride)
        ropeTable = alloc(n * config.ropeDimensions)
        positions = .allocate(capacity: n)
        groupOutputs = .allocate(capacity: 3)
        let widest = max(e, config.qWidth, config.feedForwardLength)
        // Up to three partner formats in one group (Q|K|V of mixed quant families), plus the
        // float block scales of Q8_0 activations: four rows' worth covers them all.
        let qbytes = 4 * n * ((widest + 255) / 256 * 292 + 64) + 4096
        quantScratch = .allocate(byteCount: qbytes, alignment: 64)
    }

    deinit {
        for p in [x, xn, q, k, v, attn, proj, gate, up, logits, scores, ropeTable] { p.deallocate() }
        positions.deallocate()
        groupOutputs.deallocate()
        quantScratch.deallocate()
    }
}

extension TransformerModel {
    /// Runs this slice over `input` at positions `start ..< start + n` of the sequence whose
    /// cache is `cache`, and returns either the hidden states [n × n_embd] (not the last slice)
    /// or logits [rows × vocab] (the last slice). The returned buffer lives in `state` until its
    /// next use. Inputs larger than `state.maxTokens` must be split by the caller.
    public func forward(_ input: ForwardInput, start: Int, cache: KVCache, state s: ForwardState,
                        logits rows: LogitRows = .last) throws(ModelError) -> UnsafeMutableBufferPointer<Float> {
        let n = input.count
        let c = config, e = c.embeddingLength
        guard n > 0, n <= s.maxTokens else { throw .badInput("\(n) tokens (1...\(s.maxTokens) per call)") }
        guard start >= 0, start <= cache.length else { throw .badPosition(start: start, cached: cache.length) }
        guard start + n <= cache.capacity else { throw .contextFull(needed: start + n, capacity: cache.capacity) }
        guard start + n < s.scoreStride else { throw .contextFull(needed: start + n, capacity: s.scoreStride - 16) }

        switch input {
        case let .tokens(ids):
            guard let embedding, isFirst else { throw .badInput("token input needs the first slice") }
            for (t, id) in ids.enumerated() {
                guard id >= 0, Int(id) < c.vocabularySize else { throw .tokenOutOfRange(id, vocabularySize: c.vocabularySize) }
                embedding.dequantizeRow(Int(id), into: s.x + t * e)
            }
        case let .hidden(h, _):
            guard !isFirst else { throw .badInput("hidden-state input needs a slice after the first") }
            s.x.update(from: h, count: n * e)
        }
        // Only valid input may rewind the cache: a rejected call leaves the sequence as it was.
        cache.truncate(to: start)

        for t in 0 ..< n {
            s.positions[t] = Int32(start + t)
            rope.table(position: start + t, into: s.ropeTable + t * c.ropeDimensions)
        }
        for (local, block) in blocks.enumerated() {
            runBlock(block, layer: local, tokens: n, start: start, cache: cache, state: s)
        }
        cache.commit(upTo: start + n)

        guard isLast, let outputNorm, let outputGroup else {
            return UnsafeMutableBufferPointer(start: s.x, count: n * e)
        }
        let first = rows == .all ? 0 : n - 1
        let count = n - first
        guard count <= s.logitCapacity else { throw .badInput("\(count) logit rows exceed the state's \(s.logitCapacity)") }
        for t in 0 ..< count {
            Ops.rmsNorm(s.x + (first + t) * e, weight: outputNorm.pointer, eps: c.rmsEpsilon, count: e, into: s.xn + t * e)
        }
        s.groupOutputs[0] = s.logits
        MatMul.multiply(outputGroup, s.xn, tokens: count, into: s.groupOutputs, scratch: s.quantScratch, pool: s.pool)
        return UnsafeMutableBufferPointer(start: s.logits, count: count * c.vocabularySize)
    }

    private func runBlock(_ b: BlockWeights, layer: Int, tokens n: Int, start: Int, cache: KVCache, state s: ForwardState) {
        let c = config, e = c.embeddingLength, hd = c.headDim
        // Per-token work runs across the pool in prefill; one token (decode) runs inline.
        s.pool.parallelFor(n, granule: 4) { range in
            for t in range {
                Ops.rmsNorm(s.x + t * e, weight: b.attentionNorm.pointer, eps: c.rmsEpsilon, count: e, into: s.xn + t * e)
            }
        }
        s.groupOutputs[0] = s.q
        s.groupOutputs[1] = s.k
        s.groupOutputs[2] = s.v
        MatMul.multiply(b.qkvGroup, s.xn, tokens: n, into: s.groupOutputs, scratch: s.quantScratch, pool: s.pool)
        let keys = cache.keys(layer), values = cache.values(layer)
        s.pool.parallelFor(n, granule: 4) { range in
        for t in range {
            let q = s.q + t * c.qWidth, k = s.k + t * c.kvWidth, v = s.v + t * c.kvWidth
            if let bias = b.qBias { Ops.add(q, bias.pointer, count: c.qWidth) }
            if let bias = b.kBias { Ops.add(k, bias.pointer, count: c.kvWidth) }
            if let bias = b.vBias { Ops.add(v, bias.pointer, count: c.kvWidth) }
            if let qn = b.qNorm, let kn = b.kNorm {
                for h in 0 ..< c.headCount { Ops.rmsNorm(q + h * hd, weight: qn.pointer, eps: c.rmsEpsilon, count: hd, into: q + h * hd) }
                for h in 0 ..< c.kvHeadCount { Ops.rmsNorm(k + h * hd, weight: kn.pointer, eps: c.rmsEpsilon, count: hd, into: k + h * hd) }
            }
            let table = s.ropeTable + t * c.ropeDimensions
            rope.apply(q, heads: c.headCount, headDim: hd, table: table)
            rope.apply(k, heads: c.kvHeadCount, headDim: hd, table: table)
            (keys + (start + t) * c.kvWidth).update(from: k, count: c.kvWidth)
            (values + (start + t) * c.kvWidth).update(from: v, count: c.kvWidth)
        }
        }
        Attention.causal(shape: c.attentionShape, q: s.q, tokens: n, positions: s.positions, keys: keys, values: values,
                         out: s.attn, scores: s.scores, scoreStride: s.scoreStride, pool: s.pool)
        s.groupOutputs[0] = s.proj
        MatMul.multiply(b.outputGroup, s.attn, tokens: n, into: s.groupOutputs, scratch: s.quantScratch, pool: s.pool)
        Ops.add(s.x, s.proj, count: n * e)

        s.pool.parallelFor(n, granule: 4) { range in
            for t in range {
                Ops.rmsNorm(s.x + t * e, weight: b.ffnNorm.pointer, eps: c.rmsEpsilon, count: e, into: s.xn + t * e)
            }
        }
        s.groupOutputs[0] = s.gate
        s.groupOutputs[1] = s.up
        MatMul.multiply(b.gateUpGroup, s.xn, tokens: n, into: s.groupOutputs, scratch: s.quantScratch, pool: s.pool)
        s.pool.parallelFor(n * c.feedForwardLength, granule: 16384) { range in
            Ops.swiglu(s.gate + range.lowerBound, s.up + range.lowerBound, count: range.count)
        }
        s.groupOutputs[0] = s.proj
        MatMul.multiply(b.downGroup, s.gate, tokens: n, into: s.groupOutputs, scratch: s.quantScratch, pool: s.pool)
        Ops.add(s.x, s.proj, count: n * e)
    }
}
