#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds GGUF v3 files in memory. Tests use it to make tiny random models of every
/// architecture and quant type, so no test ever needs a download.
public struct GGUFWriter: Sendable {
    public struct Tensor: Sendable {
        public var name: String
        public var type: GGMLType
        public var shape: [Int]
        public var data: [UInt8]
    }

    public var version: UInt32
    public var alignment: Int
    public private(set) var metadata: [(String, GGUFValue)] = []
    public private(set) var tensors: [Tensor] = []

    public init(version: UInt32 = 3, alignment: Int = GGUFFile.defaultAlignment) {
        self.version = version
        self.alignment = alignment
    }

    /// Sets a key, replacing an earlier value of the same key.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.0 == key }) {
            metadata[i].1 = value
        } else {
            metadata.append((key, value))
        }
    }

    /// Adds a tensor whose bytes are already in `type`'s block layout.
    public mutating func addTensor(name: String, type: GGMLType, shape: [Int], data: [UInt8]) throws(GGUFError) {
        guard !shape.isEmpty, shape.count <= 4, shape.allSatisfy({ $0 > 0 }) else {
            throw .writerInvalid("bad shape \(shape) for \(name)")
        }
        guard let row = type.rowBytes(shape[0]) else { throw .writerInvalid("ne[0] of \(name) is not block aligned") }
        let expected = shape.dropFirst().reduce(row, *)
        guard data.count == expected else {
            throw .writerInvalid("\(name): \(data.count) bytes given, \(expected) expected")
        }
        tensors.append(Tensor(name: name, type: type, shape: shape, data: data))
    }

    /// Adds an F32 tensor from floats.
    public mutating func addTensor(name: String, shape: [Int], floats: [Float]) throws(GGUFError) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(floats.count * 4)
        for f in floats { GGUFByteBuilder.appendLE(&bytes, f.bitPattern) }
        try addTensor(name: name, type: .f32, shape: shape, data: bytes)
    }

    /// The complete file.
    public func serialize() -> [UInt8] {
        var b = GGUFByteBuilder()
        b.u32(GGUFFile.magic)
        b.u32(version)
        b.u64(UInt64(tensors.count))
        b.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            b.string(key)
            b.u32(value.type.rawValue)
            b.value(value)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            b.string(t.name)
            b.u32(UInt32(t.shape.count))
            for d in t.shape { b.u64(UInt64(d)) }
            b.u32(t.type.rawValue)
            b.u64(UInt64(off))
        }
        b.pad(to: alignment)
        for t in tensors {
            b.bytes.append(contentsOf: t.data)
            b.pad(to: alignment)
        }
        return b.bytes
    }

    public func write(to path: String) throws(GGUFError) {
        let bytes = serialize()
        guard let f = fopen(path, "wb") else { throw .cannotOpen(path: path, errno: errno) }
        defer { fclose(f) }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, f) }
        guard written == bytes.count else { throw .cannotOpen(path: path, errno: errno) }
    }
}

/// Little-endian byte assembly, public so tests can craft malformed files field by field.
public struct GGUFByteBuilder: Sendable {
    public var bytes: [UInt8] = []
    public init() {}

    static func appendLE<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u32(_ v: UInt32) { Self.appendLE(&bytes, v) }
    public mutating func u64(_ v: UInt64) { Self.appendLE(&bytes, v) }
    public mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    public mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    public mutating func value(_ v: GGUFValue) {
        switch v {
        case let .uint8(x): u8(x)
        case let .int8(x): u8(UInt8(bitPattern: x))
        case let .uint16(x): Self.appendLE(&bytes, x)
        case let .int16(x): Self.appendLE(&bytes, x)
        case let .uint32(x): u32(x)
        case let .int32(x): Self.appendLE(&bytes, x)
        case let .float32(x): u32(x.bitPattern)
        case let .bool(x): u8(x ? 1 : 0)
        case let .string(x): string(x)
        case let .uint64(x): u64(x)
        case let .int64(x): Self.appendLE(&bytes, x)
        case let .float64(x): u64(x.bitPattern)
        case let .array(t, items):
            u32(t.rawValue)
            u64(UInt64(items.count))
            for item in items { value(item) }
        }
    }
}
