import Sampling
import StarStream

extension WireSampling {
    /// The wire form of a sampler's parameters (StarStream does not know the Sampling module).
    public init(_ s: SamplingParameters) {
        self.init(temperature: s.temperature, topK: UInt32(clamping: s.topK), topP: s.topP, minP: s.minP,
                  repetitionPenalty: s.repetitionPenalty, frequencyPenalty: s.frequencyPenalty,
                  presencePenalty: s.presencePenalty, penaltyLastN: UInt32(clamping: s.penaltyLastN), seed: s.seed)
    }

    /// The sampler's parameters (ranges are checked by `SamplingParameters.validate`).
    public var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: Int(topK), topP: topP, minP: minP,
                           repetitionPenalty: repetitionPenalty, frequencyPenalty: frequencyPenalty,
                           presencePenalty: presencePenalty, penaltyLastN: Int(penaltyLastN), seed: seed)
    }
}
