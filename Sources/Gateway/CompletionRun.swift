import Foundation
import PipelineClient
import Sampling
import StarStream
import Synchronization
import Tokenizer

/// A token's log-probability as OpenAI reports it, with its most likely alternatives.
public struct TokenLogprob: Sendable {
    public var text: String
    public var bytes: [UInt8]
    public var logprob: Float
    public var top: [(text: String, bytes: [UInt8], logprob: Float)]
}

/// What a run produces, per choice, in order: text as it becomes final (after detokenizing
/// whole UTF-8 characters and holding back what could start a stop string), then one finish.
public enum RunOutput: Sendable {
    case text(choice: Int, String, logprobs: [TokenLogprob])
    case finished(choice: Int, reason: String)
    case failed(APIError)
    /// Nothing arrived for a while (a failover, a long prefill): streams send an SSE comment,
    /// so proxies and clients do not time the connection out.
    case keepAlive
}

/// One request on the cluster: `n` choices, each its own sequence (choice i draws with seed +
/// i), turned from tokens into final text as the tokens arrive. Tokens are handled on the
/// connection's event loop; the HTTP side reads `outputs`.
final class CompletionRun: Sendable {
    private struct Choice {
        var detokenizer: StreamingDetokenizer
        var stop: StopMatcher
        var tokens = 0
        var finished = false
        var lastTokenAt: Int64 = 0
        var request: RunningRequest?
    }

    let outputs: AsyncStream<RunOutput>
    private let continuation: AsyncStream<RunOutput>.Continuation
    private let choices: Mutex<[Choice]>
    private let remaining: Atomic<Int>
    private let tokenizer: Tokenizer
    private let metrics: GatewayMetrics
    private let started: Int64
    private let firstToken = Atomic<Bool>(false)

    /// Completion tokens of every choice so far (for `usage`).
    var completionTokens: Int { choices.withLock { $0.reduce(0) { $0 + $1.tokens } } }

    /// The keep-alive task, cancelled when the run ends.
    private final class Ticker: Sendable {
        let task = Mutex<Task<Void, Never>?>(nil)
    }
    private let ticker = Ticker()

    /// `onEnd` runs once, when every choice has finished or the run was cancelled, whether or
    /// not anyone read the outputs (the admission slots are given back there).
    init(requests: [PipelineRequest], stops: [String], tokenizer: Tokenizer, backend: InferenceBackend, metrics: GatewayMetrics,
         onEnd: @escaping @Sendable () -> Void) {
        (outputs, continuation) = AsyncStream.makeStream(of: RunOutput.self)
        let ticker = self.ticker
        continuation.onTermination = { _ in
            ticker.task.withLock { $0?.cancel() }
            onEnd()
        }
        self.tokenizer = tokenizer
        self.metrics = metrics
        started = Self.nanoseconds()
        remaining = Atomic(requests.count)
        choices = Mutex(requests.map { _ in Choice(detokenizer: StreamingDetokenizer(tokenizer: tokenizer), stop: StopMatcher(stops: stops)) })
        for (i, request) in requests.enumerated() {
            let running = backend.submit(request) { [self] event in handle(event, choice: i) }
            let finishedAlready = choices.withLock { c -> Bool in
                c[i].request = running
                return c[i].finished
            }
            if finishedAlready { running.cancel() }
        }
    }

    /// Yields `keepAlive` every `seconds` until the run ends.
    func keepAlive(every seconds: Double) {
        let continuation = self.continuation
        ticker.task.withLock { t in
            t = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
                    if case .terminated = continuation.yield(.keepAlive) { return }
                }
            }
        }
    }

    /// Stops every choice still running (the client went away).
    func cancel() {
        let running = choices.withLock { c -> [RunningRequest] in
            var out: [RunningRequest] = []
            for i in c.indices where !c[i].finished {
                c[i].finished = true
                if let r = c[i].request { out.append(r) }
            }
            return out
        }
        for r in running { r.cancel() }
        continuation.finish()
    }

    private func handle(_ event: PipelineEvent, choice i: Int) {
        switch event {
        case let .token(token):
            let now = Self.nanoseconds()
            var logprobs: [TokenLogprob] = []
            let (text, stopped, gap, running) = choices.withLock { c -> (String, Bool, Int64?, RunningRequest?) in
                guard !c[i].finished else { return ("", false, nil, nil) }
                c[i].tokens += 1
                let gap = c[i].lastTokenAt > 0 ? now - c[i].lastTokenAt : nil
                c[i].lastTokenAt = now
                let piece = tokenizer.isEndOfGeneration(token.tokenID) ? c[i].detokenizer.finish() : c[i].detokenizer.append(token.tokenID)
                let text = c[i].stop.feed(piece)
                if c[i].stop.stopped {
                    c[i].finished = true
                    return (text, true, gap, c[i].request)
                }
                return (text, false, gap, nil)
            }
            metrics.tokenGenerated()
            if !firstToken.exchange(true, ordering: .relaxed) { metrics.firstToken(after: now - started) }
            if let gap { metrics.interToken(gap) }
            if let logprob = token.logprob, !tokenizer.isEndOfGeneration(token.tokenID) {
                logprobs.append(TokenLogprob(text: piece(token.tokenID), bytes: tokenizer.tokenBytes(token.tokenID, renderSpecial: false),
                                             logprob: logprob,
                                             top: token.alternatives.map { (piece($0.tokenID), tokenizer.tokenBytes($0.tokenID, renderSpecial: false), $0.logprob) }))
            }
            if !text.isEmpty || !logprobs.isEmpty { continuation.yield(.text(choice: i, text, logprobs: logprobs)) }
            if stopped {
                running?.cancel()
                finish(i, "stop")
            }
        case let .done(cause, _):
            let tail = choices.withLock { c -> String? in
                guard !c[i].finished else { return nil }
                c[i].finished = true
                return c[i].stop.feed(c[i].detokenizer.finish()) + c[i].stop.finish()
            }
            guard let tail else { return }
            if !tail.isEmpty { continuation.yield(.text(choice: i, tail, logprobs: [])) }
            finish(i, cause == .stop || cause == .cancelled ? "stop" : "length")
        case let .failed(error):
            let first = choices.withLock { c -> Bool in
                guard !c[i].finished else { return false }
                c[i].finished = true
                return true
            }
            guard first else { return }
            continuation.yield(.failed(Self.apiError(error)))
            finish(i, nil)
        }
    }

    private func piece(_ id: Int32) -> String {
        String(decoding: tokenizer.tokenBytes(id, renderSpecial: false), as: UTF8.self)
    }

    private func finish(_ i: Int, _ reason: String?) {
        if let reason { continuation.yield(.finished(choice: i, reason: reason)) }
        if remaining.subtract(1, ordering: .relaxed).newValue == 0 { continuation.finish() }
    }

    /// A cluster failure as the client sees it: a bad request stays a 400; a cluster that cannot
    /// serve the model is a 503; the rest are server errors.
    static func apiError(_ error: PipelineError) -> APIError {
        switch error {
        case let .remote(code, message) where code == StarStreamErrorCode.badRequest || code == StarStreamErrorCode.tokenOutOfRange:
            return .invalid(message)
        case let .notDeployed(message):
            return .unavailable(message)
        case let .invalidRequest(message):
            return .invalid(message)
        default:
            return .server("the cluster could not complete the request: \(error)")
        }
    }

    static func nanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
