/// One tensor's entry in the GGUF index, validated against the file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// Dimensions, contiguous first (ggml's ne[0], ne[1], …).
    public let shape: [Int]
    /// Byte offset of the tensor's data from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
    /// Rows of ne[0] values: a mat-vec takes one dot product per row.
    public var rowCount: Int { shape.dropFirst().reduce(1, *) }
    public var fileRange: Range<Int> { fileOffset ..< fileOffset + byteCount }

    /// The layer index for names of the form `blk.N.…`, else nil.
    public var layerIndex: Int? {
        guard name.hasPrefix("blk.") else { return nil }
        let rest = name.dropFirst(4)
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        return Int(rest[..<dot])
    }
}

/// A parsed GGUF v2/v3 file. Parsing validates every count, length, offset and shape against
/// the file size (see docs/hardening), so code above this layer can trust the index.
public final class GGUFFile: @unchecked Sendable {
    public static let magic: UInt32 = 0x4655_4747 // "GGUF" read little-endian
    public static let defaultAlignment = 32
    /// ggml's GGML_MAX_NAME includes the terminating NUL.
    public static let maxTensorNameBytes = 63

    public let storage: ByteStorage
    public let version: UInt32
    public let metadata: GGUFMetadata
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    public let dataOffset: Int
    private let byName: [String: Int]

    /// Memory-maps and parses a file.
    public convenience init(path: String) throws(GGUFError) {
        try self.init(storage: ByteStorage.map(path: path))
    }

    /// Parses bytes held in memory (tests, fuzzing).
    public convenience init(bytes: [UInt8]) throws(GGUFError) {
        try self.init(storage: ByteStorage.copy(bytes))
    }

    public init(storage: ByteStorage) throws(GGUFError) {
        self.storage = storage
        var c = ByteCursor(base: storage.base, count: storage.count)
        let magic = try c.read(UInt32.self)
        guard magic == Self.magic else { throw .badMagic(magic) }
        version = try c.read(UInt32.self)
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try c.read(UInt64.self)
        let kvCount = try c.read(UInt64.self)
        // Each KV takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor at least 8 + 4 + 8 + 4 + 8.
        guard kvCount <= UInt64(c.remaining / 13) else { throw .countTooLarge(what: "metadata", count: kvCount) }
        guard tensorCount <= UInt64(c.remaining / 32) else { throw .countTooLarge(what: "tensor", count: tensorCount) }

        var meta = GGUFMetadata()
        for _ in 0 ..< Int(kvCount) {
            let keyOffset = c.offset
            let key = try c.readString()
            guard !key.isEmpty else { throw .emptyKey(offset: keyOffset) }
            let rawType = try c.read(UInt32.self)
            guard let type = GGUFValueType(rawValue: rawType) else { throw .badValueType(key: key, type: rawType) }
            let value = try Self.readValue(&c, type: type, key: key)
            guard meta.insert(key, value) else { throw .duplicateKey(key) }
        }

        var align = Self.defaultAlignment
        if let a = meta["general.alignment"] {
            guard let v = a.intValue, v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                throw .badAlignment(UInt64(truncatingIfNeeded: a.intValue ?? 0))
            }
            align = v
        }
        alignment = align

        var infos: [(String, GGMLType, [Int], UInt64)] = []
        infos.reserveCapacity(Int(tensorCount))
        var seen = Set<String>()
        for _ in 0 ..< Int(tensorCount) {
            let name = try c.readString()
            guard name.utf8.count <= Self.maxTensorNameBytes else { throw .tensorNameTooLong(name) }
            guard seen.insert(name).inserted else { throw .duplicateTensor(name) }
            let nDims = try c.read(UInt32.self)
            guard (1 ... 4).contains(nDims) else { throw .badDimensionCount(tensor: name, count: nDims) }
            var shape: [Int] = []
            for _ in 0 ..< nDims {
                let d = try c.read(UInt64.self)
                guard d > 0, d <= UInt64(Int32.max) * 4096 else { throw .badDimension(tensor: name, value: d) }
                shape.append(Int(d))
            }
            let rawType = try c.read(UInt32.self)
            guard let type = GGMLType(rawValue: rawType) else { throw .unknownTensorType(tensor: name, type: rawType) }
            let offset = try c.read(UInt64.self)
            infos.append((name, type, shape, offset))
        }

