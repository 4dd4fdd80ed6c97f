#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Engine
import Synchronization

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

/// Runs async work from a synchronous command and waits for it (the main thread is not part of
/// Swift's cooperative pool, so blocking it here is safe).
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do { let value = try await body(); result.withLock { $0 = .success(value) } } catch { result.withLock { $0 = .failure(error) } }
        done.signal()
    }
    done.wait()
    guard let outcome = result.withLock({ $0 }) else { throw EngineError.invalidArgument("async work ended without a result") }
    return try outcome.get()
}
