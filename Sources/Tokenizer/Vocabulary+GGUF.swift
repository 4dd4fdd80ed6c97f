/// Reading a vocabulary from GGUF metadata with llama.cpp's defaults, through closures so that
/// this module needs no particular GGUF reader.
extension Vocabulary {
    /// The GGUF keys read by `init(ggufString:stringArray:int32Array:floatArray:integer:bool:)`.
    public enum GGUFKey {
        public static let model = "tokenizer.ggml.model"
        public static let preTokenizer = "tokenizer.ggml.pre"
        public static let tokens = "tokenizer.ggml.tokens"
        public static let tokenTypes = "tokenizer.ggml.token_type"
        public static let scores = "tokenizer.ggml.scores"
        public static let merges = "tokenizer.ggml.merges"
        public static let bosID = "tokenizer.ggml.bos_token_id"
        public static let eosID = "tokenizer.ggml.eos_token_id"
        public static let eotID = "tokenizer.ggml.eot_token_id"
        public static let unknownID = "tokenizer.ggml.unknown_token_id"
        public static let paddingID = "tokenizer.ggml.padding_token_id"
        public static let addBOS = "tokenizer.ggml.add_bos_token"
        public static let addEOS = "tokenizer.ggml.add_eos_token"
        public static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
    }

    /// Builds the vocabulary from GGUF metadata the way llama.cpp loads it.
    ///
    /// Each closure returns the value stored under a key, or nil when the key is absent (or of
    /// another type). `floatArray` should also convert an INT32 `tokenizer.ggml.scores` array;
    /// `integer` reads any integer type.
    ///
    /// Defaults, as in llama.cpp: an absent `pre` means "default"; special ids absent from the
    /// file are bos 1 / eos 2 / unknown 0 for "llama" and bos 11 / eos 11 for "gpt2" (no bos
    /// for chatglm-bpe, glm4, glm5), each dropped when outside the vocabulary, and a stored id
    /// outside the vocabulary is ignored; `add_bos_token`, `add_eos_token` and
    /// `add_space_prefix` default per `defaultAddBOS`, false and `defaultAddSpacePrefix`.
    /// Token type and score arrays longer than the token list are cut to its length.
    public init(
        ggufString string: (String) -> String?,
        stringArray: (String) -> [String]?,
        int32Array: (String) -> [Int32]?,
        floatArray: (String) -> [Float]?,
        integer: (String) -> Int64?,
        bool: (String) -> Bool?
    ) throws(TokenizerError) {
        guard let modelName = string(GGUFKey.model) else { throw .missingKey(GGUFKey.model) }
        let model = try Model(ggufName: modelName)
        guard let tokens = stringArray(GGUFKey.tokens) else { throw .missingKey(GGUFKey.tokens) }
        let pre = string(GGUFKey.preTokenizer) ?? ""
        var merges: [String] = []
        if model == .gpt2 {
            guard let stored = stringArray(GGUFKey.merges) else { throw .missingKey(GGUFKey.merges) }
            merges = stored
        }
        let count = tokens.count
        var types = int32Array(GGUFKey.tokenTypes) ?? []
        if types.count > count { types.removeLast(types.count - count) }
        var scores = floatArray(GGUFKey.scores) ?? []
        if scores.count > count { scores.removeLast(scores.count - count) }

        var defaults = Self.defaultSpecialIDs(model: model)
        if model == .gpt2 && ["chatglm-bpe", "glm4", "glm5"].contains(pre) { defaults.bos = nil }
        func special(_ key: String, _ fallback: Int32?) -> Int32? {
            var id = fallback.flatMap { Int($0) < count ? $0 : nil }
            if let stored = integer(key), stored >= 0, stored < Int64(count) { id = Int32(stored) }
            return id
        }

        self.init(
            model: model,
            preTokenizer: pre,
            tokens: tokens,
            tokenTypes: types,
            scores: scores,
            merges: merges,
            bosID: special(GGUFKey.bosID, defaults.bos),
            eosID: special(GGUFKey.eosID, defaults.eos),
            eotID: special(GGUFKey.eotID, nil),
            unknownID: special(GGUFKey.unknownID, defaults.unknown),
            paddingID: special(GGUFKey.paddingID, nil),
            addBOS: bool(GGUFKey.addBOS) ?? Self.defaultAddBOS(model: model, preTokenizer: pre),
            addEOS: bool(GGUFKey.addEOS) ?? false,
            addSpacePrefix: bool(GGUFKey.addSpacePrefix) ?? Self.defaultAddSpacePrefix(model: model))
    }
}
