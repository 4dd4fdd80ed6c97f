import ArgumentParser
import Engine
import Foundation

/// llama-bench-style throughput: pp (prompt processing) and tg (generation) in tokens/s.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prompt processing (ppN) and generation (tgN) speed, like llama-bench.")

    @Option(name: .shortAndLong, help: "GGUF model file.")
    var model: String?

    @Option(name: .short, help: "Prompt lengths to test, comma separated (0 skips).")
    var p: String = "128,512"

    @Option(name: .short, help: "Tokens to generate for the tg test (0 skips).")
    var n: Int = 128

    @Option(name: .short, help: "Threads, counting the main thread.")
    var t: Int = 2

    @Option(name: .short, help: "Repetitions per test.")
    var r: Int = 3

    @Flag(help: "One JSON object per test on stdout.")
    var json = false

    func run() throws {
        let prompts = try p.split(separator: ",").map { part -> Int in
            guard let v = Int(part.trimmingCharacters(in: .whitespaces)), (0 ... 4096).contains(v) else {
                throw ValidationError("-p takes prompt lengths within 0...4096")
            }
            return v
        }.filter { $0 > 0 }
        guard (0 ... 4096).contains(n), (1 ... 256).contains(t), (1 ... 100).contains(r) else {
            throw ValidationError("-n must be within 0...4096, -t within 1...256, -r within 1...100")
        }
        let path = model ?? ProcessEnvironment.value("PANGALACTIC_MODEL") ?? ModelOptions.defaultModel
        let longest = max(prompts.max() ?? 1, n + 1)
        let engine = try InferenceEngine(modelPath: path, threads: t, contextLength: longest + 16,
                                         batchSize: min(512, prompts.max() ?? 64))
        var results: [BenchmarkResult] = []
        for count in prompts { results.append(try engine.benchmarkPrefill(tokens: count, repetitions: r)) }
        if n > 0 { results.append(try engine.benchmarkDecode(tokens: n, repetitions: r)) }

        if json {
            for result in results {
                let object: [String: Any] = ["test": result.test, "tokens_per_second": result.mean, "stddev": result.standardDeviation]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        let bandwidth = measureReadBandwidth(pool: engine.pool)
        let bytesPerToken = Double(engine.weightBytesPerToken)
        let roofline = bandwidth / bytesPerToken
        print("model: \(path)")
        print("threads: \(engine.pool.activeThreads), read bandwidth \(fmt(bandwidth / 1e9, 1)) GB/s, " +
            "\(fmt(bytesPerToken / 1e6, 1)) MB of weights per token, decode roofline \(fmt(roofline, 1)) tok/s")
        print("| test | t/s |")
        print("|---|---|")
        for result in results {
            var line = "| \(result.test) | \(fmt(result.mean, 2)) ± \(fmt(result.standardDeviation, 2)) |"
            if result.test.hasPrefix("tg") { line += " \(fmt(100 * result.mean / roofline, 1))% of roofline" }
            print(line)
        }
    }
}
