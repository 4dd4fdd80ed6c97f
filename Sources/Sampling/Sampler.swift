#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A token id with its probability.
public struct TokenProbability: Sendable, Equatable {
    public var token: Int32
    public var probability: Float

    public init(token: Int32, probability: Float) {
        self.token = token
        self.probability = probability
    }
}

/// Per-sequence token sampler running the chain
/// `penalties → top-k → top-p → min-p → temperature → seeded draw` (llama.cpp's default order),
/// or greedy argmax of the penalized logits when the temperature is 0.
///
/// Every buffer is allocated in `init`; `sample`, `accept` and `reset` do not allocate.
/// Not thread-safe: use one sampler per sequence and call it from one thread at a time.
///
/// Logit handling: NaN logits are never chosen (unless every logit is NaN, when token 0 is
/// returned); ±infinity is treated as ±`Float.greatestFiniteMagnitude`, so several +inf logits
/// share the probability mass and -inf logits get probability 0.
public final class Sampler {
    /// Largest accepted vocabulary size (buffers cost about 20 bytes per vocabulary entry).
    public static let maxVocabularySize = 1 << 24

    public let parameters: SamplingParameters
    public let vocabularySize: Int

    private var rng: SeededGenerator
    /// Numbers drawn from the seeded generator so far: one per `sample` call above temperature 0,
    /// none when greedy. A replayed request skips this many to continue the same random stream.
    public private(set) var randomDraws: UInt64 = 0

    /// Survivors of the chain (vocabulary capacity).
    private let candidates: UnsafeMutablePointer<Candidate>
    /// Draw weights of `candidates` (vocabulary capacity).
    private let weights: UnsafeMutablePointer<Float>
    /// Per-bucket mass and token count for top-p over the whole vocabulary.
    private let bucketMass: UnsafeMutablePointer<Double>
    private let bucketTokens: UnsafeMutablePointer<Int>

    // Penalty state; allocated only when a penalty is active.
    private let penaltiesActive: Bool
    private let window: Int
    /// Last `window` accepted tokens, oldest at `ringStart`.
    private let ring: UnsafeMutablePointer<Int32>?
    private var ringStart = 0
    private var ringCount = 0
    /// Occurrences of each token id inside the window (vocabulary size).
    private let counts: UnsafeMutablePointer<Int32>?
    /// Distinct tokens with a non-zero count, in no particular order.
    private let distinct: UnsafeMutablePointer<Int32>?
    private var distinctCount = 0
    /// Position of each token in `distinct` (valid only while its count is non-zero).
    private let slot: UnsafeMutablePointer<Int32>?

    public init(parameters: SamplingParameters, vocabularySize: Int) throws(SamplingError) {
        try parameters.validate()
        guard vocabularySize > 0, vocabularySize <= Self.maxVocabularySize else {
            throw .invalidVocabularySize
        }
        self.parameters = parameters
        self.vocabularySize = vocabularySize
        self.rng = SeededGenerator(seed: parameters.seed)
        candidates = .allocate(capacity: vocabularySize)
        weights = .allocate(capacity: vocabularySize)
        bucketMass = .allocate(capacity: 4 * Self.bucketCount)
        bucketTokens = .allocate(capacity: 4 * Self.bucketCount)

        penaltiesActive = parameters.penaltiesActive
        if penaltiesActive {
            window = parameters.penaltyLastN
            ring = .allocate(capacity: window)
            let tokenCounts = UnsafeMutablePointer<Int32>.allocate(capacity: vocabularySize)
            tokenCounts.initialize(repeating: 0, count: vocabularySize)
            counts = tokenCounts
            distinct = .allocate(capacity: min(window, vocabularySize))
            slot = .allocate(capacity: vocabularySize)
        } else {
            window = 0
            ring = nil
            counts = nil
            distinct = nil
            slot = nil
        }
    }

    deinit {
        candidates.deallocate()
        weights.deallocate()
        bucketMass.deallocate()
        bucketTokens.deallocate()
        ring?.deallocate()
        counts?.deallocate()
        distinct?.deallocate()
        slot?.deallocate()
    }

