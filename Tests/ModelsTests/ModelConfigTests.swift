import GGUF
import Models
import TestSupport
import Testing

/// Metadata that contradicts the tensors must be rejected with a typed error (hardening.md).
@Suite struct ModelConfigTests {
    func load(_ edit: (inout GGUFWriter) throws -> Void) throws -> ModelError? {
        var w = try TinyModel.writer(TinyModelSpec())
        try edit(&w)
        let file = try GGUFFile(bytes: w.serialize())
        do {
            _ = try TransformerModel(file: file)
            return nil
        } catch {
            return error
        }
    }

    @Test func tinyModelLoads() throws {
        #expect(try load { _ in } == nil)
        let config = try ModelConfig(file: TinyModel.file(TinyModelSpec()))
        #expect(config.architecture == .llama && config.headDim == 16 && config.vocabularySize == 64 && config.layerCount == 4)
    }

    @Test func headsMustDivideEmbedding() throws {
        #expect(try load { $0.set("llama.attention.head_count", .uint32(5)) } != nil)
        #expect(try load { $0.set("llama.attention.head_count_kv", .uint32(3)) } == .invalidConfig("4 heads and 3 KV heads"))
        #expect(try load { $0.set("llama.attention.head_count", .uint32(0)) } != nil)
    }

    @Test func missingLayerTensorsAreNamed() throws {
        #expect(try load { $0.set("llama.block_count", .uint32(5)) } == .missingTensor("blk.4.attn_norm.weight"))
    }

    @Test func vocabularyMustMatchEmbeddingRows() throws {
        #expect(try load { $0.set("llama.vocab_size", .uint32(65)) } == .invalidConfig("vocab_size 65 differs from token_embd rows 64"))
        #expect(try load { $0.set("tokenizer.ggml.tokens", .array(.string, [.string("a")])) }
            == .invalidConfig("the tokenizer has 1 tokens but token_embd has 64 rows"))
    }

    @Test func unknownArchitectureAndMissingKeys() throws {
        #expect(try load { $0.set("general.architecture", .string("mamba")) } == .unsupportedArchitecture("mamba"))
        var w = try TinyModel.writer(TinyModelSpec())
        w.set("general.architecture", .string("qwen2"))
        #expect(throws: ModelError.missingKey("qwen2.block_count")) { try ModelConfig(file: GGUFFile(bytes: w.serialize())) }
    }
}
