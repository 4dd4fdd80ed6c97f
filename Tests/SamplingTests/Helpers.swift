#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Sampling

/// Samples once from a copy of `logits` (sample() may modify its input).
func sampleOnce(_ sampler: Sampler, _ logits: [Float]) -> Int32 {
    var copy = logits
    return copy.withUnsafeMutableBufferPointer { sampler.sample(logits: $0) }
}

/// Samples once and also returns the logits as the sampler left them (penalized).
func sampleKeepingLogits(_ sampler: Sampler, _ logits: [Float]) -> (Int32, [Float]) {
    var copy = logits
    let token = copy.withUnsafeMutableBufferPointer { sampler.sample(logits: $0) }
    return (token, copy)
}

func distribution(_ sampler: Sampler, _ logits: [Float]) -> [TokenProbability] {
    var copy = logits
    return copy.withUnsafeMutableBufferPointer { sampler.candidateProbabilities(logits: $0) }
}

func argmax(_ logits: [Float]) -> Int32 {
    logits.withUnsafeBufferPointer { Sampler.argmax($0) }
}

func topProbabilities(_ logits: [Float], k: Int) -> [TokenProbability] {
    logits.withUnsafeBufferPointer { Sampler.topProbabilities(logits: $0, k: k) }
}

/// Natural-log probabilities as logits (any additive constant would do).
func logits(fromProbabilities probabilities: [Double]) -> [Float] {
    probabilities.map { $0 > 0 ? Float(log($0)) : -.infinity }
}

/// Deterministic pseudo-random logits in roughly [-spread, spread).
func randomLogits(count: Int, seed: UInt64, spread: Float = 8) -> [Float] {
    var g = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float(g.nextUnitDouble() * 2 - 1) * spread }
}

/// Straightforward reference of the chain (no penalties): full sort, then each filter on the
/// sorted list, then temperature. Returns token → probability.
func referenceDistribution(_ logits: [Float], _ p: SamplingParameters) -> [Int32: Double] {
    var sorted = logits.indices.filter { !logits[$0].isNaN }.map { (Double(logits[$0]), Int32($0)) }
    sorted.sort { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
    if p.topK > 0 && p.topK < sorted.count { sorted = Array(sorted.prefix(p.topK)) }
    let m = sorted[0].0
    if p.topP < 1 {
        let z = sorted.reduce(0.0) { $0 + exp($1.0 - m) }
        var cumulative = 0.0
        for (i, c) in sorted.enumerated() {
            cumulative += exp(c.0 - m) / z
            if cumulative >= Double(p.topP) { sorted = Array(sorted.prefix(i + 1)); break }
        }
    }
    if p.minP > 0 {
        sorted = [sorted[0]] + sorted.dropFirst().filter { exp($0.0 - m) >= Double(p.minP) }
    }
    let weights = sorted.map { exp(($0.0 - m) / Double(p.temperature)) }
    let total = weights.reduce(0, +)
    var result: [Int32: Double] = [:]
    for (c, w) in zip(sorted, weights) { result[c.1] = w / total }
    return result
}

/// Pearson chi-square statistic of observed counts against expected probabilities.
func chiSquare(_ counts: [Int32: Int], _ expected: [Int32: Double], draws: Int) -> Double {
    var statistic = 0.0
    for (token, probability) in expected {
        let e = probability * Double(draws)
        let o = Double(counts[token] ?? 0)
        statistic += (o - e) * (o - e) / e
    }
    return statistic
}