    // MARK: - Penalty history

    /// Records a prompt or generated token for the penalties (only the last `penaltyLastN`
    /// count). `sample` does not record its own result: call this with every token that ends up
    /// in the sequence. Ids outside `0..<vocabularySize` are ignored.
    public func accept(_ token: Int32) {
        guard penaltiesActive, let ring, token >= 0, Int(token) < vocabularySize else { return }
        if ringCount == window {
            let oldest = ring[ringStart]
            ring[ringStart] = token
            ringStart += 1
            if ringStart == window { ringStart = 0 }
            release(oldest)
        } else {
            var end = ringStart + ringCount
            if end >= window { end -= window }
            ring[end] = token
            ringCount += 1
        }
        retain(token)
    }

    /// Records several tokens in order, e.g. the prompt.
    public func accept<S: Sequence<Int32>>(contentsOf tokens: S) {
        for token in tokens { accept(token) }
    }

    @inline(__always)
    private func retain(_ token: Int32) {
        guard let counts, let distinct, let slot else { return }
        let t = Int(token)
        counts[t] += 1
        if counts[t] == 1 {
            slot[t] = Int32(distinctCount)
            distinct[distinctCount] = token
            distinctCount += 1
        }
    }

    @inline(__always)
    private func release(_ token: Int32) {
        guard let counts, let distinct, let slot else { return }
        let t = Int(token)
        counts[t] -= 1
        if counts[t] == 0 {
            let position = Int(slot[t])
            let last = distinct[distinctCount - 1]
            distinct[position] = last
            slot[Int(last)] = Int32(position)
            distinctCount -= 1
        }
    }

    /// Forgets the penalty history and restarts the random sequence from the seed.
    public func reset() {
        if let counts, let distinct {
            for i in 0..<distinctCount { counts[Int(distinct[i])] = 0 }
        }
        distinctCount = 0
        ringStart = 0
        ringCount = 0
        rng = SeededGenerator(seed: parameters.seed)
        randomDraws = 0
    }

    /// Advances the seeded generator by `count` draws, as if `sample` had drawn that many tokens:
    /// a request replayed after a failover then draws exactly the numbers the interrupted run would.
    public func skipRandomDraws(_ count: UInt64) {
        for _ in 0 ..< count { _ = rng.next() }
        randomDraws &+= count
    }

    // MARK: - Sampling

    /// Chooses the next token. Applies the penalties to `logits` in place, then the filters and
    /// the seeded draw (or argmax when the temperature is 0). Only the first
    /// `min(logits.count, vocabularySize)` entries are read. Returns 0 for empty or all-NaN logits.
    public func sample(logits: UnsafeMutableBufferPointer<Float>) -> Int32 {
        let n = min(logits.count, vocabularySize)
        guard n > 0, let base = logits.baseAddress else { return 0 }
        applyPenalties(base, n)
        if parameters.temperature == 0 {
            return Self.argmax(UnsafeBufferPointer(start: base, count: n))
        }
        let (count, total) = buildDistribution(base, n)
        // Every sampled token takes exactly one draw, even the all-NaN fallback, so the number of
        // draws always equals the number of tokens sampled (see `skipRandomDraws`).
        let unit = rng.nextUnitDouble()
        randomDraws &+= 1
        guard count > 0 else { return 0 }
        return draw(count, total, unit: unit)
    }

