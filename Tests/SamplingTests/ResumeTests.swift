import Sampling
import Testing

/// A request replayed after a failover rebuilds its sampler from the seed, the penalty window and
/// the number of draws already made; it must then choose exactly what the uninterrupted sampler
/// would have.
struct ResumeTests {
    static func logits(_ step: Int, _ vocabulary: Int) -> [Float] {
        (0 ..< vocabulary).map { Float(((step * 7919 + $0 * 104_729) % 1000)) / 250 }
    }

    static func run(_ sampler: Sampler, steps: Range<Int>, vocabulary: Int) -> [Int32] {
        steps.map { step in
            var l = logits(step, vocabulary)
            let token = l.withUnsafeMutableBufferPointer { sampler.sample(logits: $0) }
            sampler.accept(token)
            return token
        }
    }

    @Test(arguments: [0, 1, 5, 17])
    func aResumedSamplerContinuesTheSameRandomStream(_ cut: Int) throws {
        let vocabulary = 50
        let parameters = SamplingParameters(temperature: 0.9, topK: 20, topP: 0.9, minP: 0.02, repetitionPenalty: 1.2,
                                            frequencyPenalty: 0.1, presencePenalty: 0.1, penaltyLastN: 8, seed: 1234)
        let history: [Int32] = [3, 4, 5, 6]
        let whole = try Sampler(parameters: parameters, vocabularySize: vocabulary)
        whole.accept(contentsOf: history)
        let expected = Self.run(whole, steps: 0 ..< 30, vocabulary: vocabulary)
        #expect(whole.randomDraws == 30)

        let first = try Sampler(parameters: parameters, vocabularySize: vocabulary)
        first.accept(contentsOf: history)
        let before = Self.run(first, steps: 0 ..< cut, vocabulary: vocabulary)
        // The replay: the history now ends with the generated tokens, and the draws are skipped.
        let resumed = try Sampler(parameters: parameters, vocabularySize: vocabulary)
        resumed.accept(contentsOf: Array((history + before).suffix(parameters.penaltyLastN)))
        resumed.skipRandomDraws(first.randomDraws)
        let after = Self.run(resumed, steps: cut ..< 30, vocabulary: vocabulary)
        #expect(before + after == expected)
    }

    @Test func greedyDrawsNothingAndAllNaNLogitsStillTakeOneDraw() throws {
        let greedy = try Sampler(parameters: .greedy, vocabularySize: 4)
        var l: [Float] = [1, 2, 3, 4]
        _ = l.withUnsafeMutableBufferPointer { greedy.sample(logits: $0) }
        #expect(greedy.randomDraws == 0)
        let hot = try Sampler(parameters: SamplingParameters(temperature: 1, seed: 1), vocabularySize: 4)
        var nan: [Float] = [.nan, .nan, .nan, .nan]
        _ = nan.withUnsafeMutableBufferPointer { hot.sample(logits: $0) }
        #expect(hot.randomDraws == 1)
    }
}
