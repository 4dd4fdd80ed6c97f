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
    public var layerIndex: Int? { Self.layerIndex(ofName: name) }

    /// The layer index a tensor name `blk.N.…` names, else nil.
    public static func layerIndex(ofName name: String) -> Int? {
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

    /// The bytes parsed: the whole mapped file, or only its header for a file assembled from
    /// separately stored tensors (see `assembled(tensorData:digest:)`).
    public let storage: ByteStorage
    public let version: UInt32
    public let metadata: GGUFMetadata
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    public let dataOffset: Int
    /// Size of the whole file the index describes (equal to `storage.count` for a mapped file).
    public let fileSize: Int
    private let byName: [String: Int]
    /// Tensor bytes held outside `storage` (a model store's cache: one mapped blob per tensor).
    private let tensorData: [String: ByteStorage]
    /// The model digest, when it was computed from the original file elsewhere.
    let knownDigest: [UInt8]?

    /// Memory-maps and parses a file.
    public convenience init(path: String) throws(GGUFError) {
        try self.init(storage: ByteStorage.map(path: path))
    }

    /// Parses bytes held in memory (tests, fuzzing).
    public convenience init(bytes: [UInt8]) throws(GGUFError) {
        try self.init(storage: ByteStorage.copy(bytes))
    }

    /// Parses a GGUF header. `fileSize` is the size of the whole file when `storage` holds only
    /// its first bytes (header and index, as a model store serves them); tensors are checked
    /// against it. Tensor data can then be attached with `assembled(tensorData:digest:)`.
    public init(storage: ByteStorage, fileSize declaredSize: Int? = nil) throws(GGUFError) {
        self.storage = storage
        let fileSize = declaredSize ?? storage.count
        guard fileSize >= storage.count else { throw .io("declared size \(fileSize) is below the \(storage.count) bytes held") }
        self.fileSize = fileSize
        tensorData = [:]
        knownDigest = nil
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
        let align = try Self.alignment(of: meta)
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
            list.append(try Self.validated(name: name, type: type, shape: shape, relativeOffset: offset,
                                           alignment: align, dataOffset: dataOffset, fileSize: fileSize))
        }
        metadata = meta
        tensors = list
        byName = Self.index(list)
    }

    /// A file described by metadata and a tensor index that arrived separately (a store's index
    /// and the hub's metadata-only GGUF), with no bytes yet. The index is validated exactly as a
    /// parsed one: shapes against types, offsets against the alignment and `fileSize`.
    public init(metadata: GGUFMetadata, version: UInt32, dataOffset: Int, fileSize: Int,
                tensors index: [(name: String, type: GGMLType, shape: [Int], fileOffset: Int)]) throws(GGUFError) {
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let align = try Self.alignment(of: metadata)
        guard dataOffset >= 0, dataOffset % align == 0, fileSize >= dataOffset else {
            throw .io("data section at \(dataOffset) does not fit a \(fileSize)-byte file aligned to \(align)")
        }
        var seen = Set<String>()
        var list: [GGUFTensorInfo] = []
        for t in index {
            guard t.name.utf8.count <= Self.maxTensorNameBytes else { throw .tensorNameTooLong(t.name) }
            guard seen.insert(t.name).inserted else { throw .duplicateTensor(t.name) }
            guard (1 ... 4).contains(t.shape.count) else { throw .badDimensionCount(tensor: t.name, count: UInt32(clamping: t.shape.count)) }
            for d in t.shape where d <= 0 || d > Int(Int32.max) * 4096 { throw .badDimension(tensor: t.name, value: UInt64(clamping: d)) }
            guard t.fileOffset >= dataOffset else { throw .tensorOutOfBounds(tensor: t.name, end: UInt64(clamping: t.fileOffset), fileSize: fileSize) }
            list.append(try Self.validated(name: t.name, type: t.type, shape: t.shape, relativeOffset: UInt64(t.fileOffset - dataOffset),
                                           alignment: align, dataOffset: dataOffset, fileSize: fileSize))
        }
        self.storage = ByteStorage.copy([])
        self.version = version
        self.metadata = metadata
        self.tensors = list
        self.alignment = align
        self.dataOffset = dataOffset
        self.fileSize = fileSize
        byName = Self.index(list)
        tensorData = [:]
        knownDigest = nil
    }

    private init(copying other: GGUFFile, tensorData: [String: ByteStorage], digest: [UInt8]?) {
        storage = other.storage
        version = other.version
        metadata = other.metadata
        tensors = other.tensors
        alignment = other.alignment
        dataOffset = other.dataOffset
        fileSize = other.fileSize
        byName = other.byName
        self.tensorData = tensorData
        knownDigest = digest
    }

    /// The same index with tensor bytes held in separate buffers, one per tensor (each exactly
    /// the tensor's size), and the original file's digest. Tensors not given stay absent:
    /// `hasData` is false for them, and model code refuses to load them.
    public func assembled(tensorData: [String: ByteStorage], digest: [UInt8]) throws(GGUFError) -> GGUFFile {
        for (name, bytes) in tensorData {
            guard let t = tensor(named: name) else { throw .io("no tensor \(name) in the index") }
            guard bytes.count == t.byteCount else { throw .io("tensor \(name) holds \(bytes.count) bytes, the index says \(t.byteCount)") }
        }
        return GGUFFile(copying: self, tensorData: tensorData, digest: digest)
    }

    private static func alignment(of meta: GGUFMetadata) throws(GGUFError) -> Int {
        guard let a = meta["general.alignment"] else { return defaultAlignment }
        guard let v = a.intValue, v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
            throw .badAlignment(UInt64(truncatingIfNeeded: a.intValue ?? 0))
        }
        return v
    }

    private static func index(_ list: [GGUFTensorInfo]) -> [String: Int] {
        var index: [String: Int] = [:]
        for (i, t) in list.enumerated() { index[t.name] = i }
        return index
    }

    /// One index entry checked against its type, the alignment and the file's size.
    private static func validated(name: String, type: GGMLType, shape: [Int], relativeOffset offset: UInt64,
                                  alignment align: Int, dataOffset: Int, fileSize: Int) throws(GGUFError) -> GGUFTensorInfo {
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
        let (start, o1) = UInt64(dataOffset).addingReportingOverflow(offset)
        let (end, o2) = start.addingReportingOverflow(UInt64(bytes))
        guard !o1, !o2, end <= UInt64(fileSize) else {
            throw .tensorOutOfBounds(tensor: name, end: o1 || o2 ? UInt64.max : end, fileSize: fileSize)
        }
        return GGUFTensorInfo(name: name, type: type, shape: shape, fileOffset: Int(start), byteCount: bytes)
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

    /// Whether this file holds the tensor's bytes: always for a mapped file; for a header or an
    /// assembled file, only for the tensors attached to it.
    public func hasData(_ tensor: GGUFTensorInfo) -> Bool {
        tensorData[tensor.name] != nil || tensor.fileOffset + tensor.byteCount <= storage.count
    }

    /// Pointer to a tensor's first byte. Valid while this file is alive, and only when
    /// `hasData(tensor)` (model code checks it before loading a tensor).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawPointer {
        if let blob = tensorData[tensor.name] { return blob.base }
        return storage.base + tensor.fileOffset
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
