// Public entry point: a parsed chat template (GGUF `tokenizer.chat_template`) that renders
// like HF transformers' `apply_chat_template` (Jinja2 sandbox, trim_blocks and lstrip_blocks).

public struct ChatTemplate: Sendable {
    public let source: String
    private let nodes: [JinjaNode]

    /// Limits against runaway templates.
    public var limits: ChatTemplateLimits

    /// When set, `strftime_now` formats this Unix time (UTC) instead of the local current time,
    /// which makes renders deterministic (Llama 3.x prints "Today Date").
    public var fixedTime: Int64?

    public init(source: String) throws {
        try self.init(source: source, limits: ChatTemplateLimits())
    }

    public init(source: String, limits: ChatTemplateLimits) throws {
        self.source = source
        self.limits = limits
        var lexer = JinjaLexer(source: source)
        let tokens = try lexer.tokenize()
        var parser = JinjaParser(tokens: tokens, maxDepth: limits.maxNestingDepth)
        nodes = try parser.parseTemplate()
    }

    /// Renders with an explicit context (every top-level template variable).
    public func render(context: [String: TemplateValue]) throws -> String {
        let globals = JinjaScope(parent: nil)
        for (key, value) in context {
            globals.vars[key] = try JinjaValue.checked(value, limit: limits.maxNestingDepth)
        }
        let renderer = JinjaRenderer(globals: globals, limits: limits, fixedTime: fixedTime)
        defer { renderer.releaseScopes() }
        return try renderer.render(nodes)
    }

    /// Renders a conversation the way HF's `apply_chat_template` does: the context holds
    /// `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, `tools` and `documents`
    /// (both `none` unless given in `extra`), then every entry of `extra` (which wins on clashes).
    /// Pass tool schemas as `extra["tools"]` (e.g. `TemplateValue(json:)` of an OpenAI tools array).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String = "",
                       eosToken: String = "", extra: [String: TemplateValue] = [:]) throws -> String {
        try render(messageValues: messages.map(\.templateValue), addGenerationPrompt: addGenerationPrompt,
                   bosToken: bosToken, eosToken: eosToken, extra: extra)
    }

    /// Like `render(messages:...)` but with messages as raw values (list-valued content,
    /// `tool_calls`, null content, ...).
    public func render(messageValues: [TemplateValue], addGenerationPrompt: Bool, bosToken: String = "",
                       eosToken: String = "", extra: [String: TemplateValue] = [:]) throws -> String {
        var context: [String: TemplateValue] = [
            "messages": .array(messageValues),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
            "tools": .none,
            "documents": .none,
        ]
        for (key, value) in extra { context[key] = value }
        return try render(context: context)
    }
}
