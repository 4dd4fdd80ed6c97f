#if canImport(Glibc)
import Glibc
#endif
import GGUF
import Models
import Tokenizer

/// libFuzzer target: a GGUF file from a stranger. The reader must refuse it with a typed error
/// or give a file whose header re-serializes and parses again; the model configuration and the
/// text front end (vocabulary, merges, chat template) read from it must not crash either.
/// Run under a memory cap (`-rss_limit_mb`, `-malloc_limit_mb`): a header count may never make
/// the reader allocate more than the file could describe.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUFReader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let file = try? GGUFFile(bytes: bytes) else { return 0 }
    for tensor in file.tensors where tensor.fileRange.upperBound > file.fileSize {
        fatalError("tensor \(tensor.name) ends at \(tensor.fileRange.upperBound), past the file's \(file.fileSize) bytes")
    }
    let header = file.metadataOnlyBytes()
    guard let again = try? GGUFFile(bytes: header) else { fatalError("a parsed header does not parse again") }
    if again.metadataOnlyBytes() != header { fatalError("the header changed on a round trip") }
    _ = try? ModelConfig(file: file)
    if let front = try? TextFrontEnd(file: file) {
        _ = front.tokenize("Hello, world! 123 ünïcödé")
        _ = try? front.renderChat([ChatMessage(role: "user", content: "Hi")])
    }
    return 0
}

/// Seeds (`PANGALACTIC_FUZZ_SEEDS=DIR`): small files from our own writer, with every metadata
/// value type, tensors of several types, and a tokenizer with a chat template.
@_cdecl("LLVMFuzzerInitialize")
public func initializeGGUFReader(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>>>) -> CInt {
    guard let directory = getenv("PANGALACTIC_FUZZ_SEEDS").map({ String(cString: $0) }) else { return 0 }
    mkdir(directory, 0o755)
    func write(_ name: String, _ writer: GGUFWriter) {
        let bytes = writer.serialize()
        guard let file = fopen(directory + "/" + name, "wb") else { return }
        _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    var values = GGUFWriter()
    values.set("general.architecture", .string("llama"))
    values.set("u8", .uint8(1)); values.set("i8", .int8(-1)); values.set("u16", .uint16(2)); values.set("i16", .int16(-2))
    values.set("u32", .uint32(3)); values.set("i32", .int32(-3)); values.set("f32", .float32(0.5)); values.set("bool", .bool(true))
    values.set("u64", .uint64(4)); values.set("i64", .int64(-4)); values.set("f64", .float64(0.25))
    values.set("array", .array(.int32, [.int32(1), .int32(2)]))
    values.set("strings", .array(.string, [.string("a"), .string("b")]))
    try? values.addTensor(name: "token_embd.weight", shape: [4, 2], floats: [1, 2, 3, 4, 5, 6, 7, 8])
    write("values", values)

    var model = GGUFWriter()
    model.set("general.architecture", .string("llama"))
    model.set("llama.block_count", .uint32(1))
    model.set("llama.context_length", .uint32(64))
    model.set("llama.embedding_length", .uint32(32))
    model.set("llama.feed_forward_length", .uint32(64))
    model.set("llama.attention.head_count", .uint32(4))
    model.set("llama.attention.head_count_kv", .uint32(2))
    model.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
    model.set("tokenizer.ggml.model", .string("gpt2"))
    let tokens = ["<s>", "</s>", "H", "e", "l", "o", "He", "ll", "Hell", "Hello", " ", "w", "r", "d", "!", "Ġ"]
    model.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
    model.set("tokenizer.ggml.token_type", .array(.int32, tokens.indices.map { .int32($0 < 2 ? 3 : 1) }))
    model.set("tokenizer.ggml.merges", .array(.string, ["H e", "l l", "He ll", "Hell o"].map { .string($0) }))
    model.set("tokenizer.ggml.bos_token_id", .uint32(0))
    model.set("tokenizer.ggml.eos_token_id", .uint32(1))
    model.set("tokenizer.chat_template", .string("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"))
    for name in ["token_embd.weight", "output.weight"] {
        try? model.addTensor(name: name, type: .q8_0, shape: [32, 16], data: Array(repeating: 1, count: 16 * 34))
    }
    try? model.addTensor(name: "output_norm.weight", shape: [32], floats: Array(repeating: 1, count: 32))
    write("model", model)
    exit(0)
}