    /// The distribution `sample` would draw from for these logits, sorted by descending
    /// probability (ties by lower token id): penalties (applied to `logits` in place, as
    /// `sample` does), filters and temperature; a single token with probability 1 when greedy.
    /// Does not advance the random generator. Allocates; meant for inspection and tests.
    public func candidateProbabilities(logits: UnsafeMutableBufferPointer<Float>) -> [TokenProbability] {
        let n = min(logits.count, vocabularySize)
        guard n > 0, let base = logits.baseAddress else { return [] }
        applyPenalties(base, n)
        if parameters.temperature == 0 {
            let best = Self.argmax(UnsafeBufferPointer(start: base, count: n))
            return [TokenProbability(token: best, probability: 1)]
        }
        let (count, total) = buildDistribution(base, n)
        var result: [TokenProbability] = []
        result.reserveCapacity(count)
        for i in 0..<count {
            result.append(TokenProbability(
                token: candidates[i].token, probability: Float(Double(weights[i]) / total)))
        }
        result.sort { $0.probability > $1.probability || ($0.probability == $1.probability && $0.token < $1.token) }
        return result
    }

    private func applyPenalties(_ base: UnsafeMutablePointer<Float>, _ n: Int) {
        guard penaltiesActive, let counts, let distinct else { return }
        let repeatPenalty = parameters.repetitionPenalty
        let frequency = parameters.frequencyPenalty
        let presence = parameters.presencePenalty
        for i in 0..<distinctCount {
            let t = Int(distinct[i])
            guard t < n else { continue }
            var x = base[t]
            if repeatPenalty != 1 {
                x = x > 0 ? x / repeatPenalty : x * repeatPenalty
            }
            x -= Float(counts[t]) * frequency + presence
            base[t] = x
        }
    }

    @inline(__always)
    private static func clamped(_ x: Float) -> Float {
        min(max(x, -.greatestFiniteMagnitude), .greatestFiniteMagnitude)
    }

    /// Fills `candidates[0..<count]` with the survivors of top-k, top-p and min-p and
    /// `weights[0..<count]` with their temperature-scaled, unnormalized probabilities;
    /// returns the count and the sum of the weights. Count 0 means every logit was NaN.
    private func buildDistribution(_ base: UnsafeMutablePointer<Float>, _ n: Int) -> (count: Int, total: Double) {
        let p = parameters
        let k = (p.topK == 0 || p.topK >= n) ? n : p.topK
        if k < n {
            let count = selectTopK(base, n, k)
            guard count > 0 else { return (0, 0) }
            CandidateHeap.sortHeapBest(candidates, count)
            let maxLogit = Double(candidates[0].value)
            var z = 0.0
            if p.topP < 1 {
                for i in 0..<count { z += exp(Double(candidates[i].value) - maxLogit) }
            }
            let keep = cutoff(count, maxLogit, z)
            return applyTemperature(keep, maxLogit)
        }

        // No top-k: work over the whole vocabulary.
        var maxF = -Float.infinity
        for i in 0..<n where base[i] > maxF { maxF = base[i] }
        if maxF == -.infinity {
            var anyNumber = false
            for i in 0..<n where !base[i].isNaN { anyNumber = true; break }
            guard anyNumber else { return (0, 0) }
        }
        let maxLogit = Double(Self.clamped(maxF))

        if p.topP >= 1 {
            // Min-p alone is a threshold on exp(x - max), and without filters everything stays:
            // neither needs an order, so survivors are collected in index order, unsorted.
            let count = gatherMinP(base, n, maxLogit)
            return applyTemperature(count, maxLogit)
        }
        let keep = topPOverVocabulary(base, n, maxLogit)
        return applyTemperature(keep, maxLogit)
    }

    /// Collects in index order the non-NaN tokens that pass min-p (every one when min-p is off).
    private func gatherMinP(_ base: UnsafeMutablePointer<Float>, _ n: Int, _ maxLogit: Double) -> Int {
        let minP = Double(parameters.minP)
        var count = 0
        if minP <= 0 {
            for i in 0..<n {
                let x = base[i]
                if x.isNaN { continue }
                candidates[count] = Candidate(value: Self.clamped(x), token: Int32(truncatingIfNeeded: i))
                count += 1
            }
            return count
        }
        // Cheap logit pre-test with a little slack, then the exact test used by every path.
        let logBound = log(minP)
        let floor = maxLogit + logBound - 1e-6 * (1 + abs(maxLogit) + abs(logBound))
        for i in 0..<n {
            let x = base[i]
            guard Double(x) >= floor else { continue }  // false for NaN
            let cx = Self.clamped(x)
            if Self.passesMinP(cx, maxLogit, minP) {
                candidates[count] = Candidate(value: cx, token: Int32(truncatingIfNeeded: i))
                count += 1
            }
        }
        return count
    }

