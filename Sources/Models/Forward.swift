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
    /// Per row: the key and value rows of its sequence's cache for the layer being run.
    let rowKeys, rowValues: UnsafeMutablePointer<UnsafePointer<Float>>
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
        rowKeys = .allocate(capacity: n)
        rowValues = .allocate(capacity: n)
        groupOutputs = .allocate(capacity: 3)
        let widest = max(e, config.qWidth, config.feedForwardLength)
        // Whatever formats a group mixes (Q|K|V of several quant families) and whatever the
        // kernel level keeps beside them.
        quantScratch = .allocate(byteCount: MatrixGroup.maximumScratchBytes(columns: widest, tokens: n), alignment: 64)
    }

    deinit {
        for p in [x, xn, q, k, v, attn, proj, gate, up, logits, scores, ropeTable] { p.deallocate() }
        positions.deallocate()
        rowKeys.deallocate()
        rowValues.deallocate()
        groupOutputs.deallocate()
        quantScratch.deallocate()
    }
}

/// One sequence's share of a batched forward pass: `count` consecutive rows of the input,
/// at positions `start ..< start + count` of the sequence whose cache is `cache`.
public struct SequenceSlice {
    public var cache: KVCache
    public var start: Int
    public var count: Int
    /// On the last slice of the model: whether to compute logits for this slice's last row.
    public var wantsLogits: Bool

    public init(cache: KVCache, start: Int, count: Int, wantsLogits: Bool = true) {
        self.cache = cache
        self.start = start
        self.count = count
        self.wantsLogits = wantsLogits
    }
}

extension TransformerModel {
    /// Runs this slice over `input` at positions `start ..< start + n` of the sequence whose
    /// cache is `cache`, and returns either the hidden states [n × n_embd] (not the last slice)
    /// or logits [rows × vocab] (the last slice). The returned buffer lives in `state` until its
    /// next use. Inputs larger than `state.maxTokens` must be split by the caller.
    public func forward(_ input: ForwardInput, start: Int, cache: KVCache, state s: ForwardState,
                        logits rows: LogitRows = .last) throws(ModelError) -> UnsafeMutableBufferPointer<Float> {
        // One slice on the stack: decode calls this per token, and it must not allocate.
        var slice = SequenceSlice(cache: cache, start: start, count: input.count)
        return try withUnsafePointer(to: &slice) { p throws(ModelError) in
            try run(input, slices: UnsafeBufferPointer(start: p, count: 1), state: s, allLogits: rows == .all)
        }
    }

    /// Runs rows of several sequences as one batch: the mat-muls read each weight once for all
    /// rows, while RoPE, the KV cache and attention stay per sequence. `input` holds the rows of
    /// `slices` back to back, in order; each cache may appear once. Returns the hidden states
    /// [rows × n_embd] (not the last slice), or on the last slice the logits of the last row of
    /// each slice with `wantsLogits`, in slice order [k × vocab].
    public func forward(batch input: ForwardInput, slices: [SequenceSlice],
                        state s: ForwardState) throws(ModelError) -> UnsafeMutableBufferPointer<Float> {
        try slices.withUnsafeBufferPointer { p throws(ModelError) in try run(input, slices: p, state: s, allLogits: false) }
    }

