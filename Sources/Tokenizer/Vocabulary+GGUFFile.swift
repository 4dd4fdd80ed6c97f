import GGUF

extension Vocabulary {
    /// Reads `tokenizer.ggml.*` from a parsed GGUF file, with llama.cpp's defaults for keys the
    /// file leaves out. `Tokenizer(vocabulary:)` validates the result.
    public init(gguf file: GGUFFile) throws(TokenizerError) {
        let m = file.metadata
        try self.init(
            ggufString: { m.string($0) },
            stringArray: { m.stringArray($0) },
            int32Array: { key in m.intArray(key)?.map { Int32(truncatingIfNeeded: $0) } },
            floatArray: { m.floatArray($0) },
            integer: { key in m[key]?.intValue.map(Int64.init) },
            bool: { m.bool($0) }
        )
    }
}
