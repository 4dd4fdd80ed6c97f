import Foundation
import Tokenizer

/// What a completion request asks for, checked field by field: every bad value is a 400 that
/// names the parameter, before anything reaches the cluster.
public struct CompletionRequest: Sendable {
    /// The prompt: a conversation (chat), text, or token ids (text completions).
    public enum Input: Sendable, Equatable {
        case chat([ChatMessage])
        case text(String)
        case tokens([Int32])
    }

    public var model: String
    public var input: Input
    /// Nil: as many as the context allows.
    public var maxTokens: Int?
    public var temperature: Float = 1
    public var topP: Float = 1
    public var topK: Int = 0
    public var minP: Float = 0
    public var seed: UInt64?
    public var n: Int = 1
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    /// Not in OpenAI's API; llama.cpp's server and vLLM take it too.
    public var repetitionPenalty: Float = 1
    public var stop: [String] = []
    /// Chat: `logprobs: true`; text completions: `logprobs` ≥ 0.
    public var logprobs = false
    public var topLogprobs = 0
    public var stream = false
    public var includeUsage = false

    /// Most stop strings (OpenAI's limit).
    public static let maxStops = 4
    /// Most choices per request.
    public static let maxChoices = 16
    /// Longest stop string, in bytes.
    public static let maxStopBytes = 1024
    /// Most messages in a conversation.
    public static let maxMessages = 4096

    /// Parses a JSON body for `/v1/chat/completions` (`chat`) or `/v1/completions`.
    public static func parse(_ body: [UInt8], chat: Bool) throws(APIError) -> CompletionRequest {
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
                throw APIError.invalid("The request body must be a JSON object")
            }
            object = o
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.invalid("The request body is not valid JSON")
        }
        let f = Fields(object)
        guard let model = try f.string("model") else { throw APIError.invalid("you must provide a model parameter", param: "model") }
        let input: Input = chat ? .chat(try parseMessages(object["messages"])) : try parsePrompt(object["prompt"])
        var r = CompletionRequest(model: model, input: input)
        var maxTokens = try f.int("max_completion_tokens")
        if maxTokens == nil { maxTokens = try f.int("max_tokens") }
        if let maxTokens {
            guard maxTokens >= 1 else { throw APIError.invalid("max_tokens must be at least 1, got \(maxTokens)", param: "max_tokens") }
            r.maxTokens = maxTokens
        }
        if let t = try f.double("temperature") {
            guard (0 ... 2).contains(t) else { throw APIError.invalid("temperature must be within [0, 2], got \(t)", param: "temperature") }
            r.temperature = Float(t)
        }
        if let p = try f.double("top_p") {
            guard p > 0, p <= 1 else { throw APIError.invalid("top_p must be within (0, 1], got \(p)", param: "top_p") }
            r.topP = Float(p)
        }
        if let k = try f.int("top_k") {
            guard k >= 0 else { throw APIError.invalid("top_k must not be negative, got \(k)", param: "top_k") }
            r.topK = k
        }
        if let m = try f.double("min_p") {
            guard (0 ... 1).contains(m) else { throw APIError.invalid("min_p must be within [0, 1], got \(m)", param: "min_p") }
            r.minP = Float(m)
        }
        if let seed = try f.int("seed") { r.seed = UInt64(bitPattern: Int64(seed)) }
        if let n = try f.int("n") {
            guard (1 ... maxChoices).contains(n) else { throw APIError.invalid("n must be within 1...\(maxChoices), got \(n)", param: "n") }
            r.n = n
        }
        for (key, keyPath) in [("presence_penalty", \CompletionRequest.presencePenalty), ("frequency_penalty", \.frequencyPenalty)] {
            if let v = try f.double(key) {
                guard (-2 ... 2).contains(v) else { throw APIError.invalid("\(key) must be within [-2, 2], got \(v)", param: key) }
                r[keyPath: keyPath] = Float(v)
            }
        }
        if let v = try f.double("repetition_penalty") {
            guard v > 0, v <= 10 else { throw APIError.invalid("repetition_penalty must be within (0, 10], got \(v)", param: "repetition_penalty") }
            r.repetitionPenalty = Float(v)
        }
        r.stop = try parseStop(object["stop"])
        if chat {
            r.logprobs = try f.bool("logprobs") ?? false
            if let k = try f.int("top_logprobs") {
                guard (0 ... 20).contains(k) else { throw APIError.invalid("top_logprobs must be within 0...20, got \(k)", param: "top_logprobs") }
                guard r.logprobs else { throw APIError.invalid("top_logprobs needs logprobs: true", param: "top_logprobs") }
                r.topLogprobs = k
            }
        } else if let k = try f.int("logprobs") {
            guard (0 ... 20).contains(k) else { throw APIError.invalid("logprobs must be within 0...20, got \(k)", param: "logprobs") }
            r.logprobs = true
            r.topLogprobs = k
        }
        if try f.bool("echo") == true { throw APIError.invalid("echo is not supported", param: "echo") }
        r.stream = try f.bool("stream") ?? false
        if let options = object["stream_options"], !(options is NSNull) {
            guard r.stream else { throw APIError.invalid("stream_options is only allowed with stream: true", param: "stream_options") }
            guard let o = options as? [String: Any] else { throw APIError.invalid("stream_options must be an object", param: "stream_options") }
            r.includeUsage = try Fields(o, prefix: "stream_options.").bool("include_usage") ?? false
        }
        return r
    }

    static func parseMessages(_ value: Any?) throws(APIError) -> [ChatMessage] {
        guard let value, !(value is NSNull) else { throw APIError.invalid("messages is required", param: "messages") }
        guard let list = value as? [Any] else { throw APIError.invalid("messages must be an array", param: "messages") }
        guard !list.isEmpty else { throw APIError.invalid("messages must not be empty", param: "messages") }
        guard list.count <= maxMessages else { throw APIError.invalid("more than \(maxMessages) messages", param: "messages") }
        var messages: [ChatMessage] = []
        for (i, item) in list.enumerated() {
            let param = "messages[\(i)]"
            guard let m = item as? [String: Any] else { throw APIError.invalid("\(param) must be an object", param: param) }
            guard let role = m["role"] as? String else { throw APIError.invalid("\(param).role must be a string", param: "\(param).role") }
            guard ["system", "developer", "user", "assistant", "tool"].contains(role) else {
                throw APIError.invalid("\(param).role '\(role)' is not one of system, developer, user, assistant, tool", param: "\(param).role")
            }
            messages.append(ChatMessage(role: role == "developer" ? "system" : role, content: try parseContent(m["content"], param: "\(param).content")))
        }
        return messages
    }

    /// A string, null (an assistant turn without text), or a list of text parts.
    static func parseContent(_ value: Any?, param: String) throws(APIError) -> String {
        switch value {
        case let s as String:
            return s
        case nil, is NSNull:
            return ""
        case let parts as [Any]:
            var text = ""
            for part in parts {
                guard let p = part as? [String: Any], p["type"] as? String == "text", let t = p["text"] as? String else {
                    throw APIError.invalid("\(param) parts must be {\"type\": \"text\", \"text\": ...}", param: param)
                }
                text += t
            }
            return text
        default:
            throw APIError.invalid("\(param) must be a string or a list of text parts", param: param)
        }
    }

    static func parsePrompt(_ value: Any?) throws(APIError) -> Input {
        switch value {
        case let s as String:
            guard !s.isEmpty else { throw APIError.invalid("prompt must not be empty", param: "prompt") }
            return .text(s)
        case let list as [Any]:
            if list.count == 1, let s = list[0] as? String { return try parsePrompt(s) }
            guard !list.isEmpty else { throw APIError.invalid("prompt must not be empty", param: "prompt") }
            var tokens: [Int32] = []
            tokens.reserveCapacity(list.count)
            for item in list {
                guard let n = item as? NSNumber, !Fields.isBool(n), let v = Int32(exactly: n.doubleValue) else {
                    throw APIError.invalid("prompt must be a string or an array of token ids", param: "prompt")
                }
                tokens.append(v)
            }
            return .tokens(tokens)
        case nil, is NSNull:
            throw APIError.invalid("prompt is required", param: "prompt")
        default:
            throw APIError.invalid("prompt must be a string or an array of token ids", param: "prompt")
        }
    }

    static func parseStop(_ value: Any?) throws(APIError) -> [String] {
        switch value {
        case nil, is NSNull:
            return []
        case let s as String:
            guard !s.isEmpty, s.utf8.count <= maxStopBytes else { throw APIError.invalid("stop strings must be 1 to \(maxStopBytes) bytes", param: "stop") }
            return [s]
        case let list as [Any]:
            guard list.count <= maxStops else { throw APIError.invalid("stop takes at most \(maxStops) strings, got \(list.count)", param: "stop") }
            return try list.map { item throws(APIError) in
                guard let s = item as? String, !s.isEmpty, s.utf8.count <= maxStopBytes else {
                    throw APIError.invalid("stop must hold non-empty strings of at most \(maxStopBytes) bytes", param: "stop")
                }
                return s
            }
        default:
            throw APIError.invalid("stop must be a string or an array of strings", param: "stop")
        }
    }
}

