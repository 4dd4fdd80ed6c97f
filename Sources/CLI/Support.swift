#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Engine
import Logging
import Synchronization

enum ProcessEnvironment {
    static func value(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    /// The cluster token: the `--cluster-token` flag, else `$PANGALACTIC_CLUSTER_TOKEN`, else none.
    static func clusterToken(_ flag: String?) -> String {
        flag ?? value("PANGALACTIC_CLUSTER_TOKEN") ?? ""
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

/// swift-log for the long-running commands: lines on stderr, level from
/// `$PANGALACTIC_LOG_LEVEL` (trace, debug, info, notice, warning, error; default info).
enum LogSetup {
    private static let done = Mutex(false)

    static func bootstrap() {
        let first = done.withLock { d in
            defer { d = true }
            return !d
        }
        guard first else { return }
        let level = ProcessEnvironment.value("PANGALACTIC_LOG_LEVEL").flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Runs `handler` on a signal instead of the default action (the process is not killed).
final class SignalWatcher: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []

    init(_ signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        for s in signals {
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { handler(s) }
            source.resume()
            sources.append(source)
        }
    }
}
