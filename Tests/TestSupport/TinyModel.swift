import GGUF

/// Builds tiny random models of each architecture with our own GGUF writer, so model tests never
/// need a download. Weights are random but well scaled, which is all that layer-split and
/// kernel-consistency tests need.
public struct TinyModelSpec: Sendable {
    public var architecture: String = "llama"
    public var layers = 4
    public var embedding = 64
    public var feedForward = 96
    public var heads = 4
    public var kvHeads = 2
    public var vocabulary = 64
    public var weightType: GGMLType = .f32
    public var tiedOutput = true
    public var seed: UInt64 = 1
    /// The trained context; nodes cap a sequence's positions at it.
    public var contextLength = 256
    public init() {}
}

public enum TinyModel {
    /// A byte-level-ish toy vocabulary: "<s>", "</s>", then single characters.
    public static func tokens(_ n: Int) -> [String] {
        var list = ["<unk>", "<s>", "</s>"]
        var c: UInt32 = 0x41
        while list.count < n {
            if let s = Unicode.Scalar(c) { list.append(String(Character(s))) }
            c += 1
        }
        return list
    }

    public static func writer(_ spec: TinyModelSpec) throws -> GGUFWriter {
        var rng = SplitMix64(seed: spec.seed)
        var w = GGUFWriter()
        let a = spec.architecture
        let headDim = spec.embedding / spec.heads
        w.set("general.architecture", .string(a))
        w.set("general.name", .string("tiny-\(a)"))
        w.set("\(a).block_count", .uint32(UInt32(spec.layers)))
        w.set("\(a).context_length", .uint32(UInt32(spec.contextLength)))
        w.set("\(a).embedding_length", .uint32(UInt32(spec.embedding)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(spec.feedForward)))
        w.set("\(a).attention.head_count", .uint32(UInt32(spec.heads)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(spec.kvHeads)))
        w.set("\(a).rope.freq_base", .float32(10000))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("default"))
        let toks = tokens(spec.vocabulary)
        w.set("tokenizer.ggml.tokens", .array(.string, toks.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(.int32, toks.indices.map { .int32($0 < 3 ? 3 : 1) }))
        w.set("tokenizer.ggml.merges", .array(.string, []))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))

        func matrix(_ name: String, _ cols: Int, _ rows: Int, type: GGMLType? = nil) throws {
            let t = type ?? spec.weightType
            var data: [UInt8] = []
            for _ in 0 ..< rows { data += RandomBlocks.row(t, count: cols, scale: 1 / Float(cols).squareRoot() * 4, rng: &rng) }
            try w.addTensor(name: name, type: t, shape: [cols, rows], data: data)
        }
        func vector(_ name: String, _ n: Int, around center: Float, spread: Float) throws {
            try w.addTensor(name: name, shape: [n], floats: rng.floats(n, in: center - spread ... center + spread))
        }
        let e = spec.embedding, q = spec.heads * headDim, kv = spec.kvHeads * headDim
        try matrix("token_embd.weight", e, spec.vocabulary, type: spec.weightType == .f32 ? .f32 : .q8_0)
        for i in 0 ..< spec.layers {
            let p = "blk.\(i)."
            try vector(p + "attn_norm.weight", e, around: 1, spread: 0.2)
            try matrix(p + "attn_q.weight", e, q)
            try matrix(p + "attn_k.weight", e, kv)
            try matrix(p + "attn_v.weight", e, kv)
            try matrix(p + "attn_output.weight", q, e)
            if a == "qwen2" {
                try vector(p + "attn_q.bias", q, around: 0, spread: 0.1)
                try vector(p + "attn_k.bias", kv, around: 0, spread: 0.1)
                try vector(p + "attn_v.bias", kv, around: 0, spread: 0.1)
            }
            if a == "qwen3" {
                try vector(p + "attn_q_norm.weight", headDim, around: 1, spread: 0.2)
                try vector(p + "attn_k_norm.weight", headDim, around: 1, spread: 0.2)
            }
            try vector(p + "ffn_norm.weight", e, around: 1, spread: 0.2)
            try matrix(p + "ffn_gate.weight", e, spec.feedForward)
            try matrix(p + "ffn_up.weight", e, spec.feedForward)
            try matrix(p + "ffn_down.weight", spec.feedForward, e)
        }
        try vector("output_norm.weight", e, around: 1, spread: 0.2)
        if !spec.tiedOutput { try matrix("output.weight", e, spec.vocabulary) }
        return w
    }

    /// A parsed tiny model, held in memory.
    public static func file(_ spec: TinyModelSpec) throws -> GGUFFile {
        try GGUFFile(bytes: writer(spec).serialize())
    }
}
