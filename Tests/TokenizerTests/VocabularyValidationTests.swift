import Testing
import Tokenizer

struct VocabularyValidationTests {
    let tokens = ["a", "b", "ab"]

    @Test func acceptsAWellFormedVocabulary() throws {
        let tok = try Tokenizer(vocabulary: Vocabulary(
            model: .gpt2, preTokenizer: "gpt-2", tokens: tokens, tokenTypes: [1, 1, 1],
            merges: ["a b"], bosID: 0, eosID: 1))
        #expect(tok.vocabularySize == 3)
        #expect(tok.encode("ab", addSpecial: false, parseSpecial: false) == [2])
        #expect(tok.tokenID("ab") == 2)
        #expect(tok.tokenText(2) == "ab")
    }

    @Test func rejectsEmptyVocabulary() {
        #expect(throws: TokenizerError.emptyVocabulary) {
            try Tokenizer(vocabulary: Vocabulary(model: .gpt2, tokens: []))
        }
    }

    @Test func rejectsTypeAndScoreCountMismatch() {
        #expect(throws: TokenizerError.tokenTypeCountMismatch(tokens: 3, types: 2)) {
            try Tokenizer(vocabulary: Vocabulary(model: .gpt2, tokens: tokens, tokenTypes: [1, 1]))
        }
        #expect(throws: TokenizerError.scoreCountMismatch(tokens: 3, scores: 4)) {
            try Tokenizer(vocabulary: Vocabulary(model: .llama, tokens: tokens, scores: [0, 0, 0, 0]))
        }
    }

    @Test func rejectsSpecialIDsOutOfRange() {
        #expect(throws: TokenizerError.specialTokenOutOfRange(name: "bos", id: 3)) {
            try Tokenizer(vocabulary: Vocabulary(model: .gpt2, tokens: tokens, bosID: 3))
        }
        #expect(throws: TokenizerError.specialTokenOutOfRange(name: "eos", id: -1)) {
            try Tokenizer(vocabulary: Vocabulary(model: .gpt2, tokens: tokens, eosID: -1))
        }
        #expect(throws: TokenizerError.specialTokenOutOfRange(name: "padding", id: 99)) {
            try Tokenizer(vocabulary: Vocabulary(model: .gpt2, tokens: tokens, paddingID: 99))
        }
    }

    @Test func rejectsAddingAMissingBOS() {
        #expect(throws: TokenizerError.missingSpecialToken(name: "bos")) {
            try Tokenizer(vocabulary: Vocabulary(model: .llama, tokens: tokens, addBOS: true))
        }
    }

    @Test func rejectsDuplicateTokens() {
        #expect(throws: TokenizerError.duplicateToken(text: "a", firstID: 0, secondID: 3)) {
            try Tokenizer(vocabulary: Vocabulary(model: .gpt2, tokens: tokens + ["a"]))
        }
    }

    @Test func rejectsMalformedMerges() {
        #expect(throws: TokenizerError.malformedMerge(index: 1, text: "ab")) {
            try Tokenizer(vocabulary: Vocabulary(model: .gpt2, tokens: tokens, merges: ["a b", "ab"]))
        }
        #expect(throws: TokenizerError.malformedMerge(index: 0, text: " ab")) {
            try Tokenizer(vocabulary: Vocabulary(model: .gpt2, tokens: tokens, merges: [" ab"]))
        }
    }

    @Test func rejectsUnsupportedModels() throws {
        #expect(throws: TokenizerError.unsupportedModel(name: "bert")) {
            try Vocabulary.Model(ggufName: "bert")
        }
        #expect(try Vocabulary.Model(ggufName: "gpt2") == .gpt2)
        #expect(try Vocabulary.Model(ggufName: "llama") == .llama)
    }

    @Test func llamaCppDefaults() {
        #expect(Vocabulary.defaultAddBOS(model: .llama, preTokenizer: ""))
        #expect(Vocabulary.defaultAddBOS(model: .gpt2, preTokenizer: "llama-bpe"))
        #expect(!Vocabulary.defaultAddBOS(model: .gpt2, preTokenizer: "qwen2"))
        #expect(Vocabulary.defaultAddSpacePrefix(model: .llama))
        #expect(!Vocabulary.defaultAddSpacePrefix(model: .gpt2))
    }
}
