import ArgumentParser
import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import Synchronization

/// `pangalactic loadtest`: streams chat completions from any OpenAI-compatible server at fixed
/// concurrencies and reports what vLLM's benchmark_serving and llama.cpp report: time to first
/// token (TTFT), inter-token latency (ITL), time per output token (TPOT) and throughput, at
/// p50/p95/p99, and the failed count.
struct LoadTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest", abstract: "Measure TTFT, ITL, TPOT and throughput of an OpenAI-compatible server under load.")

    @Option(help: "The API's base URL, e.g. http://127.0.0.1:8080/v1.")
    var url: String

    @Option(help: "Concurrent streams, comma-separated: one run each.")
    var concurrency: String = "1,4,16"

    @Option(help: "Requests per run.")
    var requests: Int = 32

    @Option(name: .customLong("max-tokens"), help: "Tokens per request (generation is not stopped early: ignore_eos is not OpenAI's, so prompts ask for long answers).")
    var maxTokens: Int = 64

    @Option(help: "The model's id (default: the first of /v1/models).")
    var model: String?

    @Option(name: .customLong("api-key"), help: "Sent as Authorization: Bearer KEY.")
    var apiKey: String?

    @Flag(help: "One JSON object per run instead of the table.")
    var json = false

    static let prompts = [
        "Write a detailed essay about the history of the printing press.", "Explain how a rainbow forms, step by step.",
        "Describe a day in the life of a lighthouse keeper.", "List the planets of the solar system and describe each one.",
        "Tell a long story about a dragon who learns to bake bread.", "Explain the rules of chess to a beginner.",
        "Describe the water cycle in detail.", "Write a travel guide for a small mountain village.",
    ]

    struct Sample: Sendable {
        var ok: Bool
        var ttft: Double
        var itls: [Double]
        var tokens: Int
        var total: Double
        /// Why a failed request failed.
        var error: String? = nil
    }

    func run() throws {
        let levels = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ (1 ... 1024).contains($0) }) else { throw ValidationError("--concurrency takes 1...1024, comma-separated") }
        guard (1 ... 100_000).contains(requests), (1 ... 100_000).contains(maxTokens) else { throw ValidationError("--requests and --max-tokens take 1...100000") }
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let (apiKey, maxTokens, requests, json) = (self.apiKey, self.maxTokens, self.requests, self.json)
        let givenModel = model
        try runBlocking {
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            let model: String
            do {
                if let givenModel { model = givenModel } else { model = try await Self.firstModel(client, base, apiKey) }
            } catch {
                try? await client.shutdown()
                throw error
            }
            if !json {
                Console.write("| concurrency | requests | failed | req/s | output tok/s | TTFT p50/p95/p99 ms | ITL p50/p95/p99 ms | TPOT p50/p95/p99 ms |\n")
                Console.write("|---|---|---|---|---|---|---|---|\n")
            }
            for c in levels {
                let started = Date()
                let samples = await Self.run(client, base, apiKey, model: model, concurrency: c, requests: requests, maxTokens: maxTokens)
                let elapsed = Date().timeIntervalSince(started)
                Console.write(Self.report(samples, concurrency: c, seconds: elapsed, json: json) + "\n")
            }
            try? await client.shutdown()
        }
    }

    static func firstModel(_ client: HTTPClient, _ base: String, _ apiKey: String?) async throws -> String {
        var request = HTTPClientRequest(url: base + "/models")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
              let id = (object["data"] as? [[String: Any]])?.first?["id"] as? String else {
            throw ValidationError("\(base)/models did not list a model")
        }
        return id
    }

    /// `requests` requests through `concurrency` workers, each starting its next request when
    /// the last one ends (a closed loop, like llama.cpp's and vLLM's fixed-concurrency runs).
    static func run(_ client: HTTPClient, _ base: String, _ apiKey: String?, model: String, concurrency: Int, requests: Int,
                    maxTokens: Int) async -> [Sample] {
        final class Counter: Sendable { let next = Atomic<Int>(0) }
        let counter = Counter()
        return await withTaskGroup(of: [Sample].self) { group in
            for _ in 0 ..< concurrency {
                group.addTask {
                    var out: [Sample] = []
                    while true {
                        let i = counter.next.add(1, ordering: .relaxed).oldValue
                        guard i < requests else { return out }
                        out.append(await one(client, base, apiKey, model: model, prompt: prompts[i % prompts.count], maxTokens: maxTokens))
                    }
                }
            }
            var all: [Sample] = []
            for await s in group { all += s }
            return all
        }
    }

    /// One streamed chat completion, timed from sending it.
    static func one(_ client: HTTPClient, _ base: String, _ apiKey: String?, model: String, prompt: String, maxTokens: Int) async -> Sample {
        let start = monotonicSeconds()
        var sample = Sample(ok: false, ttft: 0, itls: [], tokens: 0, total: 0)
        do {
            var request = HTTPClientRequest(url: base + "/chat/completions")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            // A fresh connection per request: servers differ in when they close a kept-alive
            // connection after a stream (llama-server does so at times), and a request sent on
            // one they just closed would count as a failure of theirs. On loopback a connect
            // costs a fraction of a millisecond.
            request.headers.add(name: "Connection", value: "close")
            if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
            let body: [String: Any] = ["model": model, "messages": [["role": "user", "content": prompt]], "max_tokens": maxTokens,
                                       "temperature": 0, "stream": true, "stream_options": ["include_usage": true]]
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            let response = try await client.execute(request, timeout: .seconds(600))
            guard response.status == .ok else { sample.error = "HTTP \(response.status.code)"; return sample }
            var pending = ""
            var last = 0.0
            var usageTokens: Int?
            var chunks = 0
            for try await buffer in response.body {
                pending += String(buffer: buffer)
                while let end = pending.range(of: "\n\n") {
                    let event = String(pending[..<end.lowerBound])
                    pending.removeSubrange(..<end.upperBound)
                    guard event.hasPrefix("data: ") else { continue }
                    let data = event.dropFirst(6)
                    if data == "[DONE]" { sample.ok = true; continue }
                    guard let chunk = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { continue }
                    if let error = chunk["error"] { sample.error = "error event: \(error)"; return sample }
                    if let usage = chunk["usage"] as? [String: Any], let n = usage["completion_tokens"] as? Int { usageTokens = n }
                    let content = ((chunk["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
                    guard let content, !content.isEmpty else { continue }
                    let now = monotonicSeconds()
                    if chunks == 0 { sample.ttft = now - start } else { sample.itls.append(now - last) }
                    last = now
                    chunks += 1
                }
            }
            sample.tokens = usageTokens ?? chunks
            sample.total = monotonicSeconds() - start
            if chunks == 0 { sample.ok = false; sample.error = "no content" }
            if !sample.ok, sample.error == nil { sample.error = "the stream ended without [DONE]" }
        } catch {
            sample.ok = false
            sample.error = "\(error)"
        }
        return sample
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let index = min(sorted.count - 1, max(0, Int((p * Double(sorted.count - 1)).rounded())))
        return sorted[index]
    }

    static func report(_ samples: [Sample], concurrency: Int, seconds: Double, json: Bool) -> String {
        let ok = samples.filter(\.ok)
        for (reason, count) in Dictionary(grouping: samples.compactMap(\.error), by: { $0 }).mapValues(\.count) {
            Console.error("loadtest: \(count) failed at concurrency \(concurrency): \(reason)")
        }
        let ttft = ok.map { $0.ttft * 1000 }
        let itl = ok.flatMap(\.itls).map { $0 * 1000 }
        let tpot = ok.filter { $0.tokens > 1 }.map { ($0.total - $0.ttft) / Double($0.tokens - 1) * 1000 }
        let tokens = ok.reduce(0) { $0 + $1.tokens }
        let p = { (v: [Double]) in [0.5, 0.95, 0.99].map { percentile(v, $0) } }
        if json {
            let object: [String: Any] = [
                "concurrency": concurrency, "requests": samples.count, "failed": samples.count - ok.count, "seconds": seconds,
                "requests_per_second": Double(ok.count) / seconds, "output_tokens_per_second": Double(tokens) / seconds,
                "ttft_ms": p(ttft), "itl_ms": p(itl), "tpot_ms": p(tpot),
            ]
            return (try? String(decoding: JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)) ?? "{}"
        }
        let f = { (v: [Double]) in p(v).map { fmt($0, 1) }.joined(separator: " / ") }
        return "| \(concurrency) | \(samples.count) | \(samples.count - ok.count) | \(fmt(Double(ok.count) / seconds, 2)) | \(fmt(Double(tokens) / seconds, 1)) | " +
            "\(f(ttft)) | \(f(itl)) | \(f(tpot)) |"
    }
}
