/// Everything that can be wrong with a GGUF file. Each case names what was found, so a user can
/// tell a truncated download from a crafted file.
public enum GGUFError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, errno: Int32)
    case badMagic(UInt32)
    case unsupportedVersion(UInt32)
    case truncated(offset: Int, needed: Int)
    case countTooLarge(what: String, count: UInt64)
    case stringTooLong(offset: Int, length: UInt64)
    case invalidUTF8(offset: Int)
    case emptyKey(offset: Int)
    case duplicateKey(String)
    case badValueType(key: String, type: UInt32)
    case nestedArray(key: String)
    case badAlignment(UInt64)
    case tensorNameTooLong(String)
    case duplicateTensor(String)
    case badDimensionCount(tensor: String, count: UInt32)
    case badDimension(tensor: String, value: UInt64)
    case shapeOverflow(tensor: String)
    case unknownTensorType(tensor: String, type: UInt32)
    case rowNotBlockAligned(tensor: String, ne0: Int, blockSize: Int)
    case misalignedOffset(tensor: String, offset: UInt64, alignment: Int)
    case tensorOutOfBounds(tensor: String, end: UInt64, fileSize: Int)
    case missingKey(String)
    case wrongKeyType(key: String, expected: String)
    case writerInvalid(String)
    /// Reading the file failed after it was mapped (a short read, a changed file, an I/O error).
    case io(String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, e): return "cannot open \(path) (errno \(e))"
        case let .badMagic(m): return "not a GGUF file (magic 0x\(String(m, radix: 16)))"
        case let .unsupportedVersion(v): return "unsupported GGUF version \(v) (2 and 3 are supported)"
        case let .truncated(o, n): return "file truncated: needed \(n) bytes at offset \(o)"
        case let .countTooLarge(w, c): return "\(w) count \(c) is larger than the file allows"
        case let .stringTooLong(o, l): return "string of length \(l) at offset \(o) overruns the file"
        case let .invalidUTF8(o): return "string at offset \(o) is not valid UTF-8"
        case let .emptyKey(o): return "empty metadata key at offset \(o)"
        case let .duplicateKey(k): return "duplicate metadata key \(k)"
        case let .badValueType(k, t): return "metadata \(k) has unknown value type \(t)"
        case let .nestedArray(k): return "metadata \(k) is an array of arrays, which is not supported"
        case let .badAlignment(a): return "general.alignment \(a) is not a power of two"
        case let .tensorNameTooLong(n): return "tensor name longer than 63 bytes: \(n.prefix(80))"
        case let .duplicateTensor(n): return "duplicate tensor \(n)"
        case let .badDimensionCount(t, c): return "tensor \(t) has \(c) dimensions (1...4 allowed)"
        case let .badDimension(t, v): return "tensor \(t) has dimension \(v)"
        case let .shapeOverflow(t): return "tensor \(t) has a shape whose size overflows"
        case let .unknownTensorType(t, ty): return "tensor \(t) has unknown type \(ty)"
        case let .rowNotBlockAligned(t, ne0, b): return "tensor \(t): ne[0] = \(ne0) is not a multiple of the block size \(b)"
        case let .misalignedOffset(t, o, a): return "tensor \(t): data offset \(o) is not aligned to \(a)"
        case let .tensorOutOfBounds(t, e, s): return "tensor \(t) ends at byte \(e), past the end of the file (\(s) bytes)"
        case let .missingKey(k): return "missing metadata key \(k)"
        case let .wrongKeyType(k, e): return "metadata \(k) is not \(e)"
        case let .writerInvalid(m): return "cannot write GGUF: \(m)"
        case let .io(m): return "cannot read GGUF: \(m)"
        }
    }
}
