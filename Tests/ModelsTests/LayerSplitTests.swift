import GGUF
import Kernels
import Models
import TestSupport
import Testing

@Suite struct LayerSplitTests {
    static let pool = ComputePool(threadCount: 2)

    static let specs: [TinyModelSpec] = {
        var list: [TinyModelSpec] = []
        for (arch, type) in [("llama", GGMLType.f32), ("llama", .q4_1), ("qwen2", .q5_0), ("qwen3", .q4_K),
                             ("llama", .q8_0), ("qwen2", .q6_K), ("llama", .f16), ("qwen3", .q5_K),
                             ("llama", .q4_0), ("qwen2", .q5_1), ("llama", .bf16)] {
            var s = TinyModelSpec()
            s.architecture = arch
            s.weightType = type
            s.embedding = type.blockSize == 256 ? 256 : 64
            s.feedForward = type.blockSize == 256 ? 256 : 96
            s.tiedOutput = arch != "qwen2"
            s.seed = UInt64(list.count + 1)
            list.append(s)
        }
        return list
    }()

    let tokens: [Int32] = [1, 5, 9, 33, 4, 17, 60, 2, 12, 40, 7, 3]

    /// Runs `model` over the whole token list and returns logits for every position.
    func logitsWhole(_ file: GGUFFile) throws -> [Float] {
        let model = try TransformerModel(file: file)
        let state = ForwardState(config: model.config, maxTokens: tokens.count, contextCapacity: 64,
                                 logitRows: tokens.count, pool: Self.pool)
        let cache = model.makeCache(capacity: 64)
        return try tokens.withUnsafeBufferPointer { ids in
            Array(try model.forward(.tokens(ids), start: 0, cache: cache, state: state, logits: .all))
        }
    }

    @Test(arguments: specs.indices)
    func splittingAtEveryLayerGivesTheSameLogits(_ index: Int) throws {
        let spec = Self.specs[index]
        let file = try TinyModel.file(spec)
        let whole = try logitsWhole(file)
        #expect(whole.allSatisfy { $0.isFinite })
        for k in 1 ..< spec.layers {
            let head = try TransformerModel(file: file, layers: 0 ..< k)
            let tail = try TransformerModel(file: file, layers: k ..< spec.layers)
            #expect(head.isFirst && !head.isLast && tail.isLast && !tail.isFirst)
            let hs = ForwardState(config: head.config, maxTokens: tokens.count, contextCapacity: 64, logitRows: 1, pool: Self.pool)
            let ts = ForwardState(config: tail.config, maxTokens: tokens.count, contextCapacity: 64, logitRows: tokens.count, pool: Self.pool)
            let hc = head.makeCache(capacity: 64), tc = tail.makeCache(capacity: 64)
            let hidden = try tokens.withUnsafeBufferPointer { ids in
                Array(try head.forward(.tokens(ids), start: 0, cache: hc, state: hs))
            }
            #expect(hidden.count == tokens.count * spec.embedding)
            let split = try hidden.withUnsafeBufferPointer { h in
                Array(try tail.forward(.hidden(h.baseAddress!, count: tokens.count), start: 0, cache: tc, state: ts, logits: .all))
            }
            #expect(split == whole, "split at \(k) of \(spec.architecture)/\(spec.weightType)")
        }
    }

    /// Prefill kernels are bit-identical to the decode kernels, so the logits must be equal,
    /// not just close.
    @Test(arguments: [0, 1, 2, 3, 4])
    func decodingOneTokenAtATimeMatchesPrefill(_ index: Int) throws {
        let file = try TinyModel.file(Self.specs[index])
        let whole = try logitsWhole(file)
        let model = try TransformerModel(file: file)
        let state = ForwardState(config: model.config, maxTokens: 4, contextCapacity: 64, logitRows: 1, pool: Self.pool)
        let cache = model.makeCache(capacity: 64)
        let v = model.config.vocabularySize
        for (i, t) in tokens.enumerated() {
            let step = try [t].withUnsafeBufferPointer { Array(try model.forward(.tokens($0), start: i, cache: cache, state: state)) }
            let expected = Array(whole[i * v ..< (i + 1) * v])
            let diff = zip(step, expected).map { abs($0 - $1) }.max() ?? 0
            #expect(diff == 0, "position \(i): max difference \(diff)")
        }
        #expect(cache.length == tokens.count)
    }

    @Test func forwardRejectsBadInput() throws {
        let file = try TinyModel.file(Self.specs[0])
        let model = try TransformerModel(file: file)
        let state = ForwardState(config: model.config, maxTokens: 4, contextCapacity: 8, logitRows: 1, pool: Self.pool)
        let cache = model.makeCache(capacity: 8)
        #expect(throws: ModelError.tokenOutOfRange(64, vocabularySize: 64)) {
            try [Int32(64)].withUnsafeBufferPointer { _ = try model.forward(.tokens($0), start: 0, cache: cache, state: state) }
        }
        #expect(throws: ModelError.tokenOutOfRange(-1, vocabularySize: 64)) {
            try [Int32(-1)].withUnsafeBufferPointer { _ = try model.forward(.tokens($0), start: 0, cache: cache, state: state) }
        }
        #expect(throws: ModelError.badPosition(start: 3, cached: 0)) {
            try [Int32(1)].withUnsafeBufferPointer { _ = try model.forward(.tokens($0), start: 3, cache: cache, state: state) }
        }
        #expect(throws: ModelError.self) {
            try [Int32](repeating: 1, count: 5).withUnsafeBufferPointer { _ = try model.forward(.tokens($0), start: 0, cache: cache, state: state) }
        }
        for i in 0 ..< 2 {
            try [Int32](repeating: 1, count: 4).withUnsafeBufferPointer { _ = try model.forward(.tokens($0), start: 4 * i, cache: cache, state: state) }
        }
        #expect(throws: ModelError.contextFull(needed: 9, capacity: 8)) {
            try [Int32(1)].withUnsafeBufferPointer { _ = try model.forward(.tokens($0), start: 8, cache: cache, state: state) }
        }
        #expect(throws: ModelError.badLayerRange(2 ..< 9, layerCount: 4)) { try TransformerModel(file: file, layers: 2 ..< 9) }
        // A rejected rewind must not lose the cached positions.
        #expect(cache.length == 8)
        #expect(throws: ModelError.tokenOutOfRange(99, vocabularySize: 64)) {
            try [Int32(99)].withUnsafeBufferPointer { _ = try model.forward(.tokens($0), start: 2, cache: cache, state: state) }
        }
        #expect(cache.length == 8)
    }
}
