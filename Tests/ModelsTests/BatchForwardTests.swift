import GGUF
import Kernels
import Models
import TestSupport
import Testing

/// Rows of several sequences in one batch must give each sequence exactly what it gets alone:
/// a pipeline node batches the decode steps of many requests, and no request may see another's.
@Suite struct BatchForwardTests {
    static let pool = ComputePool(threadCount: 2)
    static let prompts: [[Int32]] = [[1, 5, 9, 33, 4], [17, 60, 2], [12, 40, 7, 3, 8, 21, 30]]
    static let steps: [[Int32]] = [[11, 13, 50], [2, 2, 9], [44, 1, 63]]

    static func spec(_ type: GGMLType, _ arch: String) -> TinyModelSpec {
        var s = TinyModelSpec()
        s.architecture = arch
        s.weightType = type
        s.embedding = type.blockSize == 256 ? 256 : 64
        s.feedForward = type.blockSize == 256 ? 256 : 96
        s.tiedOutput = arch != "qwen2"
        s.seed = 7
        return s
    }

    /// Logits of each sequence, prompt then steps, each sequence run on its own.
    func alone(_ model: TransformerModel) throws -> [[[Float]]] {
        let state = ForwardState(config: model.config, maxTokens: 16, contextCapacity: 32, logitRows: 4, pool: Self.pool)
        var result: [[[Float]]] = []
        for (p, prompt) in Self.prompts.enumerated() {
            let cache = model.makeCache(capacity: 32)
            var rows: [[Float]] = []
            rows.append(try prompt.withUnsafeBufferPointer { Array(try model.forward(.tokens($0), start: 0, cache: cache, state: state)) })
            for (i, t) in Self.steps[p].enumerated() {
                rows.append(try [t].withUnsafeBufferPointer {
                    Array(try model.forward(.tokens($0), start: prompt.count + i, cache: cache, state: state))
                })
            }
            result.append(rows)
        }
        return result
    }

    @Test(arguments: [(GGMLType.q4_1, "llama"), (.q5_0, "qwen2"), (.q4_K, "qwen3"), (.f32, "llama")])
    func batchedSequencesMatchSeparateRuns(_ type: GGMLType, _ arch: String) throws {
        let file = try TinyModel.file(Self.spec(type, arch))
        let model = try TransformerModel(file: file)
        let expected = try alone(model)
        let state = ForwardState(config: model.config, maxTokens: 16, contextCapacity: 32, logitRows: 4, pool: Self.pool)
        let caches = Self.prompts.map { _ in model.makeCache(capacity: 32) }
        let vocab = model.config.vocabularySize
        // Step 0: sequence 0's whole prompt, sequence 1's prompt; sequence 2 starts later.
        var input = Self.prompts[0] + Self.prompts[1]
        var slices = [SequenceSlice(cache: caches[0], start: 0, count: 5), SequenceSlice(cache: caches[1], start: 0, count: 3)]
        var logits = try input.withUnsafeBufferPointer { Array(try model.forward(batch: .tokens($0), slices: slices, state: state)) }
        #expect(Array(logits[0 ..< vocab]) == expected[0][0])
        #expect(Array(logits[vocab ..< 2 * vocab]) == expected[1][0])
        // Step 1: decode rows of 0 and 1 plus the prompt of 2, whose logits are not wanted.
        input = [Self.steps[0][0], Self.steps[1][0]] + Self.prompts[2]
        slices = [SequenceSlice(cache: caches[0], start: 5, count: 1), SequenceSlice(cache: caches[1], start: 3, count: 1),
                  SequenceSlice(cache: caches[2], start: 0, count: 7, wantsLogits: false)]
        logits = try input.withUnsafeBufferPointer { Array(try model.forward(batch: .tokens($0), slices: slices, state: state)) }
        #expect(logits.count == 2 * vocab)
        #expect(Array(logits[0 ..< vocab]) == expected[0][1])
        #expect(Array(logits[vocab ..< 2 * vocab]) == expected[1][1])
        // Step 2: all three decode together, in a different order.
        input = [Self.steps[2][0], Self.steps[0][1], Self.steps[1][1]]
        slices = [SequenceSlice(cache: caches[2], start: 7, count: 1), SequenceSlice(cache: caches[0], start: 6, count: 1),
                  SequenceSlice(cache: caches[1], start: 4, count: 1)]
        logits = try input.withUnsafeBufferPointer { Array(try model.forward(batch: .tokens($0), slices: slices, state: state)) }
        #expect(Array(logits[0 ..< vocab]) == expected[2][1])
        #expect(Array(logits[vocab ..< 2 * vocab]) == expected[0][2])
        #expect(Array(logits[2 * vocab ..< 3 * vocab]) == expected[1][2])
    }

    @Test func batchesAreCheckedBeforeAnyCacheChanges() throws {
        let model = try TransformerModel(file: TinyModel.file(Self.spec(.f32, "llama")))
        let state = ForwardState(config: model.config, maxTokens: 8, contextCapacity: 16, logitRows: 2, pool: Self.pool)
        let a = model.makeCache(capacity: 16), b = model.makeCache(capacity: 16)
        _ = try [Int32(1), 2].withUnsafeBufferPointer { try model.forward(.tokens($0), start: 0, cache: a, state: state) }
        func run(_ ids: [Int32], _ slices: [SequenceSlice]) throws {
            _ = try ids.withUnsafeBufferPointer { try model.forward(batch: .tokens($0), slices: slices, state: state) }
        }
        // The same cache twice, rows not covered, a gap in positions, a bad token in another slice.
        #expect(throws: ModelError.self) { try run([3, 4], [SequenceSlice(cache: a, start: 2, count: 1), SequenceSlice(cache: a, start: 3, count: 1)]) }
        #expect(throws: ModelError.self) { try run([3, 4], [SequenceSlice(cache: a, start: 2, count: 1)]) }
        #expect(throws: ModelError.self) { try run([3, 4], [SequenceSlice(cache: a, start: 2, count: 1), SequenceSlice(cache: b, start: 1, count: 1)]) }
        #expect(throws: ModelError.self) { try run([3, 99], [SequenceSlice(cache: a, start: 1, count: 1), SequenceSlice(cache: b, start: 0, count: 1)]) }
        #expect(a.length == 2 && b.length == 0)
    }
}
