#if canImport(Glibc)
import Glibc
#endif
import StarStream

/// Turns a batch's output into the frames that leave the node: each member's hidden states for
/// the next stage or, on the last node, one sampled TOKEN per member that wanted logits (with
/// its log-probability under the model when the request asked for one).
package final class StageEmitter {
    let wire: WireDType
    let width: Int
    let vocabularySize: Int
    let samples: Bool
    /// Raw logits of the row being sampled, kept for its logprob (the sampler edits them).
    private let rawLogits: UnsafeMutablePointer<Float>

    package init(wire: WireDType, width: Int, vocabularySize: Int, samples: Bool) {
        self.wire = wire
        self.width = width
        self.vocabularySize = vocabularySize
        self.samples = samples
        rawLogits = .allocate(capacity: samples ? max(1, vocabularySize) : 1)
    }

    deinit { rawLogits.deallocate() }

    /// The frames for `members`, given the forward pass's output: hidden states
    /// `[rows × width]`, or on the last node one logits row `[vocabulary]` per member that
    /// wanted logits, in member order.
    package func frames(for members: [BatchBuilder.Member], output: UnsafeMutableBufferPointer<Float>) -> [StarStreamFrame] {
        guard let base = output.baseAddress else { return [] }
        var frames: [StarStreamFrame] = []
        frames.reserveCapacity(members.count)
        if !samples {
            var offset = 0
            for m in members {
                let values = Array(UnsafeBufferPointer(start: base + offset * width, count: m.count * width))
                let positions = (0 ..< m.count).map { UInt32(m.start + $0) }
                let activations = Activations(dtype: wire, positions: positions, width: width, values: values)
                frames.append(StarStreamFrame(sequenceID: m.sequence.id, position: UInt32(m.start), payload: .activations(activations)))
                offset += m.count
            }
            return frames
        }
        var row = 0
        for m in members where m.wantsLogits {
            let logits = UnsafeMutableBufferPointer(start: base + row * vocabularySize, count: vocabularySize)
            row += 1
            guard let sampler = m.sequence.sampler else { continue }
            let request = m.sequence.request
            let logSum = request.wantsLogprobs || request.topLogprobs > 0 ? keepRawLogits(logits) : nil
            let token = sampler.sample(logits: logits)
            sampler.accept(token)
            var message = TokenMessage(tokenID: token, logprob: logSum.map { rawLogits[Int(token)] - $0 })
            if let logSum, request.topLogprobs > 0 { message.alternatives = topAlternatives(request.topLogprobs, logSum: logSum) }
            let position = m.start + m.count
            frames.append(StarStreamFrame(sequenceID: m.sequence.id, position: UInt32(position), payload: .token(message)))
        }
        return frames
    }

    /// The `count` most likely tokens under the model (raw logits, before penalties and
    /// filters, as OpenAI's `top_logprobs` reports them), most likely first; ties by lower id.
    private func topAlternatives(_ count: Int, logSum: Float) -> [TokenAlternative] {
        let k = min(count, vocabularySize)
        var best: [(Float, Int32)] = []
        best.reserveCapacity(k + 1)
        for i in 0 ..< vocabularySize {
            let v = rawLogits[i]
            guard !v.isNaN else { continue }
            if best.count == k, let last = best.last, v <= last.0 { continue }
            var j = best.count
            while j > 0, best[j - 1].0 < v { j -= 1 }
            best.insert((v, Int32(i)), at: j)
            if best.count > k { best.removeLast() }
        }
        return best.map { TokenAlternative(tokenID: $0.1, logprob: $0.0 - logSum) }
    }

    /// Copies the raw logits aside (the sampler edits them in place) and returns their
    /// log-sum-exp, so a token's logprob under the model, as OpenAI's `logprobs` reports it, is
    /// `rawLogits[token] - logSum`.
    private func keepRawLogits(_ logits: UnsafeMutableBufferPointer<Float>) -> Float {
        guard let base = logits.baseAddress else { return 0 }
        rawLogits.update(from: base, count: logits.count)
        var maximum = -Float.infinity
        for v in logits where v > maximum { maximum = v }
        var sum: Float = 0
        for v in logits { sum += expf(v - maximum) }
        return maximum + logf(sum)
    }
}
