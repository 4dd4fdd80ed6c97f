#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import GGUF

/// What a model store says about one GGUF file: where each tensor lies, how large it is and its
/// SHA-256, so a node can fetch only its own tensors and check every byte it receives.
///
/// The store computes it once per file (hashing the whole file) and caches it beside the file
/// as JSON; a node caches it too, revalidated with the `etag`.
public struct TensorIndex: Codable, Sendable, Equatable {
    public struct Tensor: Codable, Sendable, Equatable {
        public var name: String
        /// ggml's type name (`Q4_1`) and number.
        public var type: String
        public var typeID: UInt32
        /// Dimensions, contiguous first (ggml's ne).
        public var shape: [Int]
        /// Absolute offset of the tensor's first byte in the file.
        public var offset: Int
        public var size: Int
        /// Lowercase hex SHA-256 of the tensor's bytes: the key of the node's cache.
        public var sha256: String

        enum CodingKeys: String, CodingKey {
            case name, type, typeID = "type_id", shape, offset, size, sha256
        }
    }

    public var id: String
    public var fileBytes: Int
    public var version: UInt32
    public var alignment: Int
    /// Where the tensor data section starts; bytes before it are the header and tensor index.
    public var dataOffset: Int
    public var headerSHA256: String
    /// SHA-256 of the whole file, in hex: the HTTP entity tag.
    public var etag: String
    /// `GGUFFile.modelDigest()` of the file, in hex: what nodes exchange in their HELLO.
    public var modelDigest: String
    public var tensors: [Tensor]
    /// Size and modification time of the file the index was computed from (the store's cache
    /// key; clients ignore them).
    public var sourceBytes: Int
    public var sourceModified: Double

    enum CodingKeys: String, CodingKey {
        case id, fileBytes = "file_bytes", version, alignment, dataOffset = "data_offset", headerSHA256 = "header_sha256"
        case etag, modelDigest = "model_digest", tensors, sourceBytes = "source_bytes", sourceModified = "source_modified"
    }

    /// The largest index a client accepts (a 1,000-layer model has about 10,000 tensors at
    /// roughly 200 bytes of JSON each).
    public static let maximumJSONBytes = 64 << 20