    private func run(_ input: ForwardInput, slices: UnsafeBufferPointer<SequenceSlice>, state s: ForwardState,
                     allLogits: Bool) throws(ModelError) -> UnsafeMutableBufferPointer<Float> {
        let n = input.count
        let c = config, e = c.embeddingLength
        guard n > 0, n <= s.maxTokens else { throw .badInput("\(n) tokens (1...\(s.maxTokens) per call)") }
        var rowsCovered = 0
        for (i, slice) in slices.enumerated() {
            let cache = slice.cache, start = slice.start
            guard slice.count > 0 else { throw .badInput("empty sequence slice") }
            guard cache.layerCount == layers.count, cache.width == c.kvWidth else { throw .badInput("cache of another model slice") }
            guard start >= 0, start <= cache.length else { throw .badPosition(start: start, cached: cache.length) }
            guard start + slice.count <= cache.capacity else { throw .contextFull(needed: start + slice.count, capacity: cache.capacity) }
            guard start + slice.count < s.scoreStride else { throw .contextFull(needed: start + slice.count, capacity: s.scoreStride - 16) }
            for other in slices[..<i] where other.cache === cache { throw .badInput("one sequence twice in a batch") }
            rowsCovered += slice.count
        }
        guard rowsCovered == n else { throw .badInput("slices cover \(rowsCovered) rows of \(n)") }

        switch input {
        case let .tokens(ids):
            guard let embedding, isFirst else { throw .badInput("token input needs the first slice") }
            for id in ids where id < 0 || Int(id) >= c.vocabularySize {
                throw .tokenOutOfRange(id, vocabularySize: c.vocabularySize)
            }
            for (t, id) in ids.enumerated() { embedding.dequantizeRow(Int(id), into: s.x + t * e) }
        case let .hidden(h, _):
            guard !isFirst else { throw .badInput("hidden-state input needs a slice after the first") }
            s.x.update(from: h, count: n * e)
        }
        // Only valid input may rewind a cache: a rejected call leaves every sequence as it was.
        var row = 0
        for slice in slices {
            slice.cache.truncate(to: slice.start)
            for t in 0 ..< slice.count {
                s.positions[row] = Int32(slice.start + t)
                rope.table(position: slice.start + t, into: s.ropeTable + row * c.ropeDimensions)
                row += 1
            }
        }
        for (local, block) in blocks.enumerated() {
            row = 0
            for slice in slices {
                let keys = UnsafePointer(slice.cache.keys(local)), values = UnsafePointer(slice.cache.values(local))
                for _ in 0 ..< slice.count {
                    s.rowKeys[row] = keys
                    s.rowValues[row] = values
                    row += 1
                }
            }
            runBlock(block, tokens: n, state: s)
        }
        for slice in slices { slice.cache.commit(upTo: slice.start + slice.count) }

        guard isLast, let outputNorm, let outputGroup else {
            return UnsafeMutableBufferPointer(start: s.x, count: n * e)
        }
        var count = 0
        if allLogits {
            guard n <= s.logitCapacity else { throw .badInput("\(n) logit rows exceed the state's \(s.logitCapacity)") }
            for t in 0 ..< n {
                Ops.rmsNorm(s.x + t * e, weight: outputNorm.pointer, eps: c.rmsEpsilon, count: e, into: s.xn + t * e)
            }
            count = n
        } else {
            var last = -1
            for slice in slices {
                last += slice.count
                guard slice.wantsLogits else { continue }
                guard count < s.logitCapacity else { throw .badInput("more logit rows than the state's \(s.logitCapacity)") }
                Ops.rmsNorm(s.x + last * e, weight: outputNorm.pointer, eps: c.rmsEpsilon, count: e, into: s.xn + count * e)
                count += 1
            }
            if count == 0 { return UnsafeMutableBufferPointer(start: s.logits, count: 0) }
        }
        s.groupOutputs[0] = s.logits
        MatMul.multiply(outputGroup, s.xn, tokens: count, into: s.groupOutputs, scratch: s.quantScratch, pool: s.pool)
        return UnsafeMutableBufferPointer(start: s.logits, count: count * c.vocabularySize)
    }

    private func runBlock(_ b: BlockWeights, tokens n: Int, state s: ForwardState) {
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
            let position = Int(s.positions[t])
            UnsafeMutablePointer(mutating: s.rowKeys[t] + position * c.kvWidth).update(from: k, count: c.kvWidth)
            UnsafeMutablePointer(mutating: s.rowValues[t] + position * c.kvWidth).update(from: v, count: c.kvWidth)
        }
        }
        Attention.causal(shape: c.attentionShape, q: s.q, tokens: n, positions: s.positions,
                         rowKeys: s.rowKeys, rowValues: s.rowValues, out: s.attn, scores: s.scores, scoreStride: s.scoreStride, pool: s.pool)
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
