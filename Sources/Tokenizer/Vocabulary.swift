/// The tokenizer data of a model, as a GGUF file stores it under `tokenizer.ggml.*`.
///
/// Construct it from the GGUF metadata, then hand it to `Tokenizer(vocabulary:)`, which
/// validates it. The defaults of the optional flags follow llama.cpp when the GGUF file does
/// not set them: see `Vocabulary.defaultAddBOS(model:preTokenizer:)` and
/// `Vocabulary.defaultAddSpacePrefix(model:)`.
public struct Vocabulary: Sendable {
    /// `tokenizer.ggml.model`.
    public enum Model: String, Sendable {
        /// Byte-level BPE (`"gpt2"`): GPT-2 byte-to-unicode mapping, ranked merges.
        case gpt2
        /// SentencePiece BPE (`"llama"`): spaces escaped as U+2581, merges by token score,
        /// byte fallback through `<0xXX>` tokens.
        case llama

        /// The model for a `tokenizer.ggml.model` value; throws for tokenizers other than
        /// "gpt2" and "llama" (bert, t5, rwkv, ...).
        public init(ggufName: String) throws(TokenizerError) {
            guard let model = Model(rawValue: ggufName) else {
                throw .unsupportedModel(name: ggufName)
            }
            self = model
        }
    }

    /// Token types as GGUF stores them (`tokenizer.ggml.token_type`).
    public enum TokenType: Int32, Sendable {
        case undefined = 0
        case normal = 1
        case unknown = 2
        case control = 3
        case userDefined = 4
        case unused = 5
        case byte = 6
    }

    public var model: Model
    /// `tokenizer.ggml.pre`: "smollm", "qwen2", "llama-bpe", "gpt-2", "default", ...
    /// An empty string means llama.cpp's "default" pre-tokenizer; an unknown name falls back to
    /// the GPT-2 regex.
    public var preTokenizer: String
    /// `tokenizer.ggml.tokens`.
    public var tokens: [String]
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte. May be empty, in which case every token is normal.
    public var tokenTypes: [Int32]
    /// `tokenizer.ggml.scores` (needed by SPM); may be empty (all scores 0).
    public var scores: [Float]
    /// `tokenizer.ggml.merges`, each "left right" (byte-level BPE only).
    public var merges: [String]
    public var bosID: Int32?
    public var eosID: Int32?
    /// `tokenizer.ggml.eot_token_id`; when absent it is detected from the token texts
    /// ("<|eot_id|>", "<|im_end|>", "<|end|>", ...), as llama.cpp does.
    public var eotID: Int32?
    public var unknownID: Int32?
    public var paddingID: Int32?
    /// `tokenizer.ggml.add_bos_token`.
    public var addBOS: Bool
    /// `tokenizer.ggml.add_eos_token`.
    public var addEOS: Bool
    /// `tokenizer.ggml.add_space_prefix`.
    public var addSpacePrefix: Bool

    public init(
        model: Model,
        preTokenizer: String = "",
        tokens: [String],
        tokenTypes: [Int32] = [],
        scores: [Float] = [],
        merges: [String] = [],
        bosID: Int32? = nil,
        eosID: Int32? = nil,
        eotID: Int32? = nil,
        unknownID: Int32? = nil,
        paddingID: Int32? = nil,
        addBOS: Bool = false,
        addEOS: Bool = false,
        addSpacePrefix: Bool = false
    ) {
        self.model = model
        self.preTokenizer = preTokenizer
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.scores = scores
        self.merges = merges
        self.bosID = bosID
        self.eosID = eosID
        self.eotID = eotID
        self.unknownID = unknownID
        self.paddingID = paddingID
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.addSpacePrefix = addSpacePrefix
    }

    /// llama.cpp's value of `add_bos` when `tokenizer.ggml.add_bos_token` is absent: true for
    /// SPM and for the llama3 family of BPE pre-tokenizers ("llama3", "llama-bpe", ...),
    /// "tekken" and "chameleon".
    public static func defaultAddBOS(model: Model, preTokenizer: String) -> Bool {
        switch model {
        case .llama: return true
        case .gpt2:
            switch preTokenizer {
            case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                 "lfm2", "jina-v5-nano", "tekken", "chameleon":
                return true
            default:
                return false
            }
        }
    }

    /// llama.cpp's value of `add_space_prefix` when `tokenizer.ggml.add_space_prefix` is
    /// absent: true for SPM, false for BPE.
    public static func defaultAddSpacePrefix(model: Model) -> Bool {
        model == .llama
    }

    /// llama.cpp's special token ids for a model type when the GGUF file has no
    /// `tokenizer.ggml.*_token_id` key (each is dropped when out of range for the vocabulary).
    public static func defaultSpecialIDs(model: Model) -> (bos: Int32?, eos: Int32?, unknown: Int32?) {
        switch model {
        case .llama: return (1, 2, 0)
        case .gpt2: return (11, 11, nil)
        }
    }
}

/// Why a vocabulary was refused.
public enum TokenizerError: Error, Equatable, Sendable {
    /// `tokenizer.ggml.tokens` is empty.
    case emptyVocabulary
    /// `tokenizer.ggml.token_type` has a different length than the token list.
    case tokenTypeCountMismatch(tokens: Int, types: Int)
    /// `tokenizer.ggml.scores` has a different length than the token list.
    case scoreCountMismatch(tokens: Int, scores: Int)
    /// A special token id (named "bos", "eos", "eot", "unknown", "padding") is outside the
    /// vocabulary.
    case specialTokenOutOfRange(name: String, id: Int32)
    /// `addBOS` or `addEOS` is set but the matching id is missing.
    case missingSpecialToken(name: String)
    /// Two tokens have the same text (llama.cpp refuses such vocabularies too).
    case duplicateToken(text: String, firstID: Int32, secondID: Int32)
    /// A merge has no space separating its two parts.
    case malformedMerge(index: Int, text: String)
    /// A GGUF key the vocabulary needs is absent.
    case missingKey(String)
    /// `tokenizer.ggml.model` names a tokenizer this engine does not implement.
    case unsupportedModel(name: String)
    /// The vocabulary is larger than Int32 ids can address.
    case vocabularyTooLarge(count: Int)
}
