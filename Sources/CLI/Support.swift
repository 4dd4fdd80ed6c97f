#if canImport(Glibc)
import Glibc
#endif
import Engine

enum ProcessEnvironment {
    static func value(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }
}

/// Unbuffered-enough output for streaming text, and stderr for diagnostics.
enum Console {
    /// Writes to stdout and flushes, so streamed tokens appear as they are generated.
    static func write(_ s: String) {
        print(s, terminator: "")
        fflush(nil)
    }

    static func error(_ s: String) {
        let line = s + "\n"
        line.utf8CString.withUnsafeBufferPointer { b in
            _ = Glibc.write(2, b.baseAddress, b.count - 1)
        }
    }
}

/// Reads a whole file as bytes, or throws a message naming it.
func readFile(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else { throw EngineError.invalidArgument("cannot open \(path)") }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0 ..< n])
    }
    return bytes
}

extension InferenceEngine {
    convenience init(_ options: ModelOptions) throws {
        try self.init(modelPath: options.modelPath, threads: options.threads, contextLength: options.contextSize,
                      batchSize: options.batchSize)
    }
}
