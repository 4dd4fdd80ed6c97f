extension GGUFFile {
    /// The file's metadata as a GGUF of its own with no tensors: hyperparameters, vocabulary,
    /// merges and chat template, a few MiB instead of the model. The hub hands it to drivers,
    /// which tokenize from it without the weights (llama.cpp's vocab-only files are the same shape).
    public func metadataOnlyBytes() -> [UInt8] {
        var writer = GGUFWriter(version: version, alignment: alignment)
        for key in metadata.keys {
            if let value = metadata[key] { writer.set(key, value) }
        }
        return writer.serialize()
    }
}
