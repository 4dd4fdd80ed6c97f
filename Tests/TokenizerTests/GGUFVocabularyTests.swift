import Testing
import Tokenizer

/// GGUF metadata stand-in: a dictionary of typed values.
private struct Metadata {
    var values: [String: Any]

    func vocabulary() throws(TokenizerError) -> Vocabulary {
        try Vocabulary(
            ggufString: { values[$0] as? String },
            stringArray: { values[$0] as? [String] },
            int32Array: { values[$0] as? [Int32] },
            floatArray: { values[$0] as? [Float] },
            integer: { values[$0] as? Int64 },
            bool: { values[$0] as? Bool })
    }
}

struct GGUFVocabularyTests {
    let bpeTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab"]

    @Test func readsKeysWithTheirValues() throws {
        let v = try Metadata(values: [
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.pre": "qwen2",
            "tokenizer.ggml.tokens": bpeTokens,
            "tokenizer.ggml.token_type": [Int32(3), 3, 3, 1, 1, 1],
            "tokenizer.ggml.merges": ["a b"],
            "tokenizer.ggml.bos_token_id": Int64(0),
            "tokenizer.ggml.eos_token_id": Int64(2),
            "tokenizer.ggml.padding_token_id": Int64(0),
            "tokenizer.ggml.add_bos_token": false,
        ]).vocabulary()
        #expect(v.model == .gpt2)
        #expect(v.preTokenizer == "qwen2")
        #expect(v.bosID == 0 && v.eosID == 2 && v.paddingID == 0 && v.eotID == nil && v.unknownID == nil)
        #expect(!v.addBOS && !v.addEOS && !v.addSpacePrefix)
        let tok = try Tokenizer(vocabulary: v)
        #expect(tok.encode("<|im_start|>ab<|im_end|>", addSpecial: true, parseSpecial: true) == [1, 5, 2])
        #expect(tok.eotID == 2)
    }

    @Test func appliesLlamaCppDefaults() throws {
        // gpt2: bos/eos default to 11 when in range; llama3 pre-tokenizers add BOS.
        let tokens = (0..<12).map { "t\($0)" }
        let v = try Metadata(values: [
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.pre": "llama-bpe",
            "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.merges": [String](),
            "tokenizer.ggml.eos_token_id": Int64(99),  // out of range: ignored, default kept
        ]).vocabulary()
        #expect(v.bosID == 11 && v.eosID == 11)
        #expect(v.addBOS)

        // Out-of-range defaults are dropped; a missing pre is llama.cpp's "default".
        let small = try Metadata(values: [
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": ["a", "b"],
            "tokenizer.ggml.merges": [String](),
        ]).vocabulary()
        #expect(small.bosID == nil && small.eosID == nil && small.preTokenizer == "")
        #expect(!small.addBOS)

        // SPM: bos 1, eos 2, unknown 0, BOS and space prefix added.
        let spm = try Metadata(values: [
            "tokenizer.ggml.model": "llama",
            "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "▁a"],
            "tokenizer.ggml.scores": [Float(0), 0, 0, -1, -2],  // longer than tokens: cut
            "tokenizer.ggml.token_type": [Int32(2), 3, 3, 1],
        ]).vocabulary()
        #expect(spm.bosID == 1 && spm.eosID == 2 && spm.unknownID == 0)
        #expect(spm.addBOS && spm.addSpacePrefix && spm.scores.count == 4)
        let tok = try Tokenizer(vocabulary: spm)
        #expect(tok.encode("a", addSpecial: true, parseSpecial: false) == [1, 3])
    }

    @Test func reportsMissingKeysAndUnsupportedModels() {
        #expect(throws: TokenizerError.missingKey("tokenizer.ggml.model")) {
            try Metadata(values: [:]).vocabulary()
        }
        #expect(throws: TokenizerError.missingKey("tokenizer.ggml.merges")) {
            try Metadata(values: ["tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"]]).vocabulary()
        }
        #expect(throws: TokenizerError.unsupportedModel(name: "t5")) {
            try Metadata(values: ["tokenizer.ggml.model": "t5", "tokenizer.ggml.tokens": ["a"]]).vocabulary()
        }
    }
}
