#if canImport(Glibc)
import Glibc
#endif
import Tokenizer

/// libFuzzer target: a chat template from a GGUF file, rendered with messages. Input: the
/// template, then a NUL byte, then a message's content. Parsing and rendering must end with a
/// string or a typed error, within the budget (libFuzzer's `-timeout` catches a template that
/// runs away; AddressSanitizer catches a stack that does).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChatTemplate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let split = bytes.firstIndex(of: 0) ?? size
    let source = String(decoding: UnsafeBufferPointer(rebasing: bytes[0 ..< split]), as: UTF8.self)
    let content = split < size ? String(decoding: UnsafeBufferPointer(rebasing: bytes[(split + 1)...]), as: UTF8.self) : "Hi"
    guard let template = try? ChatTemplate(source: source) else { return 0 }
    let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: content),
                    ChatMessage(role: "assistant", content: content), ChatMessage(role: "user", content: "again")]
    if let output = try? template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>"),
       output.utf8.count > ChatTemplateLimits().maxOutputBytes {
        fatalError("rendered \(output.utf8.count) bytes, over the output budget")
    }
    return 0
}

/// Seeds (`PANGALACTIC_FUZZ_SEEDS=DIR`): templates in the styles chat models use, written here.
@_cdecl("LLVMFuzzerInitialize")
public func initializeChatTemplate(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    guard let directory = getenv("PANGALACTIC_FUZZ_SEEDS").map({ String(cString: $0) }) else { return 0 }
    mkdir(directory, 0o755)
    let seeds: [(String, String)] = [
        ("loop", "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
        ("system-first", "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- set rest = messages[1:] %}{%- else %}{%- set rest = messages %}{%- endif %}{%- for m in rest %}{{ m.role | upper }}: {{ m.content | trim }}\n{%- endfor %}"),
        ("macros", "{% macro turn(role, text) -%}[{{ role }}] {{ text }}{%- endmacro %}{% for m in messages %}{{ turn(m.role, m.content) }}{% if not loop.last %}\n{% endif %}{% endfor %}"),
        ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% if m.role == 'assistant' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}{{ messages | length }}"),
        ("filters", "{{ bos_token }}{% for m in messages %}{{ m.content | replace('a', 'b') | lower | tojson }}{{ '%d' % loop.index }}{{ [1, 2, 3] | join(',') }}{{ {'k': 'v'}.items() | list | length }}{% endfor %}{{ range(3) | unique | list }}"),
        ("raise", "{% if messages | selectattr('role', 'equalto', 'tool') | list %}{{ raise_exception('no tools') }}{% endif %}{{ messages[-1].content[:10] ~ '…' if messages[-1].content is string else '' }}"),
    ]
    for (name, text) in seeds {
        let bytes = Array(text.utf8) + [0] + Array("What is the tallest mountain?".utf8)
        guard let file = fopen(directory + "/" + name, "wb") else { continue }
        _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    exit(0)
}