    /// Hashes every tensor and the whole file, reading it in order through `pread` (the pages
    /// pass through the page cache, not this process's resident memory).
    public static func compute(id: String, path: String) throws(StoreError) -> TensorIndex {
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw .badModel("\(path): \(error)") }
        let digest: [UInt8]
        do { digest = try file.modelDigest() } catch { throw .badModel("\(path): \(error)") }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io("cannot open \(path) (errno \(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io("cannot stat \(path) (errno \(errno))") }
        let modified = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9

        // One pass over the file: the whole-file hash sees every byte, and each tensor's hash
        // sees the bytes of its range.
        let sorted = file.tensors.sorted { $0.fileOffset < $1.fileOffset }
        var whole = SHA256()
        var header = SHA256()
        var tensorHashes: [String: String] = [:]
        let chunk = 4 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var position = 0
        var next = 0
        var current: (info: GGUFTensorInfo, sha: SHA256)?
        while position < file.fileSize {
            let n = pread(fd, buffer, min(chunk, file.fileSize - position), off_t(position))
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .io("\(path): read failed at \(position) (errno \(errno))") }
            let bytes = UnsafeRawBufferPointer(start: buffer, count: n)
            whole.update(bufferPointer: bytes)
            // Walk this chunk: header bytes, then tensor ranges (gaps of padding are skipped).
            var at = position
            let end = position + n
            while at < end {
                if at < file.dataOffset {
                    let upto = min(end, file.dataOffset)
                    header.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[(at - position) ..< (upto - position)]))
                    at = upto
                    continue
                }
                if current == nil {
                    guard next < sorted.count else { break }
                    let t = sorted[next]
                    if at < t.fileOffset { at = min(end, t.fileOffset); continue }
                    current = (t, SHA256())
                }
                guard var c = current else { break }
                let upto = min(end, c.info.fileOffset + c.info.byteCount)
                c.sha.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[(at - position) ..< (upto - position)]))
                at = upto
                if upto == c.info.fileOffset + c.info.byteCount {
                    tensorHashes[c.info.name] = hex(c.sha.finalize())
                    current = nil
                    next += 1
                } else {
                    current = c
                }
            }
            position = end
        }
        // A tensor of zero bytes never enters the loop above.
        for t in sorted where tensorHashes[t.name] == nil && t.byteCount == 0 { tensorHashes[t.name] = hex(SHA256.hash(data: [UInt8]())) }

        var tensors: [Tensor] = []
        for t in file.tensors {
            guard let sha = tensorHashes[t.name] else { throw .io("\(path): tensor \(t.name) was not read") }
            tensors.append(Tensor(name: t.name, type: t.type.description, typeID: t.type.rawValue, shape: t.shape,
                                  offset: t.fileOffset, size: t.byteCount, sha256: sha))
        }
        return TensorIndex(id: id, fileBytes: file.fileSize, version: file.version, alignment: file.alignment,
                           dataOffset: file.dataOffset, headerSHA256: hex(header.finalize()), etag: hex(whole.finalize()),
                           modelDigest: hex(digest), tensors: tensors, sourceBytes: Int(st.st_size), sourceModified: modified)
    }

    /// The index as a GGUF index with no bytes, given the file's metadata (from the hub's
    /// metadata-only GGUF or from the file's own header). Every entry is validated as a parsed
    /// file's would be.
    public func file(metadata: GGUFMetadata) throws(StoreError) -> GGUFFile {
        var list: [(name: String, type: GGMLType, shape: [Int], fileOffset: Int)] = []
        for t in tensors {
            guard let type = GGMLType(rawValue: t.typeID) else { throw .badIndex("tensor \(t.name) has unknown type \(t.typeID)") }
            list.append((t.name, type, t.shape, t.offset))
        }
        do {
            let file = try GGUFFile(metadata: metadata, version: version, dataOffset: dataOffset, fileSize: fileBytes, tensors: list)
            for t in tensors {
                guard let info = file.tensor(named: t.name), info.byteCount == t.size else {
                    throw StoreError.badIndex("tensor \(t.name): size \(t.size) disagrees with its shape and type")
                }
                guard t.sha256.count == 64, t.sha256.allSatisfy(\.isHexDigit) else { throw StoreError.badIndex("tensor \(t.name): bad sha256") }
            }
            return file
        } catch let error as StoreError {
            throw error
        } catch {
            throw .badIndex("\(error)")
        }
    }

    /// The model digest as bytes.
    public var modelDigestBytes: [UInt8]? { Self.bytes(hex: modelDigest) }

    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    static func bytes(hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = Self.nibble(chars[i]), let lo = Self.nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A") ... UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Everything that can go wrong between a store and a node.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    case badModel(String)
    case badIndex(String)
    case io(String)
    case http(url: String, status: Int)
    case unreachable(url: String, reason: String)
    /// A tensor's bytes did not match their SHA-256 `attempts` times in a row.
    case corrupt(tensor: String, attempts: Int)
    case notFound(String)
    case configuration(String)

    public var description: String {
        switch self {
        case let .badModel(m): "not a usable model: \(m)"
        case let .badIndex(m): "the store's tensor index is invalid: \(m)"
        case let .io(m): "I/O error: \(m)"
        case let .http(url, status): "\(url) answered HTTP \(status)"
        case let .unreachable(url, reason): "cannot reach \(url): \(reason)"
        case let .corrupt(tensor, attempts): "tensor \(tensor) arrived corrupted \(attempts) times in a row (SHA-256 mismatch); giving up"
        case let .notFound(m): "not found: \(m)"
        case let .configuration(m): m
        }
    }
}
