#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GGUF
import Testing
import Tokenizer

/// The text side without the weights: a GGUF that holds only the metadata (what the hub hands
/// drivers and the gateway, and the shape of llama.cpp's vocab-only files) tokenizes exactly as
/// llama.cpp does on the full model, in process and through `pangalactic eval`.
@Suite(.enabled(if: ReferenceData.available, "test models not fetched (run scripts/fetch-models)"))
struct VocabularyOnlyTests {
    static func vocabularyFile(_ m: ReferenceData.ModelCase) throws -> (path: String, file: GGUFFile) {
        let full = try GGUFFile(path: ReferenceData.modelsDirectory.appendingPathComponent(m.modelFile).path)
        let bytes = full.metadataOnlyBytes()
        let path = NSTemporaryDirectory() + "pangalactic-vocab-\(UInt64.random(in: 1 ... .max)).gguf"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return (path, try GGUFFile(bytes: bytes))
    }

    @Test(arguments: ReferenceData.models)
    func aMetadataOnlyFileTokenizesAndRendersLikeLlamaCpp(_ m: ReferenceData.ModelCase) throws {
        let (path, file) = try Self.vocabularyFile(m)
        defer { unlink(path) }
        #expect(file.tensors.isEmpty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count < 16 << 20)
        let front = try TextFrontEnd(file: file)
        let ref = try ReferenceData.load(ReferenceData.Reference.self, m.referenceFile)
        for t in ref.tokenize {
            #expect(front.tokenize(t.text, addSpecial: false) == t.tokens, "\(m.name): \(t.text.debugDescription)")
        }
        for c in ref.continuations {
            #expect(front.tokenize(c.prompt_text) == c.prompt_tokens, "\(m.name): prompt \(c.prompt_text.debugDescription)")
            guard case let .messages(messages) = c.input else { continue }
            let rendered = try front.renderChat(messages.map { ChatMessage(role: $0.role, content: $0.content) })
            #expect(rendered == c.prompt_text, "\(m.name): chat template")
        }
    }

    @Test(.enabled(if: NodeBinary.available))
    func evalTokenizesWithAVocabularyOnlyFileAndRefusesToScore() throws {
        let m = ReferenceData.models[0]
        let (path, _) = try Self.vocabularyFile(m)
        defer { unlink(path) }
        let ref = try ReferenceData.load(ReferenceData.Reference.self, m.referenceFile)
        var lines: [String] = []
        for (i, t) in ref.tokenize.enumerated() {
            let json = try JSONSerialization.data(withJSONObject: ["id": i, "text": t.text])
            lines.append(String(decoding: json, as: UTF8.self))
        }
        lines.append(#"{"id": "score", "tokens": [1, 2], "continuation": [3]}"#)
        let input = NSTemporaryDirectory() + "pangalactic-eval-\(UInt64.random(in: 1 ... .max)).jsonl"
        FileManager.default.createFile(atPath: input, contents: Data(lines.joined(separator: "\n").utf8))
        defer { unlink(input) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: NodeBinary.path)
        p.arguments = ["eval", "-m", path, "--input", input]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let results = out.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
        #expect(results.count == ref.tokenize.count + 1)
        for (i, t) in ref.tokenize.enumerated() where i < results.count {
            #expect((results[i]["tokens"] as? [Int])?.map(Int32.init) == t.tokens, "line \(i)")
        }
        #expect((results.last?["error"] as? String)?.contains("no weights") == true)
    }
}
