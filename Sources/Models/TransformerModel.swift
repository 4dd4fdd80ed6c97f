import GGUF
import Kernels

/// A decoder-only transformer (llama, qwen2, qwen3) restricted to a contiguous range of global
/// layers, so that one process can hold any slice of a model. The first slice owns the token
/// embedding; the last owns the final norm and the output projection.
public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    public let file: GGUFFile
    /// Global indices of the layers this model instance runs.
    public let layers: Range<Int>
    let blocks: [BlockWeights]
    let embedding: WeightMatrix?       // [n_embd, vocab], first slice (and tied output)
    let outputNorm: FloatVector?       // [n_embd], last slice
    let output: WeightMatrix?          // [n_embd, vocab], last slice
    let outputGroup: MatrixGroup?
    let rope: RotaryEmbedding

    public var isFirst: Bool { layers.lowerBound == 0 }
    public var isLast: Bool { layers.upperBound == config.layerCount }

    /// Loads the weights of `layers` (all layers when nil) from a parsed GGUF file.
    public init(file: GGUFFile, layers requested: Range<Int>? = nil) throws(ModelError) {
        let config = try ModelConfig(file: file)
        let range = requested ?? 0 ..< config.layerCount
        guard range.lowerBound >= 0, range.upperBound <= config.layerCount, !range.isEmpty else {
            throw .badLayerRange(range, layerCount: config.layerCount)
        }
        self.config = config
        self.file = file
        layers = range
        let loader = TensorLoader(file: file)
        var blocks: [BlockWeights] = []
        for i in range { blocks.append(try loader.block(i, config)) }
        // Every block of the file must be present, not just ours: a file missing layers is broken.
        for i in 0 ..< config.layerCount where file.tensor(named: "blk.\(i).attn_norm.weight") == nil {
            throw .missingTensor("blk.\(i).attn_norm.weight")
        }
        self.blocks = blocks
        let e = config.embeddingLength, v = config.vocabularySize
        let last = range.upperBound == config.layerCount
        let hasOutput = file.tensor(named: "output.weight") != nil
        if range.lowerBound == 0 || (last && !hasOutput) {
            embedding = try loader.matrix("token_embd.weight", columns: e, rows: v)
        } else {
            embedding = nil
        }
        if last {
            outputNorm = try loader.vector("output_norm.weight", e)
            output = hasOutput ? try loader.matrix("output.weight", columns: e, rows: v) : embedding
        } else {
            outputNorm = nil
            output = nil
        }
        outputGroup = output.map { MatrixGroup(single: $0) }
        var factors: [Float]?
        if let t = file.tensor(named: "rope_freqs.weight") {
            let f = try loader.vector(t.name, config.ropeDimensions / 2)
            factors = Array(UnsafeBufferPointer(start: f.pointer, count: f.count))
        }
        rope = RotaryEmbedding(layout: config.architecture.ropeLayout, dimensions: config.ropeDimensions,
                               base: config.ropeBase, frequencyFactors: factors)
    }

    /// A KV cache for this model's layers.
    public func makeCache(capacity: Int) -> KVCache {
        KVCache(layerCount: layers.count, capacity: capacity, width: config.kvWidth)
    }

    /// Bytes of the tensors this slice reads: its blocks, plus embedding/output as owned.
    public var shardBytes: Int {
        Self.tensorNames(file: file, layers: layers).compactMap { file.tensor(named: $0)?.byteCount }.reduce(0, +)
    }

    /// The tensors a slice of `layers` loads, from the index alone: its blocks, the embedding
    /// on the first stage (and on the last when the output is tied to it), the output norm and
    /// head on the last, and the small tensors every stage shares. A node fed by a model store
    /// fetches exactly these.
    public static func tensorNames(file: GGUFFile, layers: Range<Int>) -> [String] {
        let layerCount = (try? ModelConfig(file: file).layerCount) ?? 0
        let last = layers.upperBound == layerCount
        let hasOutput = file.tensor(named: "output.weight") != nil
        var names: [String] = []
        for t in file.tensors {
            if let l = t.layerIndex {
                if layers.contains(l) { names.append(t.name) }
                continue
            }
            switch t.name {
            case "token_embd.weight": if layers.lowerBound == 0 || (last && !hasOutput) { names.append(t.name) }
            case "output_norm.weight", "output.weight": if last { names.append(t.name) }
            default: names.append(t.name)
            }
        }
        return names
    }
}
