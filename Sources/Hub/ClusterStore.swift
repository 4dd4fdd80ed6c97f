#if canImport(Glibc)
import Glibc
#endif
import ControlPlane
import Foundation
import SwiftProtobuf
import Synchronization

/// Where the hub keeps its state between restarts. The hub saves a whole snapshot after every
/// change of registry, plan or epoch (never per heartbeat) and loads it once at start.
///
/// The embedded default is a file. An HA deployment would put an etcd-backed store behind the
/// same two calls: `save` becomes a put guarded by the leader's lease, `load` a get, and the
/// store is the only thing several hubs share.
public protocol ClusterStore: Sendable {
    /// The last saved snapshot, or nil when there is none yet.
    func load() throws -> Pangalactic_Control_V1_HubSnapshot?
    /// Replaces the stored snapshot. `version` increases with every change; a store may ignore a
    /// version older than one it already holds (saves can race).
    func save(_ snapshot: Pangalactic_Control_V1_HubSnapshot, version: UInt64) throws
}

/// Keeps the snapshot in memory only (tests, and a hub started without `--state`).
public final class MemoryClusterStore: ClusterStore {
    private let stored = Mutex<(version: UInt64, snapshot: Pangalactic_Control_V1_HubSnapshot?)>((0, nil))

    public init() {}

    public func load() throws -> Pangalactic_Control_V1_HubSnapshot? { stored.withLock { $0.snapshot } }

    public func save(_ snapshot: Pangalactic_Control_V1_HubSnapshot, version: UInt64) throws {
        stored.withLock { s in
            guard version >= s.version else { return }
            s = (version, snapshot)
        }
    }
}

/// Errors of the file store.
public enum ClusterStoreError: Error, CustomStringConvertible {
    case io(String)
    case corrupt(String)

    public var description: String {
        switch self {
        case let .io(m): "state file: \(m)"
        case let .corrupt(m): "state file is corrupt: \(m)"
        }
    }
}

/// The snapshot in one file, in protobuf's binary form. A save writes a temporary file beside
/// it, fsyncs it, renames it over the old one and fsyncs the folder, so a crash leaves either
/// the old snapshot or the new one, never a mix.
public final class SnapshotFileStore: ClusterStore {
    public let path: String
    /// Largest snapshot read back (the model's metadata dominates it).
    public static let maxBytes = 512 << 20
    private let lock = Mutex<UInt64>(0)

    public init(path: String) {
        self.path = path
    }

    public func load() throws -> Pangalactic_Control_V1_HubSnapshot? {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw ClusterStoreError.io("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ClusterStoreError.io("cannot stat \(path)") }
        let size = Int(info.st_size)
        guard size <= Self.maxBytes else { throw ClusterStoreError.corrupt("\(size) bytes, over the \(Self.maxBytes)-byte cap") }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { b in b.baseAddress.map { read(fd, $0 + done, size - done) } ?? -1 }
            guard n > 0 else { throw ClusterStoreError.io("short read of \(path)") }
            done += n
        }
        do {
            return try Pangalactic_Control_V1_HubSnapshot(serializedBytes: bytes)
        } catch {
            throw ClusterStoreError.corrupt("\(error)")
        }
    }

    public func save(_ snapshot: Pangalactic_Control_V1_HubSnapshot, version: UInt64) throws {
        let bytes: [UInt8]
        do { bytes = try snapshot.serializedBytes() } catch { throw ClusterStoreError.io("cannot encode: \(error)") }
        try lock.withLock { last in
            guard version >= last else { return }
            try Self.writeAtomically(bytes, to: path)
            last = version
        }
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw ClusterStoreError.io("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { b in b.baseAddress.map { write(fd, $0 + done, bytes.count - done) } ?? -1 }
            guard n > 0 else {
                close(fd)
                throw ClusterStoreError.io("cannot write \(temporary): \(String(cString: strerror(errno)))")
            }
            done += n
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw ClusterStoreError.io("fsync \(temporary): \(String(cString: strerror(errno)))")
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw ClusterStoreError.io("rename to \(path): \(String(cString: strerror(errno)))") }
        let folder = (path as NSString).deletingLastPathComponent
        let dir = open(folder.isEmpty ? "." : folder, O_RDONLY)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }
}