    /// Min-p test: probability relative to the largest one, exp(x - max), at least `minP`.
    @inline(__always)
    private static func passesMinP(_ x: Float, _ maxLogit: Double, _ minP: Double) -> Bool {
        exp(Double(x) - maxLogit) >= minP
    }

    /// Relative weight exp(x - max) used for top-p masses over the whole vocabulary.
    @inline(__always)
    private static func relativeWeight(_ x: Float, _ maxF: Float) -> Float {
        expNonPositive(-(maxF - x))
    }

    /// Bucket of a logit by its distance below the maximum; all logits more than
    /// `bucketRange` below share the last bucket. Monotone: a higher logit never lands in a
    /// later bucket, and equal logits share one.
    @inline(__always)
    private static func bucket(_ x: Float, _ maxF: Float) -> Int {
        let scaled = (maxF - x) * (Float(bucketCount) / bucketRange)  // >= 0, maybe +inf
        return scaled < Float(bucketCount - 1) ? Int(scaled) : bucketCount - 1
    }

    static let bucketCount = 256
    static let bucketRange: Float = 32

    /// Top-p (then min-p) over the whole vocabulary without sorting it. One pass sums the
    /// relative weights per logit bucket; the buckets above the one where the cumulative mass
    /// reaches p are kept whole (unsorted), and only the crossing bucket's tokens are sorted to
    /// find the exact cut. Leaves the survivors in `candidates` and returns their count.
    private func topPOverVocabulary(_ base: UnsafeMutablePointer<Float>, _ n: Int, _ maxLogit: Double) -> Int {
        let maxF = Float(maxLogit)
        // Four interleaved histograms break the store-to-load chain of consecutive tokens
        // falling in the same bucket; they are folded (in a fixed order) afterwards.
        let mass = bucketMass
        let tokens = bucketTokens
        let buckets = Self.bucketCount
        for b in 0..<(4 * buckets) {
            mass[b] = 0
            tokens[b] = 0
        }
        for i in 0..<n {
            let x = base[i]
            if x.isNaN { continue }
            let cx = Self.clamped(x)
            let b = Self.bucket(cx, maxF) &* 4 &+ (i & 3)
            mass[b] += Double(Self.relativeWeight(cx, maxF))
            tokens[b] &+= 1
        }
        for b in 0..<buckets {
            let j = 4 * b
            mass[b] = (mass[j] + mass[j + 1]) + (mass[j + 2] + mass[j + 3])
            tokens[b] = tokens[j] + tokens[j + 1] + tokens[j + 2] + tokens[j + 3]
        }
        var z = 0.0
        for b in 0..<buckets { z += mass[b] }

        let topP = Double(parameters.topP)
        var crossing = 0
        var before = 0.0
        var above = 0
        while crossing < buckets - 1 && (before + mass[crossing]) / z < topP {
            before += mass[crossing]
            above += tokens[crossing]
            crossing += 1
        }

        var last = crossing
        var keep = 0
        while true {
            // Buckets < crossing go to the front in index order; crossing...last after them.
            var front = 0
            var back = above
            for i in 0..<n {
                let x = base[i]
                if x.isNaN { continue }
                let cx = Self.clamped(x)
                let b = Self.bucket(cx, maxF)
                if b < crossing {
                    candidates[front] = Candidate(value: cx, token: Int32(truncatingIfNeeded: i))
                    front += 1
                } else if b <= last {
                    candidates[back] = Candidate(value: cx, token: Int32(truncatingIfNeeded: i))
                    back += 1
                }
            }
            CandidateHeap.sortBest(candidates + above, back - above)
            var cumulative = before
            var reached = false
            keep = back
            for j in above..<back {
                cumulative += Double(Self.relativeWeight(candidates[j].value, maxF))
                if cumulative / z >= topP {
                    keep = j + 1
                    reached = true
                    break
                }
            }
            // Summation rounding can leave the crossing bucket just short of p: widen to the
            // rest of the vocabulary once (rare) so the result stays exact.
            if reached || last == buckets - 1 { break }
            last = buckets - 1
        }

        let minP = Double(parameters.minP)
        if minP > 0 {
            var kept = 0
            for j in 0..<keep where Self.passesMinP(candidates[j].value, maxLogit, minP) {
                candidates[kept] = candidates[j]
                kept += 1
            }
            keep = kept
        }
        return keep
    }

