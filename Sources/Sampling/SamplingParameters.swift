/// Why a set of sampling parameters (or a sampler's vocabulary size) was rejected.
///
/// The cases carry no payload on purpose: several of the offending values may be NaN,
/// and a NaN payload would make two identical errors compare unequal.
public enum SamplingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `temperature` is negative, NaN or infinite.
    case invalidTemperature
    /// `topK` is negative.
    case invalidTopK
    /// `topP` is outside `(0, 1]` or NaN.
    case invalidTopP
    /// `minP` is outside `[0, 1]` or NaN.
    case invalidMinP
    /// `repetitionPenalty` is not a finite number greater than zero.
    case invalidRepetitionPenalty
    /// `frequencyPenalty` is NaN or infinite.
    case invalidFrequencyPenalty
    /// `presencePenalty` is NaN or infinite.
    case invalidPresencePenalty
    /// `penaltyLastN` is negative or larger than `SamplingParameters.maxPenaltyLastN`.
    case invalidPenaltyLastN
    /// The vocabulary size given to a `Sampler` is not in `1...Sampler.maxVocabularySize`.
    case invalidVocabularySize

    public var description: String {
        switch self {
        case .invalidTemperature: "temperature must be a finite number >= 0"
        case .invalidTopK: "top_k must be >= 0 (0 disables it)"
        case .invalidTopP: "top_p must be in (0, 1] (1 disables it)"
        case .invalidMinP: "min_p must be in [0, 1] (0 disables it)"
        case .invalidRepetitionPenalty: "repetition_penalty must be a finite number > 0 (1 disables it)"
        case .invalidFrequencyPenalty: "frequency_penalty must be a finite number"
        case .invalidPresencePenalty: "presence_penalty must be a finite number"
        case .invalidPenaltyLastN:
            "penalty_last_n must be in 0...\(SamplingParameters.maxPenaltyLastN) (0 disables the penalties)"
        case .invalidVocabularySize: "vocabulary size must be in 1...\(Sampler.maxVocabularySize)"
        }
    }
}

/// Settings of the sampling chain
/// `penalties → top-k → top-p → min-p → temperature → seeded draw`.
///
/// The neutral value of each stage disables it. Values are not checked on assignment; call
/// `validate()` (the `Sampler` initializer does) before using user-supplied parameters.
public struct SamplingParameters: Sendable, Equatable, Codable {
    /// Softmax temperature, applied after the filters. `0` selects greedy decoding (argmax of
    /// the penalized logits).
    public var temperature: Float
    /// Keep the `topK` largest logits. `0` (or a value >= the vocabulary size) disables it.
    public var topK: Int
    /// Keep the smallest prefix of the candidates, sorted by descending probability, whose
    /// cumulative probability reaches `topP` (at least one). `1` disables it.
    public var topP: Float
    /// Keep the candidates whose probability is at least `minP` times the largest
    /// probability (at least one). `0` disables it.
    public var minP: Float
    /// llama.cpp repetition penalty for the tokens seen in the last `penaltyLastN`:
    /// a positive logit is divided by it, a non-positive one multiplied. `1` disables it.
    public var repetitionPenalty: Float
    /// OpenAI frequency penalty: `logit -= count * frequencyPenalty`. `0` disables it.
    public var frequencyPenalty: Float
    /// OpenAI presence penalty: `logit -= (count > 0 ? 1 : 0) * presencePenalty`. `0` disables it.
    public var presencePenalty: Float
    /// How many of the most recently accepted tokens the penalties look at. `0` disables them.
    public var penaltyLastN: Int
    /// Seed of the random draw. Same seed and same logits give the same tokens.
    public var seed: UInt64

    /// Largest accepted `penaltyLastN`.
    public static let maxPenaltyLastN = 1 << 20

    /// Deterministic argmax decoding with every filter and penalty disabled.
    public static let greedy = SamplingParameters(
        temperature: 0, topK: 0, topP: 1, minP: 0,
        repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, penaltyLastN: 0)

    public init(
        temperature: Float = 0.8,
        topK: Int = 40,
        topP: Float = 0.95,
        minP: Float = 0.05,
        repetitionPenalty: Float = 1,
        frequencyPenalty: Float = 0,
        presencePenalty: Float = 0,
        penaltyLastN: Int = 64,
        seed: UInt64 = 0xC0FFEE
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.penaltyLastN = penaltyLastN
        self.seed = seed
    }

    /// Checks every field; throws the error of the first invalid one (in declaration order).
    public func validate() throws(SamplingError) {
        // Comparisons with NaN are false, so each check is written to fail on NaN.
        guard temperature.isFinite, temperature >= 0 else { throw .invalidTemperature }
        guard topK >= 0 else { throw .invalidTopK }
        guard topP > 0, topP <= 1 else { throw .invalidTopP }
        guard minP >= 0, minP <= 1 else { throw .invalidMinP }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else { throw .invalidRepetitionPenalty }
        guard frequencyPenalty.isFinite else { throw .invalidFrequencyPenalty }
        guard presencePenalty.isFinite else { throw .invalidPresencePenalty }
        guard penaltyLastN >= 0, penaltyLastN <= Self.maxPenaltyLastN else { throw .invalidPenaltyLastN }
    }

    /// Whether any penalty changes logits (a window and at least one non-neutral penalty).
    var penaltiesActive: Bool {
        penaltyLastN > 0 && (repetitionPenalty != 1 || frequencyPenalty != 0 || presencePenalty != 0)
    }
}
