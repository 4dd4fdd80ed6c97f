#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GGUF
import Logging

/// The GGUF files of a store's folder, each known by its id (the file name without `.gguf`),
/// with their tensor indexes. An index is computed once and cached beside its file
/// (`NAME.gguf.tensors.json`), and computed again when the file's size or time changes. A
/// folder that cannot be written keeps its indexes in memory.
public actor StoreCatalog {
    public struct Entry: Sendable {
        public let id: String
        public let path: String
        public let index: TensorIndex
        /// The parsed header (metadata, tensor index); the tensor data is never read through it.
        public let header: GGUFFile
    }

    public let directory: String
    private var entries: [String: Entry] = [:]
    private let logger: Logger

    public init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// Ids of the models in the folder now.
    public func ids() throws(StoreError) -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .io("cannot list \(directory): \(error.localizedDescription)")
        }
        return names.filter { $0.hasSuffix(".gguf") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Indexes every model of the folder (at start, so the first node does not wait).
    public func warm() {
        guard let ids = try? ids() else { return }
        for id in ids {
            do { _ = try entry(id) } catch { logger.warning("skipping \(id): \(error)") }
        }
    }

    /// The model `id`, indexed; nil when there is no such file.
    public func entry(_ id: String) throws(StoreError) -> Entry {
        guard Self.isValidID(id) else { throw .notFound("no model \(id)") }
        let path = directory + "/" + id + ".gguf"
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw .notFound("no model \(id)") }
        let modified = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9
        if let e = entries[id], e.index.sourceBytes == Int(st.st_size), e.index.sourceModified == modified { return e }

        let cachePath = path + ".tensors.json"
        var index: TensorIndex?
        if let data = FileManager.default.contents(atPath: cachePath), data.count <= TensorIndex.maximumJSONBytes,
           let cached = try? JSONDecoder().decode(TensorIndex.self, from: data),
           cached.id == id, cached.sourceBytes == Int(st.st_size), cached.sourceModified == modified {
            index = cached
        }
        if index == nil {
            let start = Date()
            let computed = try TensorIndex.compute(id: id, path: path)
            logger.info("indexed \(id)", metadata: ["tensors": "\(computed.tensors.count)", "bytes": "\(computed.fileBytes)",
                                                    "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(start)))"])
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(computed) {
                let temporary = cachePath + ".tmp-\(getpid())"
                let saved = FileManager.default.createFile(atPath: temporary, contents: data) && rename(temporary, cachePath) == 0
                if !saved {
                    unlink(temporary)
                    logger.warning("cannot cache the index beside \(path); it stays in memory")
                }
            }
            index = computed
        }
        guard let index else { throw .io("no index for \(id)") }
        let header: GGUFFile
        do {
            let bytes = try Self.read(path: path, range: 0 ..< index.dataOffset)
            header = try GGUFFile(storage: ByteStorage.copy(bytes), fileSize: index.fileBytes)
        } catch let error as StoreError {
            throw error
        } catch {
            throw .badModel("\(path): \(error)")
        }
        let entry = Entry(id: id, path: path, index: index, header: header)
        entries[id] = entry
        return entry
    }

    /// Ids name files in the folder and nothing else: no separators, no leading dot.
    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 255 && !id.hasPrefix(".") && !id.contains("/") && !id.contains("\0")
    }

    static func read(path: String, range: Range<Int>) throws(StoreError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io("cannot open \(path) (errno \(errno))") }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: range.count)
        var done = 0
        while done < range.count {
            let n = out.withUnsafeMutableBytes { b -> Int in
                guard let base = b.baseAddress else { return 0 }
                return pread(fd, base + done, range.count - done, off_t(range.lowerBound + done))
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .io("\(path): short read at \(range.lowerBound + done)") }
            done += n
        }
        return out
    }
}

extension GGUFValue {
    /// The value as JSON. Arrays longer than `arrayLimit` keep their first items and say how
    /// many there are (a vocabulary is 150,000 strings).
    func json(arrayLimit: Int?) -> Any {
        switch self {
        case let .uint8(v): return v
        case let .int8(v): return v
        case let .uint16(v): return v
        case let .int16(v): return v
        case let .uint32(v): return v
        case let .int32(v): return v
        case let .uint64(v): return v
        case let .int64(v): return v
        case let .float32(v): return v.isFinite ? Double(v) : "\(v)"
        case let .float64(v): return v.isFinite ? v : "\(v)"
        case let .bool(v): return v
        case let .string(s): return s
        case let .array(_, items):
            if let limit = arrayLimit, items.count > limit {
                return ["count": items.count, "first": items.prefix(limit).map { $0.json(arrayLimit: limit) }] as [String: Any]
            }
            return items.map { $0.json(arrayLimit: arrayLimit) }
        }
    }
}
