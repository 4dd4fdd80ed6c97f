#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GGUF
import Logging

/// A node's content-addressed cache of tensors: each verified tensor is a file named by its
/// SHA-256 under `blobs/`, so a tensor already held is never fetched again, whatever model or
/// layer range asks for it. Bytes still arriving live under `partial/` and are resumed from
/// where they stopped. The total size of `blobs/` is kept under a limit by evicting the least
/// recently used blobs (a blob's modification time is its last use).
public final class TensorCache: @unchecked Sendable {
    public let directory: String
    /// The most bytes `blobs/` may hold; nil: no limit.
    public let limitBytes: Int?
    private let logger: Logger
    private let lock = NSLock()

    public init(directory: String, limitBytes: Int?, logger: Logger) throws(StoreError) {
        self.directory = directory
        self.limitBytes = limitBytes
        self.logger = logger
        for sub in ["blobs", "partial", "indexes"] {
            do {
                try FileManager.default.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true)
            } catch {
                throw .io("cannot create the cache folder \(directory)/\(sub): \(error.localizedDescription)")
            }
        }
    }

    /// The default folder: `$XDG_CACHE_HOME/pangalactic/store` or `~/.cache/pangalactic/store`.
    public static var defaultDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/pangalactic/store" }
        return (env["HOME"] ?? "/tmp") + "/.cache/pangalactic/store"
    }

    func blobPath(_ sha: String) -> String { directory + "/blobs/" + sha }
    func partialPath(_ sha: String) -> String { directory + "/partial/" + sha }
    func indexPath(_ key: String) -> String { directory + "/indexes/" + key }

    /// Whether a verified blob of `size` bytes is held.
    func has(_ sha: String, size: Int) -> Bool {
        var st = stat()
        return stat(blobPath(sha), &st) == 0 && Int(st.st_size) == size
    }

    /// Bytes already received for a blob still arriving (0: none).
    func partialBytes(_ sha: String) -> Int {
        var st = stat()
        return stat(partialPath(sha), &st) == 0 ? Int(st.st_size) : 0
    }

    /// Moves a verified partial into `blobs/`.
    func promote(_ sha: String) throws(StoreError) {
        guard rename(partialPath(sha), blobPath(sha)) == 0 else { throw .io("cannot move \(sha) into the cache (errno \(errno))") }
    }

    /// Maps a held blob read-only and marks it used now.
    func map(_ sha: String) throws(StoreError) -> ByteStorage {
        let path = blobPath(sha)
        touch(path)
        do { return try ByteStorage.map(path: path) } catch { throw .io("\(error)") }
    }

    private func touch(_ path: String) {
        // A null times array sets both to now (UTIME_NOW is a macro Swift does not import).
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    /// Bytes held in `blobs/`.
    public var heldBytes: Int { blobs().reduce(0) { $0 + $1.size } }

    private func blobs() -> [(sha: String, size: Int, used: Double)] {
        let folder = directory + "/blobs"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var out: [(String, Int, Double)] = []
        for name in names {
            var st = stat()
            guard stat(folder + "/" + name, &st) == 0 else { continue }
            out.append((name, Int(st.st_size), Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9))
        }
        return out
    }

    /// Evicts least recently used blobs, never one in `keep`, until `incoming` more bytes fit
    /// under the limit. Returns the bytes evicted. When the kept blobs alone exceed the limit it
    /// evicts what it can and says so.
    @discardableResult
    func makeRoom(for incoming: Int, keep: Set<String>) -> Int {
        guard let limit = limitBytes else { return 0 }
        lock.lock()
        defer { lock.unlock() }
        let all = blobs()
        var held = all.reduce(0) { $0 + $1.size }
        guard held + incoming > limit else { return 0 }
        var freed = 0
        for b in all.sorted(by: { $0.used < $1.used }) where !keep.contains(b.sha) {
            guard held + incoming > limit else { break }
            if unlink(blobPath(b.sha)) == 0 {
                held -= b.size
                freed += b.size
            }
        }
        if held + incoming > limit {
            logger.warning("the tensors in use need more than the cache limit", metadata: [
                "limit": "\(limit)", "needed": "\(held + incoming)",
            ])
        } else if freed > 0 {
            logger.info("evicted least recently used tensors", metadata: ["bytes": "\(freed)"])
        }
        return freed
    }
}
