#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
import Sampling

/// CPU time of the calling thread in seconds: unlike wall time it does not grow when other
/// tests (or other processes) compete for the cores.
func threadCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

@Suite(.serialized) struct PerformanceTests {
    @Test func largeVocabularyIsFast() throws {
        let vocabulary = 262_144
        let sampler = try Sampler(parameters: SamplingParameters(repetitionPenalty: 1.1, penaltyLastN: 64),
                                  vocabularySize: vocabulary)
        var logits = randomLogits(count: vocabulary, seed: 1)
        var scratch = logits
        var seen = Set<Int32>()
        let cpuStart = threadCPUSeconds()
        let elapsed = ContinuousClock().measure {
            for i in 0..<1000 {
                logits[(i &* 7919) % vocabulary] += 20  // move the peak around a little
                let token = scratch.withUnsafeMutableBufferPointer { buffer in
                    logits.withUnsafeBufferPointer { source in
                        buffer.baseAddress!.update(from: source.baseAddress!, count: vocabulary)
                    }
                    return sampler.sample(logits: buffer)
                }
                sampler.accept(token)
                seen.insert(token)
            }
        }
        let cpu = threadCPUSeconds() - cpuStart
        #expect(seen.count > 10)
        print("262144-vocab sample() x1000 (incl. logits copy): \(elapsed) wall, \(cpu) s CPU")
        #expect(cpu < 2)
    }

    /// Per-call cost for a Qwen-sized vocabulary (meaningful in release:
    /// `swift test -c release --filter benchmarkQwenVocabulary`).
    @Test(arguments: [
        ("topK 40, topP 0.95, minP 0.05, T 0.8", SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95)),
        ("topK 0, topP 0.95, minP 0, T 0.8", SamplingParameters(temperature: 0.8, topK: 0, topP: 0.95, minP: 0)),
        ("no filters, T 1", SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0)),
    ])
    func benchmarkQwenVocabulary(_ label: String, _ parameters: SamplingParameters) throws {
        let vocabulary = 151_936
        let sampler = try Sampler(parameters: parameters, vocabularySize: vocabulary)
        var logits = randomLogits(count: vocabulary, seed: 2, spread: 10)
        #if DEBUG
        let iterations = 20  // debug timings mean little; keep the suite quick
        #else
        let iterations = 1000
        #endif
        var checksum: Int32 = 0
        let cpuStart = threadCPUSeconds()
        let elapsed = logits.withUnsafeMutableBufferPointer { buffer in
            ContinuousClock().measure {
                for _ in 0..<iterations { checksum &+= sampler.sample(logits: buffer) }
            }
        }
        let cpuMicroseconds = (threadCPUSeconds() - cpuStart) / Double(iterations) * 1e6
        print("151936-vocab sample(\(label)): \(elapsed / iterations) wall, \(cpuMicroseconds) µs CPU per call")
        #expect(checksum != 0)
    }
}