    /// Bounded selection of the `k` best logits into `candidates` (left as a worst-rooted heap).
    /// Returns the number selected (less than `k` only when there are fewer non-NaN logits).
    private func selectTopK(_ base: UnsafeMutablePointer<Float>, _ n: Int, _ k: Int) -> Int {
        let heap = candidates
        var size = 0
        var i = 0
        while i < n && size < k {
            let x = base[i]
            if !x.isNaN {
                heap[size] = Candidate(value: Self.clamped(x), token: Int32(truncatingIfNeeded: i))
                CandidateHeap.siftUp(heap, size)
                size += 1
            }
            i += 1
        }
        guard size == k else { return size }
        // Scanning in index order, a later equal logit never beats the root (ties go to the
        // lower id), so a strict comparison is the whole test; NaN compares false. Nearly every
        // logit fails it, so the loop is unrolled to keep that test cheap (also in debug builds).
        var root = heap[0].value
        while i &+ 8 <= n {
            // Few live values per branch: -Onone code spills every one of them at each merge.
            let p = base + i
            if p[0] > root { root = Self.offer(heap, size, p[0], i) }
            if p[1] > root { root = Self.offer(heap, size, p[1], i &+ 1) }
            if p[2] > root { root = Self.offer(heap, size, p[2], i &+ 2) }
            if p[3] > root { root = Self.offer(heap, size, p[3], i &+ 3) }
            if p[4] > root { root = Self.offer(heap, size, p[4], i &+ 4) }
            if p[5] > root { root = Self.offer(heap, size, p[5], i &+ 5) }
            if p[6] > root { root = Self.offer(heap, size, p[6], i &+ 6) }
            if p[7] > root { root = Self.offer(heap, size, p[7], i &+ 7) }
            i &+= 8
        }
        while i < n {
            let x = base[i]
            if x > root { root = Self.offer(heap, size, x, i) }
            i &+= 1
        }
        return size
    }

    /// Replaces the heap's root with token `index` if its clamped logit `x` is still better
    /// (clamping +inf can make it equal); returns the new root value.
    @inline(__always)
    private static func offer(_ heap: UnsafeMutablePointer<Candidate>, _ size: Int, _ x: Float, _ index: Int) -> Float {
        let cx = clamped(x)
        if cx > heap[0].value {
            heap[0] = Candidate(value: cx, token: Int32(truncatingIfNeeded: index))
            CandidateHeap.siftDown(heap, 0, size)
        }
        return heap[0].value
    }

    /// Applies top-p (with normalizer `z` over all top-k survivors) and min-p to the best-first
    /// `candidates[0..<count]`; returns how many survive (at least 1).
    private func cutoff(_ count: Int, _ maxLogit: Double, _ z: Double) -> Int {
        var keep = count
        let topP = Double(parameters.topP)
        if topP < 1 {
            var cumulative = 0.0
            for i in 0..<count {
                cumulative += exp(Double(candidates[i].value) - maxLogit)
                if cumulative / z >= topP {
                    keep = i + 1
                    break
                }
            }
        }
        let minP = Double(parameters.minP)
        if minP > 0 {
            // Sorted best-first, so min-p cuts a prefix; candidates[0] always passes.
            var i = 1
            while i < keep {
                if !Self.passesMinP(candidates[i].value, maxLogit, minP) {
                    keep = i
                    break
                }
                i += 1
            }
        }
        return keep
    }

