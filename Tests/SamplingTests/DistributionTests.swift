#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import Sampling

@Suite struct DistributionTests {
    /// Draws `draws` tokens with several seeds; checks that only `allowed` tokens appear and that
    /// the frequencies pass a chi-square bound against `expected` (deterministic: fixed seeds).
    func checkSampling(_ parameters: SamplingParameters, _ logits: [Float],
                       expected: [Int32: Double], draws: Int = 4000) throws {
        var counts: [Int32: Int] = [:]
        for seed: UInt64 in 1...5 {
            var p = parameters
            p.seed = seed
            let s = try Sampler(parameters: p, vocabularySize: logits.count)
            for _ in 0..<draws / 5 { counts[sampleOnce(s, logits), default: 0] += 1 }
        }
        #expect(Set(counts.keys).isSubset(of: Set(expected.keys)), "unexpected tokens \(counts)")
        // df = survivors - 1 (at most ~5 here); 30 is far beyond the 99.99th percentile.
        let statistic = chiSquare(counts, expected, draws: draws)
        #expect(statistic < 30, "chi-square \(statistic), counts \(counts)")
    }

    func checkDistribution(_ parameters: SamplingParameters, _ logits: [Float], _ expected: [Int32: Double],
                           tolerance: Double = 1e-6) throws {
        let s = try Sampler(parameters: parameters, vocabularySize: logits.count)
        let d = distribution(s, logits)
        #expect(Set(d.map(\.token)) == Set(expected.keys))
        for entry in d {
            #expect(abs(Double(entry.probability) - (expected[entry.token] ?? -1)) < tolerance)
        }
        #expect(zip(d, d.dropFirst()).allSatisfy { $0.probability >= $1.probability })
    }

    static let probabilities: [Double] = [0.5, 0.3, 0.15, 0.05]

    @Test func topPKeepsSmallestPrefixReachingP() throws {
        let logits = logits(fromProbabilities: Self.probabilities)
        let p = SamplingParameters(temperature: 1, topK: 0, topP: 0.75, minP: 0)
        try checkDistribution(p, logits, [0: 0.5 / 0.8, 1: 0.3 / 0.8])
        try checkSampling(p, logits, expected: [0: 0.5 / 0.8, 1: 0.3 / 0.8])
        // p just above 0.8 needs the third token; a tiny p keeps only the first.
        try checkDistribution(SamplingParameters(temperature: 1, topK: 0, topP: 0.85, minP: 0), logits,
                              [0: 0.5 / 0.95, 1: 0.3 / 0.95, 2: 0.15 / 0.95])
        try checkDistribution(SamplingParameters(temperature: 1, topK: 0, topP: 0.01, minP: 0), logits, [0: 1])
        // Through the top-k path as well (k < vocabulary).
        try checkDistribution(SamplingParameters(temperature: 1, topK: 3, topP: 0.75, minP: 0), logits,
                              [0: 0.5 / 0.8, 1: 0.3 / 0.8])
    }

