import Foundation

/// The JSON of one reply, in OpenAI's shapes: `chat.completion` / `chat.completion.chunk` for
/// chat, `text_completion` for text completions. Every chunk of a stream has the same `id`,
/// `created` and `model`.
struct Reply: Sendable {
    let chat: Bool
    let id: String
    let created: Int
    let model: String
    let promptTokens: Int
    let logprobs: Bool
    let n: Int

    /// One server-sent event.
    static func event(_ value: [String: Any]) -> String { "data: \(jsonText(value))\n\n" }

    private var chunkObject: String { chat ? "chat.completion.chunk" : "text_completion" }

    private func envelope(_ choices: [[String: Any]]) -> [String: Any] {
        ["id": id, "object": chunkObject, "created": created, "model": model, "system_fingerprint": NSNull(), "choices": choices]
    }

    /// A chunk that opens a chat choice (`delta` carries the role).
    func chunk(_ i: Int, delta: [String: Any]) -> [String: Any] {
        envelope([["index": i, "delta": delta, "logprobs": NSNull(), "finish_reason": NSNull()]])
    }

    /// A chunk of text for choice `i`.
    func chunk(_ i: Int, text: String, logprobs lp: [TokenLogprob]) -> [String: Any] {
        let logprobsValue: Any = logprobs && !lp.isEmpty ? render(lp, textOffset: nil) : NSNull()
        if chat {
            return envelope([["index": i, "delta": ["content": text], "logprobs": logprobsValue, "finish_reason": NSNull()]])
        }
        return envelope([["index": i, "text": text, "logprobs": logprobsValue, "finish_reason": NSNull()]])
    }

    /// The last chunk of choice `i`.
    func chunk(_ i: Int, finish reason: String) -> [String: Any] {
        if chat { return envelope([["index": i, "delta": [String: Any](), "logprobs": NSNull(), "finish_reason": reason]]) }
        return envelope([["index": i, "text": "", "logprobs": NSNull(), "finish_reason": reason]])
    }

    func usage(_ completionTokens: Int) -> [String: Any] {
        ["prompt_tokens": promptTokens, "completion_tokens": completionTokens, "total_tokens": promptTokens + completionTokens]
    }

    /// `stream_options.include_usage`: the last chunk, with no choices.
    func usageChunk(_ completionTokens: Int) -> [String: Any] {
        var e = envelope([])
        e["usage"] = usage(completionTokens)
        return e
    }

    /// A whole (non-streamed) reply.
    func complete(texts: [String], logprobs lp: [[TokenLogprob]], reasons: [String?], completionTokens: Int) -> [String: Any] {
        let choices: [[String: Any]] = texts.indices.map { i in
            let logprobsValue: Any = logprobs ? render(lp[i], textOffset: 0) : NSNull()
            let reason: Any = reasons[i] ?? NSNull()
            if chat {
                return ["index": i, "message": ["role": "assistant", "content": texts[i]] as [String: Any], "logprobs": logprobsValue,
                        "finish_reason": reason]
            }
            return ["index": i, "text": texts[i], "logprobs": logprobsValue, "finish_reason": reason]
        }
        return ["id": id, "object": chat ? "chat.completion" : "text_completion", "created": created, "model": model,
                "system_fingerprint": NSNull(), "choices": choices, "usage": usage(completionTokens)]
    }

    /// Chat: `{"content": [{token, logprob, bytes, top_logprobs: [...]}]}`. Text completions:
    /// `{tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}`.
    private func render(_ lp: [TokenLogprob], textOffset: Int?) -> [String: Any] {
        if chat {
            return ["content": lp.map { t in
                ["token": t.text, "logprob": Double(t.logprob), "bytes": t.bytes.map(Int.init),
                 "top_logprobs": t.top.map { ["token": $0.text, "logprob": Double($0.logprob), "bytes": $0.bytes.map(Int.init)] as [String: Any] }] as [String: Any]
            }]
        }
        var offsets: [Int] = []
        var offset = textOffset ?? 0
        for t in lp {
            offsets.append(offset)
            offset += t.text.utf8.count
        }
        return [
            "tokens": lp.map(\.text),
            "token_logprobs": lp.map { Double($0.logprob) },
            "top_logprobs": lp.map { t in Dictionary(t.top.map { ($0.text, Double($0.logprob)) }, uniquingKeysWith: { a, _ in a }) },
            "text_offset": offsets,
        ]
    }
}
