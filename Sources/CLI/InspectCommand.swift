import ArgumentParser
import GGUF
import Models

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a GGUF file: architecture, hyperparameters, tokenizer and tensors with bytes per layer.")

    @Argument(help: "GGUF file.")
    var file: String

    @Flag(help: "List every tensor, not only a summary per layer.")
    var tensors = false

    func run() throws {
        let f = try GGUFFile(path: file)
        let m = f.metadata
        print("file: \(file)")
        print("GGUF v\(f.version), \(f.tensors.count) tensors, \(m.keys.count) metadata keys, alignment \(f.alignment), \(f.storage.count) bytes")
        do {
            let c = try ModelConfig(file: f)
            print("architecture: \(c.architectureName)")
            print("  layers \(c.layerCount), n_embd \(c.embeddingLength), n_ff \(c.feedForwardLength)")
            print("  heads \(c.headCount), kv heads \(c.kvHeadCount), head dim \(c.headDim), rope dims \(c.ropeDimensions), rope base \(c.ropeBase)")
            print("  rms eps \(c.rmsEpsilon), vocab \(c.vocabularySize), trained context \(c.trainedContextLength)")
            print("  tied output: \(f.tensor(named: "output.weight") == nil)")
        } catch {
            print("architecture: \(m.string("general.architecture") ?? "?") (not runnable: \(error))")
        }
        print("tokenizer:")
        print("  model \(m.string("tokenizer.ggml.model") ?? "-"), pre \(m.string("tokenizer.ggml.pre") ?? "-")")
        print("  tokens \(m["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0), merges \(m["tokenizer.ggml.merges"]?.arrayValue?.count ?? 0)")
        for key in ["bos_token_id", "eos_token_id", "eot_token_id", "unknown_token_id", "padding_token_id", "add_bos_token", "add_eos_token"] {
            if let v = m["tokenizer.ggml.\(key)"] { print("  \(key) \(v.summary)") }
        }
        if let t = m.string("tokenizer.chat_template") { print("  chat template: \(t.utf8.count) bytes") }
        print("metadata:")
        for k in m.keys where !k.hasPrefix("tokenizer.ggml.") && k != "tokenizer.chat_template" {
            print("  \(k) = \(m[k]?.summary ?? "")")
        }
        print("tensors:")
        var outside = 0
        for t in f.tensors where t.layerIndex == nil {
            print("  \(pad(t.name, 28)) \(pad(t.type.description, 6)) \(pad("\(t.shape)", 16)) \(bytes(t.byteCount))")
            outside += t.byteCount
        }
        let layers = f.layerTensors
        for l in layers.keys.sorted() {
            guard let list = layers[l], let fp = f.layerFootprint(l) else { continue }
            let types = Dictionary(grouping: list, by: \.type).keys.map(\.description).sorted().joined(separator: "+")
            print("  layer \(pad("\(l)", 4)) \(pad("\(list.count) tensors", 11)) \(pad(types, 14)) \(bytes(fp.bytes))  [\(fp.span.lowerBound)..<\(fp.span.upperBound)]")
            if tensors {
                for t in list { print("      \(pad(t.name, 28)) \(pad(t.type.description, 6)) \(pad("\(t.shape)", 16)) \(bytes(t.byteCount))") }
            }
        }
        let total = f.tensors.reduce(0) { $0 + $1.byteCount }
        print("total tensor bytes \(bytes(total)) (\(bytes(outside)) outside layers)")
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    func bytes(_ n: Int) -> String {
        if n >= 1 << 20 { return "\(fmt(Double(n) / 1_048_576, 2)) MiB" }
        if n >= 1 << 10 { return "\(fmt(Double(n) / 1024, 1)) KiB" }
        return "\(n) B"
    }
}
