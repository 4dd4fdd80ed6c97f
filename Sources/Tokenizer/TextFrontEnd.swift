import GGUF

/// Why a model's text side cannot be built or used.
public enum TextFrontEndError: Error, CustomStringConvertible {
    case tokenizer(any Error)
    case template(any Error)

    public var description: String {
        switch self {
        case let .tokenizer(e): "tokenizer: \(e)"
        case let .template(e): "chat template: \(e)"
        }
    }
}

/// The text side of a model: tokenizer and chat template, without any weights. A pipeline
/// driver and the gateway need exactly this: it turns messages into token ids and token ids
/// back into text, while the layers run elsewhere. It reads only the GGUF's metadata, so a file
/// without tensors (the hub's `GetModelInfo`, llama.cpp's vocab-only files) is enough.
public final class TextFrontEnd: @unchecked Sendable {
    public let tokenizer: Tokenizer
    public let chatTemplate: ChatTemplate?
    /// Why the file's chat template is not used, when it could not be parsed (a template in a
    /// GGUF is untrusted input): the model still loads, with the generic chat format, and the
    /// caller shows this as a warning.
    public let templateWarning: String?

    public init(file: GGUFFile) throws(TextFrontEndError) {
        do {
            tokenizer = try Tokenizer(vocabulary: Vocabulary(gguf: file))
        } catch {
            throw .tokenizer(error)
        }
        if let source = file.metadata.string("tokenizer.chat_template") {
            do {
                chatTemplate = try ChatTemplate(source: source)
                templateWarning = nil
            } catch {
                chatTemplate = nil
                templateWarning = "the model's chat template cannot be used (\(error)); using a generic chat format"
            }
        } else {
            chatTemplate = nil
            templateWarning = nil
        }
    }

    /// Renders a conversation with the model's own chat template, or a plain fallback format
    /// when the file has none (or one that cannot be parsed). A template that runs out of its
    /// budget while rendering is a `.template` error.
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws(TextFrontEndError) -> String {
        guard let chatTemplate else {
            return messages.map { "\($0.role): \($0.content)\n" }.joined() + (addGenerationPrompt ? "assistant:" : "")
        }
        let bos = tokenizer.bosID.map { String(decoding: tokenizer.tokenBytes($0, renderSpecial: true), as: UTF8.self) } ?? ""
        let eos = tokenizer.eosID.map { String(decoding: tokenizer.tokenBytes($0, renderSpecial: true), as: UTF8.self) } ?? ""
        do {
            return try chatTemplate.render(messages: messages, addGenerationPrompt: addGenerationPrompt, bosToken: bos, eosToken: eos)
        } catch {
            throw .template(error)
        }
    }

    /// Tokenizes a prompt with the model's BOS rule and special tokens parsed.
    public func tokenize(_ text: String, addSpecial: Bool = true) -> [Int32] {
        tokenizer.encode(text, addSpecial: addSpecial, parseSpecial: true)
    }
}
