import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PipelineClient
import Sampling
import StarStream
import Tokenizer

/// How a gateway serves.
public struct GatewayConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// When not empty, every `/v1` request needs `Authorization: Bearer <one of them>`.
    public var apiKeys: [String] = []
    /// Largest request body.
    public var maxBodyBytes = 4 << 20
    /// Sequences that run at once (0: the cluster's `max_sequences`, from the route plan).
    public var maxInFlight = 8
    /// Requests that wait for a slot before new ones get a 429.
    public var maxQueued = 64

    public init() {}
}

/// The OpenAI-compatible HTTP API over a cluster: `POST /v1/chat/completions` and
/// `/v1/completions` (streamed as server-sent events or not), `GET /v1/models`, `/health` and
/// `/metrics`. It keeps no cluster state: the hub has the plan, the backend the connections.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let backend: InferenceBackend
    public let metrics: GatewayMetrics
    let queue: RequestQueue
    let logger: Logger

    public init(configuration: GatewayConfiguration, backend: InferenceBackend, logger: Logger) {
        self.configuration = configuration
        self.backend = backend
        self.logger = logger
        metrics = GatewayMetrics()
        queue = RequestQueue(limit: configuration.maxInFlight, maxWaiting: configuration.maxQueued)
    }

    /// The routes, for `Application` (and for tests through HummingbirdTesting).
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ in await self.health() }
        router.get("/metrics") { _, _ in await self.metricsPage() }
        router.get("/v1/models") { request, _ in await self.guarded(request) { try await self.models() } }
        router.post("/v1/chat/completions") { request, _ in await self.guarded(request) { try await self.complete(request, chat: true) } }
        router.post("/v1/completions") { request, _ in await self.guarded(request) { try await self.complete(request, chat: false) } }
        return router
    }

    /// Serves on the configured address until the task is cancelled; `onListening` gets the port.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let app = Application(router: router(), configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                                                      serverName: "pangalactic"),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) }, logger: logger)
        try await app.run()
    }

    // MARK: Plumbing

    static func json(_ status: Int, _ value: Any, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: jsonText(value))))
    }

    func errorResponse(_ e: APIError) -> Response {
        metrics.error(e.type)
        var headers: HTTPFields = [:]
        if e.status == 429 { headers[.retryAfter] = "1" }
        return Self.json(e.status, e.json, headers: headers)
    }

    /// API keys, then the handler; every error becomes OpenAI's error shape.
    private func guarded(_ request: Request, _ body: () async throws -> Response) async -> Response {
        if !configuration.apiKeys.isEmpty {
            let given = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
            guard let given, configuration.apiKeys.contains(where: { Self.constantTimeEqual($0, given) }) else {
                return errorResponse(.unauthorized(given == nil ? "Missing API key: send Authorization: Bearer <key>" : "Incorrect API key provided"))
            }
        }
        do {
            return try await body()
        } catch let e as APIError {
            return errorResponse(e)
        } catch {
            return errorResponse(.server("\(error)"))
        }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for i in 0 ..< max(x.count, y.count) { difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return difference == 0
    }

    // MARK: Small endpoints

    func health() async -> Response {
        let h = await backend.health()
        return Self.json(h.ready ? 200 : 503, ["status": h.ready ? "ok" : "unavailable", "reason": h.reason])
    }

    func metricsPage() async -> Response {
        metrics.nodes(await backend.cluster())
        metrics.queue(depth: queue.waiting, inFlight: queue.inFlight)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
    }

    func models() async throws -> Response {
        let model = try await backend.model()
        return Self.json(200, ["object": "list", "data": [["id": model.id, "object": "model", "created": model.created, "owned_by": "pangalactic"]]])
    }

    // MARK: Completions

    func complete(_ request: Request, chat: Bool) async throws -> Response {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError.invalid("Content-Type must be application/json, got \(type)")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch {
            throw APIError.tooLarge(configuration.maxBodyBytes)
        }
        let parsed = try CompletionRequest.parse(Array(buffer: body), chat: chat)
        let model = try await backend.model()
        guard parsed.model == model.id else { throw APIError.modelNotFound(parsed.model) }
        let prompt = try promptTokens(parsed, model)
        let context = model.contextLength
        guard prompt.count < context else {
            throw APIError.invalid("This model's maximum context length is \(context) tokens. However, your prompt has \(prompt.count) tokens.",
                                   param: chat ? "messages" : "prompt", code: "context_length_exceeded")
        }
        if let max = parsed.maxTokens, prompt.count + max > context {
            throw APIError.invalid("This model's maximum context length is \(context) tokens. However, you requested \(prompt.count + max) tokens " +
                "(\(prompt.count) in the prompt, \(max) for the completion).", param: "max_tokens", code: "context_length_exceeded")
        }
        let maxTokens = parsed.maxTokens ?? (context - prompt.count)
        let requests = pipelineRequests(parsed, prompt: prompt, maxTokens: maxTokens, model: model)
        try await queue.acquire(requests.count)
        metrics.queue(depth: queue.waiting, inFlight: queue.inFlight)
        metrics.requestStarted(promptTokens: prompt.count)
        let run = CompletionRun(requests: requests, stops: parsed.stop, tokenizer: model.front.tokenizer, backend: backend, metrics: metrics) {
            [queue, metrics] in
            queue.release(requests.count)
            metrics.queue(depth: queue.waiting, inFlight: queue.inFlight)
        }
        let reply = Reply(chat: chat, id: (chat ? "chatcmpl-" : "cmpl-") + Self.randomID(), created: Int(Date().timeIntervalSince1970),
                          model: model.id, promptTokens: prompt.count, logprobs: parsed.logprobs, n: requests.count)
        if parsed.stream {
            run.keepAlive(every: 15)
            return streamed(run, reply, includeUsage: parsed.includeUsage)
        }
        return try await collected(run, reply)
    }

    func promptTokens(_ r: CompletionRequest, _ model: ServedModel) throws(APIError) -> [Int32] {
        switch r.input {
        case let .chat(messages):
            do { return model.front.tokenize(try model.front.renderChat(messages)) } catch {
                throw APIError.invalid("the conversation cannot be rendered with the model's chat template: \(error)", param: "messages")
            }
        case let .text(text):
            return model.front.tokenize(text)
        case let .tokens(ids):
            let vocabulary = model.front.tokenizer.vocabularySize
            if let bad = ids.first(where: { $0 < 0 || Int($0) >= vocabulary }) {
                throw APIError.invalid("token id \(bad) is outside the vocabulary of \(vocabulary)", param: "prompt")
            }
            return ids
        }
    }

    func pipelineRequests(_ r: CompletionRequest, prompt: [Int32], maxTokens: Int, model: ServedModel) -> [PipelineRequest] {
        let base = r.seed ?? UInt64.random(in: 0 ... UInt64.max)
        return (0 ..< r.n).map { i in
            let sampling = SamplingParameters(temperature: r.temperature, topK: r.topK, topP: r.topP, minP: r.minP,
                                              repetitionPenalty: r.repetitionPenalty, frequencyPenalty: r.frequencyPenalty,
                                              presencePenalty: r.presencePenalty, seed: base &+ UInt64(i))
            return PipelineRequest(prompt: prompt, maxNewTokens: maxTokens, sampling: WireSampling(sampling),
                                   stopTokens: model.front.tokenizer.endOfGenerationIDs,
                                   history: Array(prompt.suffix(sampling.penaltyLastN)), logprobs: r.logprobs, topLogprobs: r.topLogprobs)
        }
    }

    static func randomID() -> String {
        let digits = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0 ..< 24).map { _ in digits[Int.random(in: 0 ..< digits.count)] })
    }

    /// Server-sent events: a chunk per piece of text, a last chunk per choice with its
    /// finish_reason, the usage chunk when asked, then `[DONE]`. A failure after the stream
    /// began is an `error` event, then `[DONE]`. A client that goes away cancels every choice.
    func streamed(_ run: CompletionRun, _ reply: Reply, includeUsage: Bool) -> Response {
        let metrics = self.metrics
        let body = ResponseBody { writer in
            do {
                if reply.chat {
                    for i in 0 ..< reply.n {
                        try await writer.write(ByteBuffer(string: Reply.event(reply.chunk(i, delta: ["role": "assistant", "content": ""]))))
                    }
                }
                for await output in run.outputs {
                    switch output {
                    case let .text(i, text, logprobs):
                        try await writer.write(ByteBuffer(string: Reply.event(reply.chunk(i, text: text, logprobs: logprobs))))
                    case let .finished(i, reason):
                        try await writer.write(ByteBuffer(string: Reply.event(reply.chunk(i, finish: reason))))
                    case let .failed(error):
                        metrics.error(error.type)
                        try await writer.write(ByteBuffer(string: Reply.event(error.json)))
                        run.cancel()
                    case .keepAlive:
                        try await writer.write(ByteBuffer(string: ": ping\n\n"))
                    }
                }
                if includeUsage { try await writer.write(ByteBuffer(string: Reply.event(reply.usageChunk(run.completionTokens)))) }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            } catch {
                // The client went away: stop every choice, so each node frees its cache.
                metrics.error("disconnect")
                run.cancel()
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// The whole answer at once.
    func collected(_ run: CompletionRun, _ reply: Reply) async throws -> Response {
        var texts = [String](repeating: "", count: reply.n)
        var logprobs = [[TokenLogprob]](repeating: [], count: reply.n)
        var reasons = [String?](repeating: nil, count: reply.n)
        for await output in run.outputs {
            switch output {
            case let .text(i, text, lp):
                texts[i] += text
                logprobs[i] += lp
            case let .finished(i, reason):
                reasons[i] = reason
            case let .failed(error):
                run.cancel()
                throw error
            case .keepAlive:
                break
            }
        }
        return Self.json(200, reply.complete(texts: texts, logprobs: logprobs, reasons: reasons, completionTokens: run.completionTokens))
    }
}

extension HTTPField.Name {
    static let retryAfter = Self("Retry-After")!
}
