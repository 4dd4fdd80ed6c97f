import Engine
import Foundation
import Testing
import Tokenizer

/// llama.cpp's outputs for the test models (shared/reference) and the fetched model files.
/// Tests that need them are skipped on a machine without them, except under CI, where a missing
/// model is a failure: CI fetches the models first.
enum ReferenceData {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let referenceDirectory = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/reference")
    static let modelsDirectory = URL(fileURLWithPath: ProcessInfo.processInfo.environment["PANGALACTIC_MODELS"]
        ?? packageRoot.appendingPathComponent("models").path)

    struct ModelCase: Sendable, CustomTestStringConvertible {
        var name: String
        var modelFile: String
        var referenceFile: String
        var templatesFile: String
        var testDescription: String { name }
    }

    static let models = [
        ModelCase(name: "SmolLM2-135M", modelFile: "SmolLM2-135M-Instruct.Q4_1.gguf",
                  referenceFile: "smollm2-135m.json", templatesFile: "templates-smollm2-135m.json"),
        ModelCase(name: "Qwen2.5-Coder-0.5B", modelFile: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                  referenceFile: "qwen2.5-coder-0.5b.json", templatesFile: "templates-qwen2.5-coder-0.5b.json"),
    ]

    static var available: Bool {
        let present = models.allSatisfy { FileManager.default.fileExists(atPath: modelsDirectory.appendingPathComponent($0.modelFile).path) }
            && FileManager.default.fileExists(atPath: referenceDirectory.path)
        if !present && ProcessInfo.processInfo.environment["CI"] != nil {
            // Under CI the models must be there; let the tests run and fail loudly.
            return true
        }
        return present
    }

    struct Reference: Decodable {
        struct Tokenization: Decodable { var text: String; var tokens: [Int32] }
        struct Continuation: Decodable {
            var kind: String
            var prompt_text: String
            var prompt_tokens: [Int32]
            var tokens: [Int32]
            var text: String
            var top: [[[Double]]]
            var input: Input
        }
        enum Input: Decodable {
            case text(String)
            case messages([Message])
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let s = try? c.decode(String.self) { self = .text(s) } else { self = .messages(try c.decode([Message].self)) }
            }
        }
        struct Message: Decodable { var role: String; var content: String }
        struct Perplexity: Decodable { var ctx: Int; var ppl: Double }
        var tokenize: [Tokenization]
        var continuations: [Continuation]
        var perplexity: Perplexity
    }

    struct Templates: Decodable {
        struct Case: Decodable {
            var messages: [Reference.Message]
            var add_generation_prompt: Bool
            var prompt_text: String
        }
        var templates: [Case]
    }

    static func load<T: Decodable>(_ type: T.Type, _ file: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: referenceDirectory.appendingPathComponent(file)))
    }

    /// One engine per model for the whole test run: loading is cheap (mmap) but not free.
    nonisolated(unsafe) private static var engines: [String: InferenceEngine] = [:]
    private static let lock = NSLock()

    static func engine(_ m: ModelCase) throws -> InferenceEngine {
        lock.lock()
        defer { lock.unlock() }
        if let e = engines[m.name] { return e }
        let e = try InferenceEngine(modelPath: modelsDirectory.appendingPathComponent(m.modelFile).path,
                                    threads: 2, contextLength: 1024, batchSize: 128)
        engines[m.name] = e
        return e
    }
}
