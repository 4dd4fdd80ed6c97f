import Kernels
import CKernels
import Models
import Sampling

/// Throughput of one benchmark test over several repetitions.
public struct BenchmarkResult: Sendable {
    /// "pp512" (prompt processing) or "tg128" (text generation), as llama-bench names them.
    public var test: String
    public var tokensPerSecond: [Double]

    public var mean: Double { tokensPerSecond.reduce(0, +) / Double(max(1, tokensPerSecond.count)) }
    public var standardDeviation: Double {
        guard tokensPerSecond.count > 1 else { return 0 }
        let m = mean
        return (tokensPerSecond.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(tokensPerSecond.count - 1)).squareRoot()
    }
}

extension InferenceEngine {
    /// Deterministic pseudo-random token ids, so runs are comparable without a tokenizer.
    func benchmarkTokens(_ count: Int, seed: UInt64) -> [Int32] {
        var state = seed
        return (0 ..< count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int32(truncatingIfNeeded: (state >> 33) % UInt64(config.vocabularySize))
        }
    }

    /// Prompt processing: a fresh prompt of `tokens` tokens through an empty cache, like
    /// llama-bench's ppN. One untimed warm-up run comes first.
    public func benchmarkPrefill(tokens: Int, repetitions: Int) throws -> BenchmarkResult {
        let session = makeSession()
        var result = BenchmarkResult(test: "pp\(tokens)", tokensPerSecond: [])
        for rep in -1 ..< repetitions {
            let prompt = benchmarkTokens(tokens, seed: UInt64(rep + 2))
            session.cache.reset()
            let t0 = monotonicSeconds()
            try prefill(prompt, session: session)
            let dt = monotonicSeconds() - t0
            if rep >= 0 { result.tokensPerSecond.append(Double(tokens) / dt) }
        }
        return result
    }

    /// Text generation: `tokens` single-token decode steps after a one-token prompt, like
    /// llama-bench's tgN (no sampling in the timed loop). One untimed warm-up run comes first.
    public func benchmarkDecode(tokens: Int, repetitions: Int) throws -> BenchmarkResult {
        let session = makeSession()
        var result = BenchmarkResult(test: "tg\(tokens)", tokensPerSecond: [])
        for rep in -1 ..< repetitions {
            let ids = benchmarkTokens(tokens + 1, seed: UInt64(rep + 100))
            session.cache.reset()
            try prefill([ids[0]], session: session)
            let t0 = monotonicSeconds()
            for i in 1 ... tokens {
                _ = try [ids[i]].withUnsafeBufferPointer { one in
                    try model.forward(.tokens(one), start: i, cache: session.cache, state: session.state)
                }
            }
            let dt = monotonicSeconds() - t0
            if rep >= 0 { result.tokensPerSecond.append(Double(tokens) / dt) }
        }
        return result
    }

    /// Decode of `streams` sequences at once in this process, the way a pipeline node batches
    /// them: each step runs one row per sequence through one batched forward pass and takes
    /// the argmax of each row's logits. Returns the mean tokens/s per stream and in total over
    /// `repetitions` runs of `tokens` steps after a one-token prompt. This is the single-process
    /// baseline of `bench --nodes 1 --concurrency …`.
    public func benchmarkStreams(_ streams: Int, tokens: Int, repetitions: Int) throws -> (perStream: Double, total: Double) {
        let caches = (0 ..< streams).map { _ in model.makeCache(capacity: tokens + 2) }
        let state = ForwardState(config: config, maxTokens: max(streams, 1), contextCapacity: tokens + 2,
                                 logitRows: streams, pool: pool)
        let vocab = config.vocabularySize
        var rates: [Double] = []
        for rep in -1 ..< repetitions {
            var next = benchmarkTokens(streams, seed: UInt64(rep + 300))
            for c in caches { c.reset() }
            var t0 = 0.0
            for step in 0 ... tokens {
                if step == 1 { t0 = monotonicSeconds() }
                let slices = caches.map { SequenceSlice(cache: $0, start: step, count: 1) }
                let logits = try next.withUnsafeBufferPointer { ids in
                    try model.forward(batch: .tokens(ids), slices: slices, state: state)
                }
                for s in 0 ..< streams {
                    next[s] = Sampler.argmax(UnsafeBufferPointer(rebasing: logits[s * vocab ..< (s + 1) * vocab]))
                }
            }
            let dt = monotonicSeconds() - t0
            if rep >= 0 { rates.append(Double(tokens) / dt) }
        }
        let perStream = rates.reduce(0, +) / Double(max(1, rates.count))
        return (perStream, perStream * Double(streams))
    }

    /// Bytes of weights a decode step reads: every block, plus the output matrix (the token
    /// embedding when tied). Embedding lookups read one row, which is negligible.
    public var weightBytesPerToken: Int {
        let blocks = file.tensors.filter { $0.layerIndex != nil }.reduce(0) { $0 + $1.byteCount }
        let output = file.tensor(named: "output.weight") ?? file.tensor(named: "token_embd.weight")
        let norm = file.tensor(named: "output_norm.weight")?.byteCount ?? 0
        return blocks + (output?.byteCount ?? 0) + norm
    }
}

/// Measures sustained read bandwidth with streaming AVX2 loads over a buffer much larger than
/// the caches, split across the pool's threads. Returns bytes per second (best of `rounds`).
public func measureReadBandwidth(pool: ComputePool, bytes: Int = 256 << 20, rounds: Int = 5) -> Double {
    let count = bytes / 4
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { buffer.deallocate() }
    buffer.initialize(repeating: 1, count: count)
    var best = 0.0
    var sink: Float = 0
    for _ in 0 ..< rounds {
        let t0 = monotonicSeconds()
        let threads = pool.activeThreads
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: threads)
        pool.run { worker in
            let lo = count * worker / threads, hi = count * (worker + 1) / threads
            partial[worker] = pg_stream_sum_f32(buffer + lo, Int64(hi - lo))
        }
        let dt = monotonicSeconds() - t0
        for i in 0 ..< threads { sink += partial[i] }
        partial.deallocate()
        best = max(best, Double(bytes) / dt)
    }
    return sink.isNaN ? 0 : best
}
