import GGUF
import Kernels

/// A small float vector owned by the model (norm weights, biases), converted to F32 once at
/// load so the forward pass never branches on their stored type.
public final class FloatVector: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    init(file: GGUFFile, tensor: GGUFTensorInfo) {
        count = tensor.elementCount
        pointer = .allocate(capacity: count)
        Dequantize.row(tensor.type, file.data(of: tensor), pointer, count: count)
    }

    deinit { pointer.deallocate() }
}

/// The weights of one transformer block, in ggml's names and shapes ([columns, rows]).
struct BlockWeights {
    let attentionNorm: FloatVector   // [n_embd]
    let wq: WeightMatrix             // [n_embd, heads·head_dim]
    let wk: WeightMatrix             // [n_embd, kv_heads·head_dim]
    let wv: WeightMatrix             // [n_embd, kv_heads·head_dim]
    let wo: WeightMatrix             // [heads·head_dim, n_embd]
    let qBias, kBias, vBias: FloatVector?   // qwen2
    let qNorm, kNorm: FloatVector?          // qwen3, [head_dim]
    let ffnNorm: FloatVector         // [n_embd]
    let gate: WeightMatrix           // [n_embd, n_ff]
    let up: WeightMatrix             // [n_embd, n_ff]
    let down: WeightMatrix           // [n_ff, n_embd]

    // The same matrices grouped for the mat-mul, built once at load.
    let qkvGroup: MatrixGroup
    let outputGroup: MatrixGroup
    let gateUpGroup: MatrixGroup
    let downGroup: MatrixGroup

    init(attentionNorm: FloatVector, wq: WeightMatrix, wk: WeightMatrix, wv: WeightMatrix, wo: WeightMatrix,
         qBias: FloatVector?, kBias: FloatVector?, vBias: FloatVector?, qNorm: FloatVector?, kNorm: FloatVector?,
         ffnNorm: FloatVector, gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix) throws(ModelError) {
        self.attentionNorm = attentionNorm
        self.wq = wq
        self.wk = wk
        self.wv = wv
        self.wo = wo
        self.qBias = qBias
        self.kBias = kBias
        self.vBias = vBias
        self.qNorm = qNorm
        self.kNorm = kNorm
        self.ffnNorm = ffnNorm
        self.gate = gate
        self.up = up
        self.down = down
        do {
            qkvGroup = try MatrixGroup([wq, wk, wv])
            outputGroup = try MatrixGroup([wo])
            gateUpGroup = try MatrixGroup([gate, up])
            downGroup = try MatrixGroup([down])
        } catch {
            throw .invalidConfig("block matrices disagree in width: \(error)")
        }
    }
}

/// Looks tensors up by name and checks them against the shapes the config implies.
struct TensorLoader {
    let file: GGUFFile

    func info(_ name: String, _ shape: [Int]) throws(ModelError) -> GGUFTensorInfo {
        guard let t = file.tensor(named: name) else { throw .missingTensor(name) }
        guard file.hasData(t) else { throw .tensorNotLoaded(name) }
        // Trailing dimensions of 1 are equivalent to their absence.
        var found = t.shape
        while found.count > shape.count, found.last == 1 { found.removeLast() }
        guard found == shape else { throw .badTensorShape(name: name, expected: shape, found: t.shape) }
        return t
    }

    func matrix(_ name: String, columns: Int, rows: Int) throws(ModelError) -> WeightMatrix {
        let t = try info(name, [columns, rows])
        do {
            return try WeightMatrix(type: t.type, rows: rows, columns: columns, data: file.data(of: t))
        } catch {
            throw .unsupportedTensorType(name: name, type: t.type)
        }
    }

    func vector(_ name: String, _ count: Int) throws(ModelError) -> FloatVector {
        let t = try info(name, [count])
        guard [.f32, .f16, .bf16].contains(t.type) else { throw .unsupportedTensorType(name: name, type: t.type) }
        return FloatVector(file: file, tensor: t)
    }

    func optionalVector(_ name: String, _ count: Int) throws(ModelError) -> FloatVector? {
        file.tensor(named: name) == nil ? nil : try vector(name, count)
    }

    func block(_ i: Int, _ c: ModelConfig) throws(ModelError) -> BlockWeights {
        let p = "blk.\(i)."
        let e = c.embeddingLength
        let arch = c.architecture
        return try BlockWeights(
            attentionNorm: try vector(p + "attn_norm.weight", e),
            wq: try matrix(p + "attn_q.weight", columns: e, rows: c.qWidth),
            wk: try matrix(p + "attn_k.weight", columns: e, rows: c.kvWidth),
            wv: try matrix(p + "attn_v.weight", columns: e, rows: c.kvWidth),
            wo: try matrix(p + "attn_output.weight", columns: c.qWidth, rows: e),
            qBias: arch.hasQKVBias ? try vector(p + "attn_q.bias", c.qWidth) : try optionalVector(p + "attn_q.bias", c.qWidth),
            kBias: arch.hasQKVBias ? try vector(p + "attn_k.bias", c.kvWidth) : try optionalVector(p + "attn_k.bias", c.kvWidth),
            vBias: arch.hasQKVBias ? try vector(p + "attn_v.bias", c.kvWidth) : try optionalVector(p + "attn_v.bias", c.kvWidth),
            qNorm: arch.hasQKNorm ? try vector(p + "attn_q_norm.weight", c.headDim) : nil,
            kNorm: arch.hasQKNorm ? try vector(p + "attn_k_norm.weight", c.headDim) : nil,
            ffnNorm: try vector(p + "ffn_norm.weight", e),
            gate: try matrix(p + "ffn_gate.weight", columns: e, rows: c.feedForwardLength),
            up: try matrix(p + "ffn_up.weight", columns: e, rows: c.feedForwardLength),
            down: try matrix(p + "ffn_down.weight", columns: c.feedForwardLength, rows: e)
        )
    }
}
