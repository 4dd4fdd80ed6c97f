#if canImport(Glibc)
import Glibc
#endif
import GGUF
import Kernels
import Models
import Sampling
import Tokenizer

/// Errors the engine reports to its callers (CLI, gateway), wrapping lower layers' errors.
public enum EngineError: Error, CustomStringConvertible {
    init(_ error: TextFrontEndError) {
        switch error {
        case let .tokenizer(e): self = .tokenizer(e)
        case let .template(e): self = .template(e)
        }
    }

    case model(ModelError)
    case file(GGUFError)
    case tokenizer(any Error)
    case template(any Error)
    case sampling(any Error)
    case promptTooLong(tokens: Int, context: Int)
    case emptyPrompt
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .model(e): return e.description
        case let .file(e): return e.description
        case let .tokenizer(e): return "tokenizer: \(e)"
        case let .template(e): return "chat template: \(e)"
        case let .sampling(e): return "sampling: \(e)"
        case let .promptTooLong(t, c): return "the prompt has \(t) tokens but the context holds \(c)"
        case .emptyPrompt: return "the prompt is empty"
        case let .invalidArgument(m): return m
        }
    }
}

/// One model loaded for single-process inference: weights, tokenizer, chat template and a
/// thread pool. It owns the loops shared by the CLI commands (generation, perplexity,
/// evaluation) so none of them re-implements prefill or sampling.
public final class InferenceEngine: @unchecked Sendable {
    public let file: GGUFFile
    public let model: TransformerModel
    /// Tokenizer and chat template.
    public let text: TextFrontEnd
    public var tokenizer: Tokenizer { text.tokenizer }
    public let pool: ComputePool
    /// Positions one sequence may hold.
    public let contextLength: Int
    /// Tokens per forward call during prefill.
    public let batchSize: Int

    public var config: ModelConfig { model.config }

    public init(modelPath: String, threads: Int = 2, contextLength: Int? = nil, batchSize: Int = 64) throws(EngineError) {
        do {
            file = try GGUFFile(path: modelPath)
        } catch {
            throw .file(error)
        }
        do {
            model = try TransformerModel(file: file)
        } catch {
            throw .model(error)
        }
        do {
            text = try TextFrontEnd(file: file)
        } catch {
            throw EngineError(error)
        }
        pool = ComputePool(threadCount: threads)
        let trained = model.config.trainedContextLength
        let requested = contextLength ?? min(trained, 4096)
        guard requested > 0, requested <= trained else {
            throw .invalidArgument("context length \(requested) is outside 1...\(trained), the model's trained context")
        }
        // The KV cache is preallocated: refuse sizes the machine cannot hold rather than trap.
        let kvBytes = 2 * model.layers.count * requested * model.config.kvWidth * MemoryLayout<Float>.size
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        guard physical <= 0 || kvBytes <= physical / 2 else {
            throw .invalidArgument("a context of \(requested) needs \(kvBytes >> 20) MiB of KV cache, more than half of this machine's \(physical >> 20) MiB")
        }
        self.contextLength = requested
        self.batchSize = max(1, batchSize)
    }

    /// A KV cache and scratch for one sequence; reuse them across requests to avoid allocating.
    public func makeSession(logitRows: Int = 1) -> Session {
        Session(cache: model.makeCache(capacity: contextLength),
                state: ForwardState(config: model.config, maxTokens: batchSize, contextCapacity: contextLength,
                                    logitRows: logitRows, pool: pool))
    }

    public struct Session {
        public let cache: KVCache
        public let state: ForwardState
    }

    // MARK: Prompts

    /// Renders a conversation with the model's own chat template (see `TextFrontEnd`).
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws(EngineError) -> String {
        do {
            return try text.renderChat(messages, addGenerationPrompt: addGenerationPrompt)
        } catch {
            throw EngineError(error)
        }
    }

    /// Tokenizes a prompt with the model's BOS rule and special tokens parsed.
    public func tokenize(_ prompt: String, addSpecial: Bool = true) -> [Int32] {
        text.tokenize(prompt, addSpecial: addSpecial)
    }

    // MARK: Forward loops

    /// Runs `tokens` into the session's cache from position `start`, in batches, and returns the
    /// logits of the last token.
    @discardableResult
    public func prefill(_ tokens: [Int32], start: Int = 0, session: Session) throws(EngineError) -> UnsafeMutableBufferPointer<Float> {
        guard !tokens.isEmpty else { throw .emptyPrompt }
        guard start + tokens.count <= contextLength else { throw .promptTooLong(tokens: start + tokens.count, context: contextLength) }
        var logits = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
        var offset = 0
        while offset < tokens.count {
            let n = min(batchSize, tokens.count - offset)
            do {
                logits = try tokens.withUnsafeBufferPointer { all throws(ModelError) in
                    let chunk = UnsafeBufferPointer(rebasing: all[offset ..< offset + n])
                    return try model.forward(.tokens(chunk), start: start + offset, cache: session.cache, state: session.state)
                }
            } catch {
                throw .model(error)
            }
            offset += n
        }
        return logits
    }

    /// Logits for every position of `tokens` (run from an empty cache), handed to `body` one
    /// batch at a time as (first position, rows).
    public func forEachLogitRow(_ tokens: [Int32], session: Session,
                                _ body: (Int, UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        guard tokens.count <= contextLength else { throw EngineError.promptTooLong(tokens: tokens.count, context: contextLength) }
        session.cache.reset()
        var offset = 0
        while offset < tokens.count {
            let n = min(batchSize, tokens.count - offset)
            let rows = try tokens.withUnsafeBufferPointer { all in
                try model.forward(.tokens(UnsafeBufferPointer(rebasing: all[offset ..< offset + n])), start: offset,
                                  cache: session.cache, state: session.state, logits: .all)
            }
            try body(offset, rows)
            offset += n
        }
    }
}
