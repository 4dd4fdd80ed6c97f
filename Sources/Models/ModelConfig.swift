import GGUF
import Kernels

/// Errors that make a model file unusable, named precisely enough to act on.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    case unsupportedArchitecture(String)
    case missingKey(String)
    case invalidConfig(String)
    case missingTensor(String)
    /// The index lists the tensor, but its bytes were not fetched (a store-fed slice).
    case tensorNotLoaded(String)
    case badTensorShape(name: String, expected: [Int], found: [Int])
    case unsupportedTensorType(name: String, type: GGMLType)
    case badLayerRange(Range<Int>, layerCount: Int)
    case tokenOutOfRange(Int32, vocabularySize: Int)
    case contextFull(needed: Int, capacity: Int)
    case badPosition(start: Int, cached: Int)
    case badInput(String)

    public var description: String {
        switch self {
        case let .unsupportedArchitecture(a): return "unsupported architecture '\(a)' (llama, qwen2 and qwen3 are supported)"
        case let .missingKey(k): return "missing metadata key \(k)"
        case let .invalidConfig(m): return "invalid model configuration: \(m)"
        case let .missingTensor(n): return "missing tensor \(n)"
        case let .tensorNotLoaded(n): return "tensor \(n) is in the index but its bytes were not fetched"
        case let .badTensorShape(n, e, f): return "tensor \(n) has shape \(f), expected \(e)"
        case let .unsupportedTensorType(n, t): return "tensor \(n) has type \(t), which has no kernel"
        case let .badLayerRange(r, n): return "layer range \(r.lowerBound)..<\(r.upperBound) is not within 0..<\(n)"
        case let .tokenOutOfRange(t, v): return "token id \(t) is outside the vocabulary (\(v))"
        case let .contextFull(n, c): return "the sequence needs \(n) positions but the context holds \(c)"
        case let .badPosition(s, c): return "input starts at position \(s) but the cache holds \(c) positions"
        case let .badInput(m): return "bad forward input: \(m)"
        }
    }
}

/// The architectures the forward pass knows. Variants that share a block structure share code:
/// "mistral" is a llama.
public enum Architecture: String, Sendable, CaseIterable {
    case llama, qwen2, qwen3

    init(ggufName: String) throws(ModelError) {
        switch ggufName {
        case "llama", "mistral": self = .llama
        case "qwen2": self = .qwen2
        case "qwen3": self = .qwen3
        default: throw .unsupportedArchitecture(ggufName)
        }
    }

    /// qwen2 and qwen3 rotate halves; llama rotates adjacent pairs.
    var ropeLayout: RotaryEmbedding.Layout { self == .llama ? .interleaved : .neox }
    /// qwen2 adds biases to q, k and v.
    var hasQKVBias: Bool { self == .qwen2 }
    /// qwen3 RMS-normalizes each q and k head before rotation.
    var hasQKNorm: Bool { self == .qwen3 }
}

/// Hyperparameters, parsed once from GGUF keys and validated against each other.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: Architecture
    public var architectureName: String
    /// Transformer blocks in the whole model.
    public var layerCount: Int
    /// Width of the residual stream (n_embd).
    public var embeddingLength: Int
    /// Hidden width of the feed-forward block.
    public var feedForwardLength: Int
    public var headCount: Int
    public var kvHeadCount: Int
    /// Width of one attention head (key_length, else n_embd / heads).
    public var headDim: Int
    /// Leading values of each head that RoPE rotates.
    public var ropeDimensions: Int
    public var ropeBase: Float
    public var rmsEpsilon: Float
    public var vocabularySize: Int
    /// Context length the model was trained for.
    public var trainedContextLength: Int

    public var attentionShape: Attention.Shape { .init(heads: headCount, kvHeads: kvHeadCount, headDim: headDim) }
    public var qWidth: Int { headCount * headDim }
    public var kvWidth: Int { kvHeadCount * headDim }

    public init(file: GGUFFile) throws(ModelError) {
        let m = file.metadata
        guard let archName = m.string("general.architecture") else { throw .missingKey("general.architecture") }
        architectureName = archName
        architecture = try Architecture(ggufName: archName)
        func int(_ key: String) throws(ModelError) -> Int {
            guard let v = m.int("\(archName).\(key)") else { throw .missingKey("\(archName).\(key)") }
            return v
        }
        layerCount = try int("block_count")
        embeddingLength = try int("embedding_length")
        feedForwardLength = try int("feed_forward_length")
        headCount = try int("attention.head_count")
        kvHeadCount = m.int("\(archName).attention.head_count_kv") ?? headCount
        trainedContextLength = m.int("\(archName).context_length") ?? 2048
        rmsEpsilon = m.float("\(archName).attention.layer_norm_rms_epsilon") ?? 1e-5
        ropeBase = m.float("\(archName).rope.freq_base") ?? 10000

        guard (1 ... 4096).contains(layerCount) else { throw .invalidConfig("block_count \(layerCount)") }
        guard (1 ... 1 << 16).contains(embeddingLength) else { throw .invalidConfig("embedding_length \(embeddingLength)") }
        guard (1 ... 1 << 18).contains(feedForwardLength) else { throw .invalidConfig("feed_forward_length \(feedForwardLength)") }
        guard (1 ... 1024).contains(headCount), (1 ... headCount).contains(kvHeadCount), headCount % kvHeadCount == 0 else {
            throw .invalidConfig("\(headCount) heads and \(kvHeadCount) KV heads")
        }
        if let kl = m.int("\(archName).attention.key_length") {
            headDim = kl
        } else {
            guard embeddingLength % headCount == 0 else {
                throw .invalidConfig("\(headCount) heads do not divide embedding_length \(embeddingLength)")
            }
            headDim = embeddingLength / headCount
        }
        guard headDim > 0, headDim % 2 == 0, headDim <= 1024 else { throw .invalidConfig("head dimension \(headDim)") }
        ropeDimensions = m.int("\(archName).rope.dimension_count") ?? headDim
        guard ropeDimensions > 0, ropeDimensions <= headDim, ropeDimensions % 2 == 0 else {
            throw .invalidConfig("rope.dimension_count \(ropeDimensions) with head dimension \(headDim)")
        }
        guard rmsEpsilon.isFinite, rmsEpsilon > 0, ropeBase.isFinite, ropeBase > 0 else {
            throw .invalidConfig("rms epsilon \(rmsEpsilon), rope base \(ropeBase)")
        }
        guard let embd = file.tensor(named: "token_embd.weight") else { throw .missingTensor("token_embd.weight") }
        guard embd.shape.count == 2, embd.shape[0] == embeddingLength else {
            throw .badTensorShape(name: embd.name, expected: [embeddingLength, -1], found: embd.shape)
        }
        vocabularySize = embd.shape[1]
        if let v = m.int("\(archName).vocab_size"), v != vocabularySize {
            throw .invalidConfig("vocab_size \(v) differs from token_embd rows \(vocabularySize)")
        }
        if let tokens = m["tokenizer.ggml.tokens"]?.arrayValue, tokens.count != vocabularySize {
            throw .invalidConfig("the tokenizer has \(tokens.count) tokens but token_embd has \(vocabularySize) rows")
        }
    }
}
