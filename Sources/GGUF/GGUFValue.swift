/// GGUF metadata value types, numbered as the file format numbers them.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Smallest encoded size of one value, used to reject counts the file cannot hold.
    var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// One metadata value. Arrays are homogeneous, as the format requires.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        case .array: return .array
        }
    }

    /// The value as an integer when it is any integer type that fits in `Int`.
    public var intValue: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(exactly: v)
        case let .bool(v): return v ? 1 : 0
        default: return nil
        }
    }

    /// The value as a float when it is any numeric type.
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case let .bool(b) = self { return b }
        return nil
    }

    public var arrayValue: [GGUFValue]? {
        if case let .array(_, items) = self { return items }
        return nil
    }

    /// A short human-readable rendering, with long arrays elided.
    public var summary: String {
        switch self {
        case let .string(s): return s.count > 60 ? "\"\(s.prefix(57))…\" (\(s.utf8.count) bytes)" : "\"\(s)\""
        case let .array(t, items):
            let head = items.prefix(4).map(\.summary).joined(separator: ", ")
            return "[\(t)] × \(items.count)" + (items.isEmpty ? "" : " [\(head)\(items.count > 4 ? ", …" : "")]")
        case let .float32(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .bool(v): return "\(v)"
        default: return intValue.map { "\($0)" } ?? "?"
        }
    }
}

/// Ordered metadata with typed accessors. Keys keep their file order for display.
public struct GGUFMetadata: Sendable {
    public private(set) var keys: [String] = []
    private var values: [String: GGUFValue] = [:]

    public init() {}

    /// Adds a key; returns false when it already exists.
    @discardableResult
    mutating func insert(_ key: String, _ value: GGUFValue) -> Bool {
        guard values[key] == nil else { return false }
        keys.append(key)
        values[key] = value
        return true
    }

    public subscript(key: String) -> GGUFValue? { values[key] }

    public func int(_ key: String) -> Int? { values[key]?.intValue }
    public func double(_ key: String) -> Double? { values[key]?.doubleValue }
    public func float(_ key: String) -> Float? { values[key]?.doubleValue.map(Float.init) }
    public func string(_ key: String) -> String? { values[key]?.stringValue }
    public func bool(_ key: String) -> Bool? { values[key]?.boolValue }

    public func requireInt(_ key: String) throws(GGUFError) -> Int {
        guard let v = values[key] else { throw .missingKey(key) }
        guard let i = v.intValue else { throw .wrongKeyType(key: key, expected: "an integer") }
        return i
    }

    public func stringArray(_ key: String) -> [String]? {
        values[key]?.arrayValue?.compactMap(\.stringValue)
    }

    public func intArray(_ key: String) -> [Int]? {
        values[key]?.arrayValue?.compactMap(\.intValue)
    }

    public func floatArray(_ key: String) -> [Float]? {
        values[key]?.arrayValue?.compactMap { $0.doubleValue.map(Float.init) }
    }
}
