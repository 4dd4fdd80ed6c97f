import Testing
import Sampling

@Suite struct ParametersTests {
    @Test func defaultsAndGreedyAreValid() throws {
        try SamplingParameters().validate()
        try SamplingParameters.greedy.validate()
        #expect(SamplingParameters.greedy.temperature == 0)
        // Boundary values that must be accepted.
        try SamplingParameters(temperature: 0, topK: 0, topP: 1, minP: 1).validate()
        try SamplingParameters(topP: Float.leastNonzeroMagnitude, minP: 0).validate()
        try SamplingParameters(frequencyPenalty: -2, presencePenalty: -2, penaltyLastN: 0).validate()
        try SamplingParameters(penaltyLastN: SamplingParameters.maxPenaltyLastN).validate()
    }

    static let badCases: [(SamplingParameters, SamplingError)] = [
        (SamplingParameters(temperature: -0.1), .invalidTemperature),
        (SamplingParameters(temperature: .nan), .invalidTemperature),
        (SamplingParameters(temperature: .infinity), .invalidTemperature),
        (SamplingParameters(topK: -1), .invalidTopK),
        (SamplingParameters(topP: 0), .invalidTopP),
        (SamplingParameters(topP: -0.5), .invalidTopP),
        (SamplingParameters(topP: 1.0001), .invalidTopP),
        (SamplingParameters(topP: .nan), .invalidTopP),
        (SamplingParameters(minP: -0.01), .invalidMinP),
        (SamplingParameters(minP: 1.5), .invalidMinP),
        (SamplingParameters(minP: .nan), .invalidMinP),
        (SamplingParameters(repetitionPenalty: 0), .invalidRepetitionPenalty),
        (SamplingParameters(repetitionPenalty: -1.1), .invalidRepetitionPenalty),
        (SamplingParameters(repetitionPenalty: .nan), .invalidRepetitionPenalty),
        (SamplingParameters(repetitionPenalty: .infinity), .invalidRepetitionPenalty),
        (SamplingParameters(frequencyPenalty: .nan), .invalidFrequencyPenalty),
        (SamplingParameters(frequencyPenalty: -.infinity), .invalidFrequencyPenalty),
        (SamplingParameters(presencePenalty: .nan), .invalidPresencePenalty),
        (SamplingParameters(presencePenalty: .infinity), .invalidPresencePenalty),
        (SamplingParameters(penaltyLastN: -1), .invalidPenaltyLastN),
        (SamplingParameters(penaltyLastN: SamplingParameters.maxPenaltyLastN + 1), .invalidPenaltyLastN),
        (SamplingParameters(penaltyLastN: Int.max), .invalidPenaltyLastN),
    ]

    @Test(arguments: badCases)
    func validateRejects(_ parameters: SamplingParameters, _ expected: SamplingError) {
        #expect(throws: expected) { try parameters.validate() }
        #expect(throws: expected) { _ = try Sampler(parameters: parameters, vocabularySize: 10) }
        #expect(!expected.description.isEmpty)
    }

    @Test func samplerRejectsBadVocabularySize() {
        for size in [0, -5, Sampler.maxVocabularySize + 1, Int.max] {
            #expect(throws: SamplingError.invalidVocabularySize) {
                _ = try Sampler(parameters: SamplingParameters(), vocabularySize: size)
            }
        }
    }

    @Test func firstInvalidFieldWins() {
        let p = SamplingParameters(temperature: -1, topK: -1, topP: 2)
        #expect(throws: SamplingError.invalidTemperature) { try p.validate() }
    }

    /// Golden values from an independent (Python) xoshiro256** + splitmix64 implementation.
    @Test func generatorMatchesReference() {
        var g0 = SeededGenerator(seed: 0)
        #expect([g0.next(), g0.next(), g0.next(), g0.next()]
            == [0x99EC_5F36_CB75_F2B4, 0xBF6E_1F78_4956_452A, 0x1A5F_849D_4933_E6E0, 0x6AA5_94F1_262D_2D2C])
        var g = SeededGenerator(seed: 0xC0FFEE)
        #expect([g.next(), g.next(), g.next(), g.next()]
            == [0x120E_99A6_DDE4_A550, 0x8F98_9EF9_7733_D4B4, 0xF0A2_8EB2_E4FD_367B, 0x50C2_9BFE_8734_F5D2])
        var u = SeededGenerator(seed: 7)
        for _ in 0..<1000 {
            let x = u.nextUnitDouble()
            #expect(x >= 0 && x < 1)
        }
    }
}