        // The data section starts at the next multiple of the alignment after the header.
        let (padded, overflow) = c.offset.addingReportingOverflow(align - 1)
        guard !overflow else { throw .truncated(offset: c.offset, needed: align) }
        dataOffset = padded / align * align

        var list: [GGUFTensorInfo] = []
        list.reserveCapacity(infos.count)
        for (name, type, shape, offset) in infos {
            guard shape[0] % type.blockSize == 0 else {
                throw .rowNotBlockAligned(tensor: name, ne0: shape[0], blockSize: type.blockSize)
            }
            var bytes = type.rowBytes(shape[0]) ?? 0
            for d in shape.dropFirst() {
                let (p, o) = bytes.multipliedReportingOverflow(by: d)
                guard !o else { throw .shapeOverflow(tensor: name) }
                bytes = p
            }
            var elements = 1
            for d in shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw .shapeOverflow(tensor: name) }
                elements = p
            }
            guard offset % UInt64(align) == 0 else { throw .misalignedOffset(tensor: name, offset: offset, alignment: align) }
            let fileSize = UInt64(storage.count)
            let (start, o1) = UInt64(dataOffset).addingReportingOverflow(offset)
            let (end, o2) = start.addingReportingOverflow(UInt64(bytes))
            guard !o1, !o2, end <= fileSize else {
                throw .tensorOutOfBounds(tensor: name, end: o1 || o2 ? UInt64.max : end, fileSize: storage.count)
            }
            list.append(GGUFTensorInfo(name: name, type: type, shape: shape, fileOffset: Int(start), byteCount: bytes))
        }
        metadata = meta
        tensors = list
        var index: [String: Int] = [:]
        for (i, t) in list.enumerated() { index[t.name] = i }
        byName = index
    }

    private static func readValue(_ c: inout ByteCursor, type: GGUFValueType, key: String) throws(GGUFError) -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try c.read(UInt8.self))
        case .int8: return .int8(try c.read(Int8.self))
        case .uint16: return .uint16(try c.read(UInt16.self))
        case .int16: return .int16(try c.read(Int16.self))
        case .uint32: return .uint32(try c.read(UInt32.self))
        case .int32: return .int32(try c.read(Int32.self))
        case .float32: return .float32(try c.readFloat())
        case .bool: return .bool(try c.read(UInt8.self) != 0)
        case .string: return .string(try c.readString())
        case .uint64: return .uint64(try c.read(UInt64.self))
        case .int64: return .int64(try c.read(Int64.self))
        case .float64: return .float64(try c.readDouble())
        case .array:
            let rawElement = try c.read(UInt32.self)
            guard let element = GGUFValueType(rawValue: rawElement) else { throw .badValueType(key: key, type: rawElement) }
            guard element != .array else { throw .nestedArray(key: key) }
            let n = try c.read(UInt64.self)
            guard n <= UInt64(c.remaining / element.minimumEncodedSize) else { throw .countTooLarge(what: "array \(key)", count: n) }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(n))
            for _ in 0 ..< Int(n) { items.append(try readValue(&c, type: element, key: key)) }
            return .array(element, items)
        }
    }

    /// The path the file was mapped from; nil when it was parsed from bytes in memory.
    public var path: String? { storage.path }

    public func tensor(named name: String) -> GGUFTensorInfo? {
        byName[name].map { tensors[$0] }
    }

    /// Pointer to a tensor's first byte inside the mapping. Valid while this file is alive.
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawPointer {
        storage.base + tensor.fileOffset
    }

    /// Tensors grouped by layer index (`blk.N.*`); tensors outside blocks are not included.
    public var layerTensors: [Int: [GGUFTensorInfo]] {
        Dictionary(grouping: tensors.filter { $0.layerIndex != nil }, by: { $0.layerIndex ?? -1 })
    }

    /// Total bytes of each layer's tensors, and the byte span they occupy in the file.
    public func layerFootprint(_ layer: Int) -> (bytes: Int, span: Range<Int>)? {
        guard let list = layerTensors[layer], let lo = list.map(\.fileOffset).min(),
              let hi = list.map({ $0.fileOffset + $0.byteCount }).max() else { return nil }
        return (list.reduce(0) { $0 + $1.byteCount }, lo ..< hi)
    }
}
