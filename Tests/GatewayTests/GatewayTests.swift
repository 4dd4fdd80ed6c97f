import Foundation
import GGUF
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PipelineClient
import StarStream
import TestSupport
import Testing
import Tokenizer

/// The OpenAI API over a fake cluster: shapes, streaming, validation, limits and metrics
/// (shared/docs/openai-conformance.md). The real client against a real cluster is
/// `scripts/test-openai`.
struct GatewayTests {
    static func gateway(_ backend: FakeBackend, _ configure: (inout GatewayConfiguration) -> Void = { _ in }) -> Gateway {
        var c = GatewayConfiguration()
        c.maxInFlight = 4
        c.maxQueued = 4
        configure(&c)
        return Gateway(configuration: c, backend: backend, logger: quietLogger)
    }

    static func post(_ client: some TestClientProtocol, _ path: String, _ body: String, headers: HTTPFields = [.contentType: "application/json"])
        async throws -> (status: Int, body: String, headers: HTTPFields) {
        try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body)) { r in
            (Int(r.status.code), String(buffer: r.body), r.headers)
        }
    }

    static func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    /// The JSON payloads of a server-sent event stream, checking its framing on the way.
    static func events(_ text: String) -> [[String: Any]] {
        var out: [[String: Any]] = []
        let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        #expect(events.last == "data: [DONE]", "the stream ends with [DONE]")
        for e in events.dropLast() {
            #expect(e.hasPrefix("data: "), "every event is a data line: \(e)")
            let object = Self.object(String(e.dropFirst(6)))
            #expect(!object.isEmpty, "every data line but the last is a JSON object: \(e)")
            out.append(object)
        }
        return out
    }

    @Test func chatCompletionHasOpenAIsShapeAndUsage() async throws {
        let backend = try FakeBackend()
        let app = Application(router: Self.gateway(backend).router())
        try await app.test(.router) { client in
            let r = try await Self.post(client, "/v1/chat/completions",
                                        #"{"model": "tiny", "messages": [{"role": "user", "content": "HI"}], "max_tokens": 5, "temperature": 0}"#)
            #expect(r.status == 200)
            let o = Self.object(r.body)
            #expect(o["object"] as? String == "chat.completion")
            #expect((o["id"] as? String)?.hasPrefix("chatcmpl-") == true)
            let choice = try #require((o["choices"] as? [[String: Any]])?.first)
            #expect((choice["message"] as? [String: Any])?["content"] as? String == "HELLO")
            #expect((choice["message"] as? [String: Any])?["role"] as? String == "assistant")
            #expect(choice["finish_reason"] as? String == "length")
            let usage = try #require(o["usage"] as? [String: Int])
            #expect(usage["completion_tokens"] == 5)
            #expect(usage["total_tokens"] == (usage["prompt_tokens"] ?? 0) + 5)
            // The request reached the cluster greedy, with the model's end-of-generation tokens.
            let sent = try #require(backend.submitted.withLock { $0.first })
            #expect(sent.sampling.temperature == 0 && sent.maxNewTokens == 5 && sent.stopTokens == [2])
        }
    }

    @Test func streamingSendsRoleFirstOneFinishThenUsageAndDone() async throws {
        let backend = try FakeBackend()
        let app = Application(router: Self.gateway(backend).router())
        try await app.test(.router) { client in
            let r = try await Self.post(client, "/v1/chat/completions", #"""
                {"model": "tiny", "messages": [{"role": "user", "content": "HI"}], "max_tokens": 6, "temperature": 0,
                 "stream": true, "stream_options": {"include_usage": true}}
                """#)
            #expect(r.status == 200)
            #expect(r.headers[.contentType] == "text/event-stream")
            let chunks = Self.events(r.body)
            let ids = Set(chunks.compactMap { $0["id"] as? String })
            #expect(ids.count == 1)
            #expect(Set(chunks.compactMap { $0["created"] as? Int }).count == 1)
            #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
            let first = try #require((chunks.first?["choices"] as? [[String: Any]])?.first)
            #expect((first["delta"] as? [String: Any])?["role"] as? String == "assistant")
            var text = ""
            var finishes: [String] = []
            for c in chunks.dropLast() {
                let choice = try #require((c["choices"] as? [[String: Any]])?.first)
                text += (choice["delta"] as? [String: Any])?["content"] as? String ?? ""
                if let f = choice["finish_reason"] as? String { finishes.append(f) }
                #expect(c["usage"] == nil || c["usage"] is NSNull)
            }
            #expect(text == "HELLOW")
            #expect(finishes == ["length"])
            let usage = try #require(chunks.last?["usage"] as? [String: Int])
            #expect((chunks.last?["choices"] as? [Any])?.isEmpty == true)
            #expect(usage["completion_tokens"] == 6)
        }
    }

    @Test func stopStringsAreTrimmedEvenAcrossTokensAndStopTheSequence() async throws {
        let backend = try FakeBackend()
        let app = Application(router: Self.gateway(backend).router())
        try await app.test(.router) { client in
            // "HELLOWORLD…": "LOW" spans three tokens.
            let r = try await Self.post(client, "/v1/completions",
                                        #"{"model": "tiny", "prompt": "HI", "max_tokens": 20, "temperature": 0, "stop": ["XYZ", "LOW"]}"#)
            let choice = try #require((Self.object(r.body)["choices"] as? [[String: Any]])?.first)
            #expect(choice["text"] as? String == "HEL")
            #expect(choice["finish_reason"] as? String == "stop")
            try await waitFor("the stopped sequence to be cancelled", seconds: 5) {
                backend.requests.withLock { $0.first?.cancelled.load(ordering: .relaxed) } == true
            }
            // Streamed, the held-back text never leaks out.
            let s = try await Self.post(client, "/v1/completions",
                                        #"{"model": "tiny", "prompt": "HI", "max_tokens": 20, "temperature": 0, "stop": "WORLD", "stream": true}"#)
            let text = Self.events(s.body).compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }.joined()
            #expect(text == "HELLO")
        }
    }

    @Test func choicesAndSeeds() async throws {
        let backend = try FakeBackend()
        let app = Application(router: Self.gateway(backend).router())
        try await app.test(.router) { client in
            let body = #"{"model": "tiny", "prompt": "HI", "max_tokens": 4, "temperature": 0.8, "seed": 5, "n": 2}"#
            let a = Self.object(try await Self.post(client, "/v1/completions", body).body)
            let b = Self.object(try await Self.post(client, "/v1/completions", body).body)
            let texts = { (o: [String: Any]) in ((o["choices"] as? [[String: Any]]) ?? []).sorted { ($0["index"] as? Int ?? 0) < ($1["index"] as? Int ?? 0) }
                .map { $0["text"] as? String ?? "" } }
            #expect(texts(a).count == 2)
            #expect(texts(a)[0] != texts(a)[1], "each choice draws with its own seed")
            #expect(texts(a) == texts(b), "the same seed gives the same text")
            #expect(backend.submitted.withLock { $0.prefix(2).map(\.sampling.seed) } == [5, 6])
        }
    }

    @Test func logprobsHaveOpenAIsShapes() async throws {
        let backend = try FakeBackend()
        let app = Application(router: Self.gateway(backend).router())
        try await app.test(.router) { client in
            let chat = Self.object(try await Self.post(client, "/v1/chat/completions", #"""
                {"model": "tiny", "messages": [{"role": "user", "content": "HI"}], "max_tokens": 3, "temperature": 0, "logprobs": true, "top_logprobs": 2}
                """#).body)
            let content = try #require(((chat["choices"] as? [[String: Any]])?.first?["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
            #expect(content.count == 3)
            #expect(content.first?["token"] as? String == "H")
            #expect((content.first?["top_logprobs"] as? [Any])?.count == 2)
            #expect(backend.submitted.withLock { $0.first?.topLogprobs } == 2)
            let text = Self.object(try await Self.post(client, "/v1/completions",
                                                       #"{"model": "tiny", "prompt": "HI", "max_tokens": 2, "temperature": 0, "logprobs": 1}"#).body)
            let lp = try #require((text["choices"] as? [[String: Any]])?.first?["logprobs"] as? [String: Any])
            #expect(lp["tokens"] as? [String] == ["H", "E"])
            #expect((lp["token_logprobs"] as? [Double])?.count == 2)
            #expect(lp["text_offset"] as? [Int] == [0, 1])
        }
    }

    /// shared/docs/openai-conformance.md: each gets a 4xx in OpenAI's error shape, and a valid
    /// request still succeeds afterwards.
    @Test func badInputGetsA4xxAndTheServerGoesOnServing() async throws {
        let backend = try FakeBackend()
        let app = Application(router: Self.gateway(backend) { $0.maxBodyBytes = 4096 }.router())
        let chat = "/v1/chat/completions", text = "/v1/completions"
        let cases: [(String, String, Int, String?)] = [
            (chat, #"{"model": "tiny"}"#, 400, "messages"),
            (chat, #"{"model": "tiny", "messages": null}"#, 400, "messages"),
            (chat, #"{"model": "tiny", "messages": "hello"}"#, 400, "messages"),
            (chat, #"{"model": "tiny", "messages": [123]}"#, 400, "messages[0]"),
            (chat, #"{"model": "tiny", "messages": [{}]}"#, 400, "messages[0].role"),
            (chat, #"{"model": "tiny", "messages": [{"role": 5, "content": "A"}]}"#, 400, "messages[0].role"),
            (chat, #"{"model": "tiny", "messages": [{"role": "wizard", "content": "A"}]}"#, 400, "messages[0].role"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": 7}]}"#, 400, "messages[0].content"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "max_tokens": 0}"#, 400, "max_tokens"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "max_tokens": -3}"#, 400, "max_tokens"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "max_tokens": 100000}"#, 400, "max_tokens"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "temperature": -1}"#, 400, "temperature"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "temperature": 1e30}"#, 400, "temperature"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "top_p": 1.5}"#, 400, "top_p"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "top_k": -1}"#, 400, "top_k"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "n": 0}"#, 400, "n"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "logprobs": true, "top_logprobs": 21}"#, 400, "top_logprobs"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "stop": ["a", "b", "c", "d", "e"]}"#, 400, "stop"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "stop": [1]}"#, 400, "stop"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "stream_options": {"include_usage": true}}"#, 400, "stream_options"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A"}], "stream": "yes"}"#, 400, "stream"),
            (chat, #"{"model": "nope", "messages": [{"role": "user", "content": "A"}]}"#, 404, "model"),
            (chat, #"{"messages": [{"role": "user", "content": "A"}]}"#, 400, "model"),
            (chat, #"{"model": "tiny", "messages": [{"role": "user", "content": "A\u0000B"}], "max_tokens": 1}"#, 200, nil),
            (text, #"{"model": "tiny", "prompt": ""}"#, 400, "prompt"),
            (text, #"{"model": "tiny", "prompt": [99999]}"#, 400, "prompt"),
            (text, #"{"model": "tiny", "prompt": [-1]}"#, 400, "prompt"),
            (text, #"{"model": "tiny", "prompt": "A", "logprobs": 21}"#, 400, "logprobs"),
            (text, #"{"model": "tiny", "prompt": {"x": 1}}"#, 400, "prompt"),
            (text, "{not json", 400, nil),
            (text, "[]", 400, nil),
            (text, #"{"model": "tiny", "prompt": "\#(String(repeating: "A", count: 5000))"}"#, 413, nil),
        ]
        try await app.test(.router) { client in
            for (path, body, status, param) in cases {
                let r = try await Self.post(client, path, body)
                #expect(r.status == status, "\(body.prefix(80)) → \(r.status) \(r.body.prefix(200))")
                if status >= 400 {
                    let error = try #require(Self.object(r.body)["error"] as? [String: Any], "error shape for \(body.prefix(60))")
                    #expect(error["message"] is String && error["type"] is String)
                    #expect(error.keys.contains("param") && error.keys.contains("code"))
                    if let param { #expect(error["param"] as? String == param, "\(body.prefix(80))") }
                }
            }
            // A wrong content type, then a valid request: still served.
            let wrong = try await Self.post(client, text, #"{"model": "tiny", "prompt": "A"}"#, headers: [.contentType: "text/plain"])
            #expect(wrong.status == 400)
            let ok = try await Self.post(client, text, #"{"model": "tiny", "prompt": "A", "max_tokens": 2}"#)
            #expect(ok.status == 200)
        }
    }

    @Test func aPromptLongerThanTheContextIsA400NamingBothNumbers() async throws {
        let backend = try FakeBackend(contextLength: 16)
        let app = Application(router: Self.gateway(backend).router())
        try await app.test(.router) { client in
            let r = try await Self.post(client, "/v1/completions",
                                        #"{"model": "tiny", "prompt": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "stream": true}"#)
            #expect(r.status == 400)
            let message = try #require((Self.object(r.body)["error"] as? [String: Any])?["message"] as? String)
            #expect(message.contains("16") && message.contains("26"))
        }
    }

    @Test func anErrorAfterTheStreamStartedIsAnErrorEventThenDone() async throws {
        let backend = try FakeBackend()
        backend.failure.withLock { $0 = (2, .remote(code: 199, message: "boom")) }
        let app = Application(router: Self.gateway(backend).router())
        try await app.test(.router) { client in
            let r = try await Self.post(client, "/v1/completions", #"{"model": "tiny", "prompt": "A", "max_tokens": 5, "stream": true}"#)
            #expect(r.status == 200)
            let events = Self.events(r.body)
            let error = try #require(events.last?["error"] as? [String: Any])
            #expect((error["message"] as? String)?.contains("boom") == true)
        }
    }

    @Test func apiKeysHealthModelsAndMetrics() async throws {
        let backend = try FakeBackend()
        let app = Application(router: Self.gateway(backend) { $0.apiKeys = ["sk-test"] }.router())
        try await app.test(.router) { client in
            let body = #"{"model": "tiny", "prompt": "A", "max_tokens": 1}"#
            let none = try await Self.post(client, "/v1/completions", body)
            #expect(none.status == 401)
            #expect((Self.object(none.body)["error"] as? [String: Any])?["type"] as? String == "authentication_error")
            let wrong = try await Self.post(client, "/v1/completions", body, headers: [.contentType: "application/json", .authorization: "Bearer nope"])
            #expect(wrong.status == 401)
            let right = try await Self.post(client, "/v1/completions", body, headers: [.contentType: "application/json", .authorization: "Bearer sk-test"])
            #expect(right.status == 200)
            let models = try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer sk-test"]) { Self.object(String(buffer: $0.body)) }
            #expect(models["object"] as? String == "list")
            #expect(((models["data"] as? [[String: Any]])?.first)?["id"] as? String == "tiny")
            #expect(try await client.execute(uri: "/health", method: .get) { $0.status.code } == 200)
            backend.ready.store(false, ordering: .relaxed)
            let sick = try await client.execute(uri: "/health", method: .get) { ($0.status.code, Self.object(String(buffer: $0.body))) }
            #expect(sick.0 == 503 && (sick.1["reason"] as? String)?.contains("starting") == true)
            let metrics = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            for name in ["pangalactic_ttft_seconds", "pangalactic_itl_seconds", "pangalactic_tokens_per_second", "pangalactic_queue_depth",
                         "pangalactic_in_flight_sequences", "pangalactic_errors_total", "pangalactic_node_up", "pangalactic_node_kv_bytes",
                         "pangalactic_node_hop_ms", "pangalactic_node_layers"] {
                #expect(metrics.contains(name), "\(name) in /metrics")
            }
            #expect(metrics.contains(#"pangalactic_errors_total{type="authentication_error"} 2"#))
        }
    }
}

struct AdmissionTests {
    @Test func theQueueAdmitsUpToItsLimitQueuesTheRestAndRefusesPastIt() async throws {
        let queue = RequestQueue(limit: 2, maxWaiting: 1)
        try await queue.acquire(2)
        let waiter = Task { try await queue.acquire(1) }
        try await waitFor("the second request to wait", seconds: 5) { queue.waiting == 1 }
        await #expect(throws: APIError.self) { try await queue.acquire(1) }
        queue.release(2)
        try await waiter.value
        #expect(queue.inFlight == 1 && queue.waiting == 0)
        // A waiter that is cancelled leaves the line.
        try await queue.acquire(1)
        let cancelled = Task { try await queue.acquire(1) }
        try await waitFor("the third request to wait", seconds: 5) { queue.waiting == 1 }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(queue.waiting == 0)
    }

    @Test func aFullQueueIsA429WithRetryAfter() async throws {
        let backend = try FakeBackend(pace: 0.05)
        let gateway = GatewayTests.gateway(backend) {
            $0.maxInFlight = 1
            $0.maxQueued = 0
        }
        let app = Application(router: gateway.router())
        // The router test client runs requests side by side (the live one would send them one
        // after another on its single connection).
        try await app.test(.router) { client in
            // The first request holds the only slot until the second has been refused, however
            // slowly a loaded machine runs the two.
            backend.held.store(true, ordering: .relaxed)
            let slow = Task { try await GatewayTests.post(client, "/v1/completions", #"{"model": "tiny", "prompt": "A", "max_tokens": 20}"#) }
            try await waitFor("the first request to run", seconds: 10) { backend.submitted.withLock { $0.count } == 1 }
            let refused = try await GatewayTests.post(client, "/v1/completions", #"{"model": "tiny", "prompt": "A", "max_tokens": 1}"#)
            backend.held.store(false, ordering: .relaxed)
            #expect(refused.status == 429)
            #expect(refused.headers[HTTPField.Name("Retry-After")!] == "1")
            #expect(try await slow.value.status == 200)
        }
    }
}

struct StopMatcherTests {
    @Test func stopStringsSplitAnywhereAreFoundAndNothingAfterThemLeaks() {
        for pieces in [["Hello wor", "ld!"], ["Hello w", "o", "r", "ld"], ["Hello world"], ["Hel", "lo", " ", "world", " again"]] {
            var m = StopMatcher(stops: ["world"])
            var out = ""
            for p in pieces { out += m.feed(p) }
            out += m.finish()
            #expect(out == "Hello ", "\(pieces)")
            #expect(m.stopped)
        }
        var m = StopMatcher(stops: ["abc", "xy"])
        #expect(m.feed("zzab") == "zz")
        #expect(m.feed("d") == "abd")
        #expect(m.feed("x") == "")
        #expect(m.finish() == "x")
        #expect(!m.stopped)
        // The earliest of several stop strings wins.
        var first = StopMatcher(stops: ["D", "END"])
        #expect(first.feed("AENDB") == "A")
        #expect(first.feed("more") == "")
        // Multi-byte characters stay whole.
        var u = StopMatcher(stops: ["é!"])
        #expect(u.feed("caf") + u.feed("é") + u.feed("!") + u.finish() == "caf")
    }
}

struct UntrustedTemplateTests {
    /// A GGUF's chat template is input from a stranger: one the parser refuses (here a
    /// 100,000-term chain) leaves the model loadable, with the generic chat format and a warning.
    @Test func aModelWhoseTemplateCannotBeParsedStillLoadsWithTheGenericFormat() throws {
        var writer = try TinyModel.writer(TinyModelSpec())
        writer.set("tokenizer.chat_template", .string("{{ " + Array(repeating: "1", count: 100_000).joined(separator: "+") + " }}"))
        let front = try TextFrontEnd(file: GGUFFile(bytes: writer.serialize()))
        #expect(front.chatTemplate == nil)
        #expect(front.templateWarning?.contains("generic chat format") == true)
        let text = try front.renderChat([ChatMessage(role: "user", content: "hi")])
        #expect(text == "user: hi\nassistant:")
    }
}
