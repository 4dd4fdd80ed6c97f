import ArgumentParser
import Engine
import Foundation
import GGUF
import Sampling
import Tokenizer

/// Machine-readable checks: tokenization and teacher-forced top-k, one JSON line per input line.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize texts or score continuations from a JSONL file, writing one JSON line per input line.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .shortAndLong, help: "JSONL input: {id, text} or {id, tokens, continuation, top_k}.")
    var input: String

    func run() throws {
        // A GGUF with a vocabulary and no tensors (llama.cpp's vocab-only files, the hub's model
        // metadata) can still tokenize: only scoring needs the weights.
        let file = try GGUFFile(path: modelOptions.modelPath)
        let scorer: Scorer
        if file.tensors.isEmpty {
            scorer = Scorer(front: try TextFrontEnd(file: file), engine: nil)
        } else {
            let engine = try InferenceEngine(modelOptions)
            scorer = Scorer(front: engine.text, engine: (engine, engine.makeSession(logitRows: engine.batchSize)))
        }
        let data = Data(try readFile(input))
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (number, line) in lines.enumerated() {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let output: [String: Any]
            do {
                output = try evaluate(Data(line), scorer)
            } catch {
                output = ["line": number + 1, "error": "\(error)"]
            }
            let json = try JSONSerialization.data(withJSONObject: output, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: json, as: UTF8.self))
        }
    }

    /// What evaluates the lines: the text side always, the weights when the file has them.
    struct Scorer {
        let front: TextFrontEnd
        let engine: (InferenceEngine, InferenceEngine.Session)?
    }

    struct BadLine: Error, CustomStringConvertible {
        var description: String
    }

    func evaluate(_ line: Data, _ scorer: Scorer) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: line) as? [String: Any] else {
            throw BadLine(description: "each line must be a JSON object")
        }
        let id = object["id"] ?? NSNull()
        if let text = object["text"] as? String {
            return ["id": id, "tokens": scorer.front.tokenize(text, addSpecial: false).map(Int.init)]
        }
        guard let tokens = try intArray(object["tokens"], "tokens"),
              let continuation = try intArray(object["continuation"], "continuation") else {
            throw BadLine(description: "a line needs either text, or tokens and continuation")
        }
        guard let (engine, session) = scorer.engine else {
            throw BadLine(description: "this file holds a vocabulary but no weights: it can tokenize, not score")
        }
        let k = (object["top_k"] as? NSNumber)?.intValue ?? 5
        let top = try engine.topK(tokens: tokens, continuation: continuation, k: k, session: session)
        return ["id": id, "top": top.map { row in row.map { [Int($0.token), Double($0.probability)] as [Any] } }]
    }

    func intArray(_ value: Any?, _ name: String) throws -> [Int32]? {
        guard let value else { return nil }
        guard let list = value as? [NSNumber] else { throw BadLine(description: "\(name) must be an array of integers") }
        return try list.map { n in
            guard let v = Int32(exactly: n.doubleValue) else { throw BadLine(description: "\(name) holds \(n), not a token id") }
            return v
        }
    }
}