/// Typed access to a JSON object's optional fields; a present field of the wrong type is a 400.
struct Fields {
    let object: [String: Any]
    let prefix: String

    init(_ object: [String: Any], prefix: String = "") {
        self.object = object
        self.prefix = prefix
    }

    /// JSON `true`/`false` arrive as NSNumber too; their type code tells them apart.
    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    private func present(_ key: String) -> Any? {
        guard let v = object[key], !(v is NSNull) else { return nil }
        return v
    }

    func string(_ key: String) throws(APIError) -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v as? String else { throw APIError.invalid("\(prefix)\(key) must be a string", param: prefix + key) }
        return s
    }

    func bool(_ key: String) throws(APIError) -> Bool? {
        guard let v = present(key) else { return nil }
        guard let n = v as? NSNumber, Self.isBool(n) else { throw APIError.invalid("\(prefix)\(key) must be a boolean", param: prefix + key) }
        return n.boolValue
    }

    func double(_ key: String) throws(APIError) -> Double? {
        guard let v = present(key) else { return nil }
        guard let n = v as? NSNumber, !Self.isBool(n), n.doubleValue.isFinite else {
            throw APIError.invalid("\(prefix)\(key) must be a number", param: prefix + key)
        }
        return n.doubleValue
    }

    func int(_ key: String) throws(APIError) -> Int? {
        guard let v = present(key) else { return nil }
        guard let n = v as? NSNumber, !Self.isBool(n), let i = Int(exactly: n.doubleValue), abs(i) <= 1 << 53 else {
            throw APIError.invalid("\(prefix)\(key) must be an integer", param: prefix + key)
        }
        return i
    }
}