    /// Fills `weights[0..<count]` with exp((x - max) / temperature); returns count and sum.
    private func applyTemperature(_ count: Int, _ maxLogit: Double) -> (count: Int, total: Double) {
        let temperature = parameters.temperature
        let maxF = Float(maxLogit)
        let candidates = candidates
        let weights = weights
        // No reduction in this loop, so it vectorizes; x - max <= 0 (possibly -inf), so the
        // quotient is never NaN or +inf.
        for i in 0..<count {
            weights[i] = expNonPositive((candidates[i].value - maxF) / temperature)
        }
        return (count, Self.sum(weights, count))
    }

    /// Sum in Double with four independent accumulators (fixed order, so deterministic).
    private static func sum(_ values: UnsafeMutablePointer<Float>, _ count: Int) -> Double {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i &+ 4 <= count {
            s0 += Double(values[i])
            s1 += Double(values[i &+ 1])
            s2 += Double(values[i &+ 2])
            s3 += Double(values[i &+ 3])
            i &+= 4
        }
        while i < count {
            s0 += Double(values[i])
            i &+= 1
        }
        return (s0 + s1) + (s2 + s3)
    }

    private func draw(_ count: Int, _ total: Double, unit: Double) -> Int32 {
        let target = unit * total
        var cumulative = 0.0
        var lastPositive = 0
        for i in 0..<count {
            let w = weights[i]
            guard w > 0 else { continue }
            cumulative += Double(w)
            lastPositive = i
            if target < cumulative { return candidates[i].token }
        }
        return candidates[lastPositive].token
    }

    // MARK: - Static helpers

    /// Index of the first largest logit, ignoring NaN. Returns 0 when there is none
    /// (empty or all-NaN input).
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        var best = -1
        var bestValue = -Float.infinity
        for i in logits.indices {
            let x = logits[i]
            if x > bestValue || (best < 0 && !x.isNaN) {
                best = i
                bestValue = x
            }
        }
        return best < 0 ? 0 : Int32(truncatingIfNeeded: best)
    }

    /// Softmax of the raw logits (max-subtracted, in Double), the `k` most probable tokens sorted
    /// by descending probability, ties by lower token id. NaN logits are left out; ±infinity is
    /// treated as in `Sampler`. Returns `[]` for `k <= 0`, empty or all-NaN input.
    public static func topProbabilities(logits: UnsafeBufferPointer<Float>, k: Int) -> [TokenProbability] {
        let n = logits.count
        guard k > 0, n > 0 else { return [] }
        var maxF = -Float.infinity
        var numbers = 0
        for x in logits where !x.isNaN {
            numbers += 1
            if x > maxF { maxF = x }
        }
        guard numbers > 0 else { return [] }
        let maxLogit = Double(clamped(maxF))

        let relative = UnsafeMutablePointer<Double>.allocate(capacity: n)
        defer { relative.deallocate() }
        var z = 0.0
        for i in 0..<n {
            let x = logits[i]
            let w = x.isNaN ? 0 : exp(Double(clamped(x)) - maxLogit)
            relative[i] = w
            z += w
        }

        // Select on the rounded probability itself so that ties are broken by id exactly as
        // the result is ordered.
        let size = min(k, numbers)
        let heap = UnsafeMutablePointer<Candidate>.allocate(capacity: size)
        defer { heap.deallocate() }
        var filled = 0
        for i in 0..<n where !logits[i].isNaN {
            let c = Candidate(value: Float(relative[i] / z), token: Int32(truncatingIfNeeded: i))
            if filled < size {
                heap[filled] = c
                CandidateHeap.siftUp(heap, filled)
                filled += 1
            } else if isWorse(heap[0], c) {
                heap[0] = c
                CandidateHeap.siftDown(heap, 0, size)
            }
        }
        CandidateHeap.sortHeapBest(heap, filled)
        return (0..<filled).map { TokenProbability(token: heap[$0].token, probability: heap[$0].value) }
    }
}
