#if canImport(Glibc)
import Glibc
#endif
import Models
import Sampling

/// Result of llama.cpp-style perplexity.
public struct PerplexityResult: Sendable {
    public var perplexity: Double
    public var chunks: Int
    public var scoredTokens: Int
    /// Running perplexity after each chunk, as llama.cpp prints it.
    public var perChunk: [Double]
}

extension InferenceEngine {
    /// Perplexity by llama.cpp's method: non-overlapping chunks of `context` tokens (the tail
    /// that does not fill a chunk is dropped), each from a fresh cache, scoring positions
    /// context/2+1 … context−1 from the logits of the position before each.
    public func perplexity(tokens: [Int32], context: Int, progress: (Int, Double) -> Void = { _, _ in }) throws -> PerplexityResult {
        guard context >= 4, context <= contextLength else {
            throw EngineError.invalidArgument("context \(context) must be within 4...\(contextLength)")
        }
        let chunks = tokens.count / context
        guard chunks > 0 else {
            throw EngineError.invalidArgument("the text has \(tokens.count) tokens, fewer than one chunk of \(context)")
        }
        let session = makeSession(logitRows: batchSize)
        let vocab = config.vocabularySize
        let first = context / 2
        var nll = 0.0, count = 0
        var running: [Double] = []
        for chunk in 0 ..< chunks {
            let slice = Array(tokens[chunk * context ..< (chunk + 1) * context])
            try forEachLogitRow(slice, session: session) { offset, rows in
                for r in 0 ..< rows.count / vocab {
                    let position = offset + r
                    guard position >= first, position < context - 1 else { continue }
                    let row = UnsafeBufferPointer(rebasing: rows[r * vocab ..< (r + 1) * vocab])
                    nll -= Self.logSoftmax(row, at: Int(slice[position + 1]))
                    count += 1
                }
            }
            running.append(exp(nll / Double(count)))
            progress(chunk, running[chunk])
        }
        return PerplexityResult(perplexity: exp(nll / Double(count)), chunks: chunks, scoredTokens: count, perChunk: running)
    }

    /// log p(index) under a softmax of `logits`, computed stably in Double.
    static func logSoftmax(_ logits: UnsafeBufferPointer<Float>, at index: Int) -> Double {
        var m = -Float.infinity
        for v in logits where v > m { m = v }
        var sum = 0.0
        for v in logits { sum += exp(Double(v - m)) }
        return Double(logits[index] - m) - log(sum)
    }

    /// Teacher-forced top-k: for each i, the k most likely tokens (plain softmax) given
    /// `tokens + continuation[..<i]`. Pass a session from `makeSession(logitRows: batchSize)`
    /// to reuse its cache and buffers across calls.
    public func topK(tokens: [Int32], continuation: [Int32], k: Int, session: Session? = nil) throws -> [[TokenProbability]] {
        guard !tokens.isEmpty else { throw EngineError.emptyPrompt }
        guard k > 0, k <= config.vocabularySize else { throw EngineError.invalidArgument("top_k \(k) is out of range") }
        guard !continuation.isEmpty else { return [] }
        // The last continuation token is never fed to the model, so check the ids here.
        if let bad = continuation.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
            throw EngineError.model(.tokenOutOfRange(bad, vocabularySize: config.vocabularySize))
        }
        let sequence = tokens + continuation.dropLast()
        let wanted = (tokens.count - 1) ..< sequence.count
        let session = session ?? makeSession(logitRows: batchSize)
        guard session.state.logitCapacity >= batchSize else {
            throw EngineError.invalidArgument("top-k needs a session made with logitRows: batchSize")
        }
        let vocab = config.vocabularySize
        var result: [[TokenProbability]] = []
        try forEachLogitRow(sequence, session: session) { offset, rows in
            for r in 0 ..< rows.count / vocab where wanted.contains(offset + r) {
                let row = UnsafeBufferPointer(rebasing: rows[r * vocab ..< (r + 1) * vocab])
                result.append(Sampler.topProbabilities(logits: row, k: k))
            }
        }
        return result
    }
}
