import Testing
import TestSupport
import Tokenizer

/// Replays the chat template fuzz corpus (scripts/fuzz chat-template): template, NUL, content.
/// Each template renders or fails with a typed error, and never past the output budget.
@Suite struct ChatTemplateFuzzCorpusTests {
    @Test func theCorpusRendersOrFailsWithATypedError() throws {
        let inputs = FuzzCorpus.inputs("chat-template")
        #expect(inputs.count >= 6, "the seed corpus is missing")
        var rendered = 0
        for (name, bytes) in inputs {
            let split = bytes.firstIndex(of: 0) ?? bytes.count
            let source = String(decoding: bytes[..<split], as: UTF8.self)
            let content = split < bytes.count ? String(decoding: bytes[(split + 1)...], as: UTF8.self) : "Hi"
            guard let template = try? ChatTemplate(source: source) else { continue }
            let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: content),
                            ChatMessage(role: "assistant", content: content), ChatMessage(role: "user", content: "again")]
            guard let output = try? template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>") else { continue }
            rendered += 1
            #expect(output.utf8.count <= ChatTemplateLimits().maxOutputBytes, "\(name)")
        }
        #expect(rendered >= 4, "the seed templates render")
    }
}
