#if canImport(Glibc)
import Glibc
#endif
import Models
import Sampling
import Tokenizer

/// Why a generation stopped.
public enum FinishReason: String, Sendable {
    /// The model produced an end-of-generation token.
    case stop
    /// The token budget ran out.
    case length
    /// The context window is full.
    case contextFull = "context_full"
    /// The caller asked to stop.
    case cancelled
}

/// Timing and counts of one generation, for `generate`'s report and the benchmarks.
public struct GenerationStats: Sendable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var finishReason = FinishReason.length

    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    /// Decode speed over the tokens after the first (the first comes out of prefill).
    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 && generatedTokens > 1 ? Double(generatedTokens - 1) / decodeSeconds : 0
    }
}

/// Monotonic seconds.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

extension InferenceEngine {
    /// Generates up to `maxTokens` tokens after `prompt`, calling `onToken(id, text)` for each
    /// sampled token, the end-of-generation token included; `text` holds only complete UTF-8
    /// characters. A last call with a nil id flushes bytes still pending at the end. Returning
    /// false from `onToken` stops early.
    public func generate(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters, session: Session? = nil,
                         onToken: (Int32?, String) -> Bool) throws(EngineError) -> GenerationStats {
        guard maxTokens >= 0 else { throw .invalidArgument("max tokens must not be negative") }
        let sampler: Sampler
        do {
            try sampling.validate()
            sampler = try Sampler(parameters: sampling, vocabularySize: config.vocabularySize)
        } catch {
            throw .sampling(error)
        }
        let session = session ?? makeSession()
        var stats = GenerationStats()
        stats.promptTokens = prompt.count
        for t in prompt { sampler.accept(t) }
        let t0 = monotonicSeconds()
        var logits = try prefill(prompt, session: session)
        stats.prefillSeconds = monotonicSeconds() - t0
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        var position = prompt.count
        let t1 = monotonicSeconds()
        while true {
            if stats.generatedTokens >= maxTokens { stats.finishReason = .length; break }
            let token = sampler.sample(logits: logits)
            sampler.accept(token)
            stats.generatedTokens += 1
            if tokenizer.isEndOfGeneration(token) {
                stats.finishReason = .stop
                _ = onToken(token, detokenizer.finish())
                break
            }
            if !onToken(token, detokenizer.append(token)) { stats.finishReason = .cancelled; break }
            if position >= contextLength { stats.finishReason = .contextFull; break }
            if stats.generatedTokens >= maxTokens { stats.finishReason = .length; break }
            do {
                logits = try [token].withUnsafeBufferPointer { ids throws(ModelError) in
                    try model.forward(.tokens(ids), start: position, cache: session.cache, state: session.state)
                }
            } catch {
                throw .model(error)
            }
            position += 1
        }
        stats.decodeSeconds = monotonicSeconds() - t1
        if stats.finishReason != .stop {
            let rest = detokenizer.finish()
            if !rest.isEmpty { _ = onToken(nil, rest) }
        }
        return stats
    }
}
