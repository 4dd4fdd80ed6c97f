import GGUF

/// A read-only weight matrix in its stored format: `rows` rows of `columns` values each, laid
/// out row after row. It points into the memory-mapped model file, so quantized weights are
/// never expanded in memory.
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let columns: Int
    public let data: UnsafeRawPointer
    public let rowBytes: Int

    public enum ShapeError: Error, Equatable, CustomStringConvertible {
        case unsupportedType(GGMLType)
        case notBlockAligned(columns: Int, type: GGMLType)
        case activationTypeUnavailable(GGMLType)

        public var description: String {
            switch self {
            case let .unsupportedType(t): return "no kernel for weights of type \(t)"
            case let .notBlockAligned(c, t): return "\(c) columns is not a whole number of \(t) blocks"
            case let .activationTypeUnavailable(t): return "no activation format pairs with \(t)"
            }
        }
    }

    public init(type: GGMLType, rows: Int, columns: Int, data: UnsafeRawPointer) throws(ShapeError) {
        guard type.isComputable else { throw .unsupportedType(type) }
        guard let rb = type.rowBytes(columns) else { throw .notBlockAligned(columns: columns, type: type) }
        self.type = type
        self.rows = rows
        self.columns = columns
        self.data = data
        rowBytes = rb
    }

    @inline(__always) public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Expands one row to floats (embedding lookup).
    public func dequantizeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        Dequantize.row(type, row(r), dst, count: columns)
    }
}

/// The format activations are quantized to before they meet weights of a given type.
public enum ActivationFormat: Sendable {
    case f32, q8_0, q8_1, q8_K

    public init(pairingWith weights: GGMLType) {
        switch weights {
        case .q4_0, .q5_0, .q8_0: self = .q8_0
        case .q4_1, .q5_1: self = .q8_1
        case .q4_K, .q5_K, .q6_K: self = .q8_K
        default: self = .f32
        }
    }

    /// Bytes that one row of `columns` activations takes in this format.
    public func rowBytes(_ columns: Int) -> Int {
        switch self {
        case .f32: return columns * 4
        case .q8_0: return columns / 32 * 34
        case .q8_1: return columns / 32 * 36
        case .q8_K: return columns / 256 * 292
        }
    }
}
