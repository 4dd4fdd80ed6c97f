import ArgumentParser
import ClusterTrust
import ControlPlane
import Engine
import Foundation
import PipelineClient
import Sampling
import StarStream
import Synchronization

/// `pangalactic soak`: keeps streams generating through a hub's cluster for a while and checks
/// every answer against the single process on the same model. `scripts/chaos` runs it while it
/// kills nodes; the last line is `requests=N lost=N wrong=N hung=N`.
struct SoakCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Generate through a cluster for a while and check every text against the single process.",
        discussion: """
            lost: the request failed; wrong: its tokens differ from the single-process run of the \
            same request (same prompt, sampler and seed); hung: it did not finish within --hang.
            """)

    @Option(help: "The hub, HOST:PORT.")
    var hub: String = "127.0.0.1:7000"

    @Option(name: .shortAndLong, help: "The cluster's GGUF model, for the single-process answers.")
    var model: String = ModelOptions.defaultModel

    @Option(help: "Concurrent streams.")
    var streams: Int = 8

    @Option(help: "Seconds to keep starting requests.")
    var seconds: Double = 120

    @Option(help: "Tokens per request.")
    var tokens: Int = 64

    @Option(help: "A request that has not finished after this many seconds is hung.")
    var hang: Double = 120

    @Option(name: .customLong("cluster-token"), help: "The cluster token (default: $PANGALACTIC_CLUSTER_TOKEN).")
    var clusterToken: String?

    @OptionGroup var trust: SecurityOptions

    static let prompts = [
        "The capital of France is", "Write a short poem about the sea.", "List three uses of copper:",
        "Once upon a time, in a village by the mountains,", "Explain photosynthesis to a child.",
        "def fibonacci(n):", "The best way to learn a language is", "Describe a sunrise over the desert.",
    ]

    func validate() throws {
        guard (1 ... 256).contains(streams), seconds > 0, (1 ... 4096).contains(tokens), hang > 0 else {
            throw ValidationError("--streams 1...256, --tokens 1...4096, --seconds and --hang positive")
        }
    }

    func run() throws {
        LogSetup.bootstrap()
        let engine = try InferenceEngine(modelPath: model, threads: 2, contextLength: nil, batchSize: 64)
        let stops = engine.tokenizer.endOfGenerationIDs
        // Every (prompt, sampler) pair and its single-process answer, computed up front.
        var cases: [(PipelineRequest, [Int32])] = []
        for (i, text) in Self.prompts.enumerated() {
            let prompt = engine.tokenize(text)
            for hot in [false, true] {
                let sampling = hot ? SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, seed: UInt64(1000 + i))
                    : SamplingParameters(temperature: 0)
                var expected: [Int32] = []
                _ = try engine.generate(prompt: prompt, maxTokens: tokens, sampling: sampling) { id, _ in
                    if let id { expected.append(id) }
                    return true
                }
                cases.append((PipelineRequest(prompt: prompt, maxNewTokens: tokens, sampling: WireSampling(sampling), stopTokens: stops,
                                              history: Array(prompt.suffix(sampling.penaltyLastN))), expected))
            }
        }
        let security = try trust.security(roles: [.gateway])
        let connection = try HubConnection(address: hub, security: security)
        defer { connection.close() }
        let token = ProcessEnvironment.clusterToken(clusterToken)
        let driver = ClusterDriver(source: HubRoutePlans(connection: connection), clusterToken: token, security: security)
        final class Tally: Sendable { let counts = Mutex((requests: 0, lost: 0, wrong: 0, hung: 0)) }
        let tally = Tally()
        let (streams, seconds, hang) = (self.streams, self.seconds, self.hang)
        let allCases = cases
        try runBlocking {
            let end = Date().addingTimeInterval(seconds)
            await withTaskGroup(of: Void.self) { group in
                for stream in 0 ..< streams {
                    group.addTask {
                        var k = stream
                        while Date() < end {
                            let (request, expected) = allCases[k % allCases.count]
                            k += streams
                            let outcome = await Self.runOne(driver, request, hang: hang)
                            let verdict: String
                            switch outcome {
                            case let .finished(got): verdict = got == expected ? "ok" : "wrong"
                            case let .failed(error): verdict = "lost (\(error))"
                            case .hung: verdict = "hung"
                            }
                            tally.counts.withLock { t in
                                t.requests += 1
                                if verdict.hasPrefix("wrong") { t.wrong += 1 }
                                if verdict.hasPrefix("lost") { t.lost += 1 }
                                if verdict == "hung" { t.hung += 1 }
                            }
                            if verdict != "ok" { Console.error("soak: stream \(stream): \(verdict)") }
                        }
                    }
                }
            }
            await driver.close()
        }
        let t = tally.counts.withLock { $0 }
        Console.write("requests=\(t.requests) lost=\(t.lost) wrong=\(t.wrong) hung=\(t.hung)\n")
        if t.lost + t.wrong + t.hung > 0 { throw ExitCode(1) }
    }

    enum Outcome: Sendable {
        case finished([Int32])
        case failed(PipelineError)
        case hung
    }

    /// One request, cancelled and counted as hung if it runs past `hang` seconds.
    static func runOne(_ driver: ClusterDriver, _ request: PipelineRequest, hang: Double) async -> Outcome {
        await withTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                var tokens: [Int32] = []
                for await event in driver.events(request) {
                    switch event {
                    case let .token(token): tokens.append(token.tokenID)
                    case .done: return .finished(tokens)
                    case let .failed(error): return .failed(error)
                    }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(hang))
                return Task.isCancelled ? nil : .hung
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .hung
        }
    }
}
