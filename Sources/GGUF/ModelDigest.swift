#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto

extension GGUFFile {
    /// Domain separation: no other SHA-256 input in the project starts with these bytes.
    public static let modelDigestTag = "pangalactic-model-digest-v1"
    /// How many windows of the tensor data section the digest samples.
    public static let modelDigestWindowCount = 256
    /// Bytes in each sampled window.
    public static let modelDigestWindowBytes = 4096

    /// The windows of the data section that `modelDigest()` hashes, in file order.
    ///
    /// A section of at most 256 × 4096 bytes is covered whole, in 4096-byte windows with the
    /// last one clamped to the end. A larger section gets 256 windows of 4096 bytes, evenly
    /// spaced: the first starts at the section's first byte and the last ends at its last byte.
    public static func modelDigestWindows(dataSection: Range<Int>) -> [Range<Int>] {
        let lower = dataSection.lowerBound, upper = dataSection.upperBound
        let size = dataSection.count
        let window = modelDigestWindowBytes, count = modelDigestWindowCount
        guard size > 0 else { return [] }
        if size <= count * window {
            return stride(from: lower, to: upper, by: window).map { $0 ..< min($0 + window, upper) }
        }
        // Window i starts at lower + i * span / (count - 1). i * span is computed in full width,
        // so no section size can overflow it; the quotient is at most span.
        let span = size - window
        return (0 ..< count).map { i in
            let product = span.multipliedFullWidth(by: i)
            let start = lower + (count - 1).dividingFullWidth(product).quotient
            return start ..< start + window
        }
    }

    /// A 32-byte fingerprint of the model file, exchanged in the pipeline HELLO so that two
    /// nodes serving different model files refuse to talk to each other.
    ///
    /// It is SHA-256 over, in order: the ASCII tag `modelDigestTag`, the file size as a
    /// little-endian u64, every byte before the tensor data section (header, metadata, tensor
    /// index and padding), and the windows of the data section listed by
    /// `modelDigestWindows(dataSection:)` (256 windows of 4096 bytes, or the whole section when
    /// it is no larger than that).
    ///
    /// Why a fingerprint and not a hash of the whole file: hashing a 400 MB model costs seconds at
    /// every node start, and reading it through the memory map would make the whole model
    /// resident in a process that should hold only its own layers. The sample still tells files
    /// apart: a different model has a different header or tensor index, a fine-tune changes
    /// weights everywhere and so inside the sampled windows, and a truncated or extended file
    /// has a different size. It costs about 1 MB of reads. An edit confined to bytes between the
    /// windows goes unnoticed, which is acceptable because this is an identity check against
    /// misconfiguration, not an integrity or security check: the cluster token is the security
    /// boundary.
    ///
    /// The header is hashed from the mapping, which parsing has already read. The windows are
    /// read with `pread` from the file at `path`, so they pass through the page cache without
    /// becoming part of this process's resident memory; the reopened file must be the mapped one
    /// (same device, inode and size) or the call throws `.io`. A file parsed from bytes in memory
    /// is hashed from those bytes and gets the same digest as the same bytes read from disk.
    ///
    /// A file assembled from a store's tensors carries the digest the store computed from the
    /// original file; a header parsed without its data section cannot be fingerprinted.
    public func modelDigest() throws(GGUFError) -> [UInt8] {
        if let knownDigest { return knownDigest }
        guard fileSize == storage.count else { throw .io("only the header is held; the digest needs the whole file") }
        let size = storage.count
        let headerEnd = min(dataOffset, size)
        guard headerEnd >= 0 else { throw .io("data section starts at \(dataOffset)") }
        let windows = Self.modelDigestWindows(dataSection: headerEnd ..< size)

        var sha = SHA256()
        sha.update(data: Array(Self.modelDigestTag.utf8))
        withUnsafeBytes(of: UInt64(size).littleEndian) { sha.update(bufferPointer: $0) }
        sha.update(bufferPointer: UnsafeRawBufferPointer(start: storage.base, count: headerEnd))

        guard let path = storage.path else {
            for w in windows {
                guard w.lowerBound >= headerEnd, w.upperBound <= size, !w.isEmpty else {
                    throw .io("digest window \(w) outside the data section \(headerEnd)..<\(size)")
                }
                sha.update(bufferPointer: UnsafeRawBufferPointer(start: storage.base + w.lowerBound, count: w.count))
            }
            return Array(sha.finalize())
        }

        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        guard Int(st.st_size) == size else {
            throw .io("\(path) is now \(st.st_size) bytes, but \(size) were mapped")
        }
        if let id = storage.fileID, id.device != UInt64(st.st_dev) || id.inode != UInt64(st.st_ino) {
            throw .io("\(path) no longer names the file that was mapped")
        }

        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.modelDigestWindowBytes, alignment: 64)
        defer { buffer.deallocate() }
        for w in windows {
            guard w.lowerBound >= headerEnd, w.upperBound <= size, !w.isEmpty,
                  w.count <= Self.modelDigestWindowBytes
            else {
                throw .io("digest window \(w) outside the data section \(headerEnd)..<\(size)")
            }
            var done = 0
            while done < w.count {
                let n = pread(fd, buffer + done, w.count - done, off_t(w.lowerBound + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .io("read of \(path) at \(w.lowerBound + done) failed (errno \(errno))")
                }
                guard n > 0 else { throw .io("\(path) ended at \(w.lowerBound + done), expected \(size) bytes") }
                done += n
            }
            sha.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: w.count))
        }
        return Array(sha.finalize())
    }
}