    @Test func minPKeepsTokensAboveFractionOfMax() throws {
        let logits = logits(fromProbabilities: [0.5, 0.2, 0.04, 0.26])
        let p = SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0.1)  // threshold 0.05
        let expected: [Int32: Double] = [0: 0.5 / 0.96, 1: 0.2 / 0.96, 3: 0.26 / 0.96]
        try checkDistribution(p, logits, expected)
        try checkSampling(p, logits, expected: expected)
        try checkDistribution(SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 1), logits, [0: 1])
        try checkDistribution(SamplingParameters(temperature: 1, topK: 2, topP: 1, minP: 0.1), logits,
                              [0: 0.5 / 0.76, 3: 0.26 / 0.76])
    }

    @Test func topKKeepsLargest() throws {
        let logits = logits(fromProbabilities: [0.1, 0.4, 0.2, 0.3])
        let p = SamplingParameters(temperature: 1, topK: 2, topP: 1, minP: 0)
        try checkDistribution(p, logits, [1: 0.4 / 0.7, 3: 0.3 / 0.7])
        try checkSampling(p, logits, expected: [1: 0.4 / 0.7, 3: 0.3 / 0.7])
        // k >= vocabulary: everything.
        try checkDistribution(SamplingParameters(temperature: 1, topK: 9, topP: 1, minP: 0), logits,
                              [0: 0.1, 1: 0.4, 2: 0.2, 3: 0.3])
    }

    @Test func temperatureAppliesAfterFilters() throws {
        let logits = logits(fromProbabilities: Self.probabilities)
        // Top-p decided on the raw distribution ({0, 1}), then temperature 2 flattens the two.
        let p = SamplingParameters(temperature: 2, topK: 0, topP: 0.75, minP: 0)
        let a = 0.5.squareRoot(), b = 0.3.squareRoot()
        try checkDistribution(p, logits, [0: a / (a + b), 1: b / (a + b)])
        try checkSampling(p, logits, expected: [0: a / (a + b), 1: b / (a + b)])
        // No filters: plain softmax(x / T) over everything.
        let q = Self.probabilities.map { $0 * $0 }
        let zq = q.reduce(0, +)
        try checkDistribution(SamplingParameters(temperature: 0.5, topK: 0, topP: 1, minP: 0), logits,
                              [0: q[0] / zq, 1: q[1] / zq, 2: q[2] / zq, 3: q[3] / zq])
    }

    @Test func chainMatchesReferenceOnLargeVocabularies() throws {
        // Exercises heap selection, the pruned no-top-k path and the cut-offs against a plain
        // full-sort reference.
        let configurations: [SamplingParameters] = [
            SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05),
            SamplingParameters(temperature: 1, topK: 0, topP: 0.9, minP: 0),
            SamplingParameters(temperature: 1.3, topK: 0, topP: 0.999, minP: 0),
            SamplingParameters(temperature: 0.7, topK: 0, topP: 1, minP: 0.02),
            SamplingParameters(temperature: 1, topK: 0, topP: 0.6, minP: 0.3),
            SamplingParameters(temperature: 1, topK: 500, topP: 0.99, minP: 0),
            SamplingParameters(temperature: 1, topK: 2999, topP: 1, minP: 0),
            SamplingParameters(temperature: 1, topK: 7, topP: 1, minP: 0),
            SamplingParameters(temperature: 1, topK: 0, topP: 0.99999994, minP: 0),  // largest Float < 1
            SamplingParameters(temperature: 0.5, topK: 0, topP: 0.3, minP: 0.5),
            SamplingParameters(temperature: 0.9, topK: 0, topP: 1, minP: 0),
            SamplingParameters(temperature: 3, topK: 0, topP: 1, minP: 0.001),
        ]
        for (index, parameters) in configurations.enumerated() {
            for seed: UInt64 in 0..<3 {
                for spread: Float in [0.5, 12, 60] {  // 60: beyond the 32-wide bucket range
                    let logits = randomLogits(count: 3000, seed: seed * 31 + UInt64(index), spread: spread)
                    let expected = referenceDistribution(logits, parameters)
                    try checkDistribution(parameters, logits, expected, tolerance: 1e-5)
                }
            }
        }
    }

    @Test func tiesAcrossTheTopPBoundaryGoToLowerIds() throws {
        // 10 equal logits: top-p 0.35 needs 4 of them (0.1 each, cumulative 0.4 >= 0.35);
        // the lowest ids win the tie, in both the whole-vocabulary and the top-k path.
        var logits = [Float](repeating: -.infinity, count: 50)
        for i in stride(from: 5, to: 50, by: 5) { logits[i] = 1 }
        logits[2] = 1
        let quarter: [Int32: Double] = [2: 0.25, 5: 0.25, 10: 0.25, 15: 0.25]
        try checkDistribution(SamplingParameters(temperature: 1, topK: 0, topP: 0.35, minP: 0), logits, quarter)
        try checkDistribution(SamplingParameters(temperature: 1, topK: 20, topP: 0.35, minP: 0), logits, quarter)
        try checkDistribution(SamplingParameters(temperature: 1, topK: 4, topP: 1, minP: 0), logits, quarter)
    }

    @Test func equalLogitsKeepLowestIds() throws {
        let logits = [Float](repeating: 0.25, count: 100_000)
        let s = try Sampler(parameters: SamplingParameters(temperature: 1, topK: 0, topP: 0.5, minP: 0),
                            vocabularySize: logits.count)
        let d = distribution(s, logits)
        #expect(d.count == 50_000)
        #expect(d.allSatisfy { $0.token < 50_000 && abs($0.probability - 1.0 / 50_000) < 1e-9 })
        for _ in 0..<20 { #expect(sampleOnce(s, logits) < 50_000) }
    }

    @Test func samplesFollowReferenceOnPeakedDistribution() throws {
        var logits = [Float](repeating: -10, count: 2000)
        logits[17] = 3; logits[400] = 2.5; logits[1999] = 2; logits[5] = 1
        let p = SamplingParameters(temperature: 1, topK: 0, topP: 0.9, minP: 0)
        let expected = referenceDistribution(logits, p)
        #expect(expected.count == 3)
        try checkSampling(p, logits, expected: expected)
    }
}
