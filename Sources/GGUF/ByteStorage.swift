#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only bytes behind a GGUF file: either a memory map of the file (weights stay on disk and
/// page in on demand) or an owned heap copy (tests and fuzzing).
public final class ByteStorage: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let count: Int
    /// The file a mapping was made from; nil for heap copies.
    public let path: String?
    /// Device and inode of the mapped file, so code that reopens `path` (the model digest reads
    /// through `pread`) can check the name still refers to the file that was mapped.
    let fileID: (device: UInt64, inode: UInt64)?
    private let release: () -> Void

    private init(
        base: UnsafeRawPointer, count: Int, path: String? = nil,
        fileID: (device: UInt64, inode: UInt64)? = nil, release: @escaping () -> Void
    ) {
        self.base = base
        self.count = count
        self.path = path
        self.fileID = fileID
        self.release = release
    }

    deinit { release() }

    /// Maps a whole file read-only. An empty file maps as zero bytes.
    public static func map(path: String) throws(GGUFError) -> ByteStorage {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        let size = Int(st.st_size)
        let id = (device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        guard size > 0 else {
            let empty = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
            return ByteStorage(base: empty, count: 0, path: path, fileID: id) { empty.deallocate() }
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw .cannotOpen(path: path, errno: errno)
        }
        return ByteStorage(base: UnsafeRawPointer(p), count: size, path: path, fileID: id) { munmap(p, size) }
    }

    /// Copies bytes into an owned, 64-byte aligned buffer.
    public static func copy(_ bytes: [UInt8]) -> ByteStorage {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress { p.copyMemory(from: s, byteCount: bytes.count) }
        }
        return ByteStorage(base: UnsafeRawPointer(p), count: bytes.count) { p.deallocate() }
    }

    /// `count` zero bytes, 64-byte aligned (stand-in weights for a speed probe).
    public static func zeroed(count: Int) -> ByteStorage {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
        return ByteStorage(base: UnsafeRawPointer(p), count: count) { p.deallocate() }
    }

    /// Hints the kernel about how a byte range will be read (no effect for heap copies).
    public func adviseWillNeed(offset: Int, length: Int) {
        #if canImport(Glibc)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        let p = UnsafeMutableRawPointer(mutating: base + start)
        _ = madvise(p, length + (offset - start), MADV_WILLNEED)
        #endif
    }
}

/// A bounds-checked little-endian cursor. Every read checks the remaining length first, so a
/// crafted count or length becomes a `GGUFError`, never an out-of-bounds access or a huge
/// allocation.
struct ByteCursor {
    let base: UnsafeRawPointer
    let count: Int
    var offset: Int = 0

    var remaining: Int { count - offset }

    mutating func need(_ n: Int) throws(GGUFError) {
        guard n >= 0, n <= remaining else { throw .truncated(offset: offset, needed: n) }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws(GGUFError) -> T {
        try need(MemoryLayout<T>.size)
        let v = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readFloat() throws(GGUFError) -> Float { Float(bitPattern: try read(UInt32.self)) }
    mutating func readDouble() throws(GGUFError) -> Double { Double(bitPattern: try read(UInt64.self)) }

    /// A length-prefixed UTF-8 string whose length must fit in what is left of the file.
    mutating func readString() throws(GGUFError) -> String {
        let start = offset
        let length = try read(UInt64.self)
        guard length <= UInt64(remaining) else { throw .stringTooLong(offset: start, length: length) }
        let n = Int(length)
        let buffer = UnsafeRawBufferPointer(start: base + offset, count: n)
        guard let s = String(validating: buffer, as: UTF8.self) else { throw .invalidUTF8(offset: start) }
        offset += n
        return s
    }
}
