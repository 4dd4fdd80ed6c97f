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

/// Matrices that multiply the same activations (Q|K|V, gate|up), run as one parallel region.
/// Built once at model load, so the forward pass allocates nothing.
public struct MatrixGroup: @unchecked Sendable {
    public let matrices: [WeightMatrix]
    public let columns: Int
    public let totalRows: Int
    /// First global row of each matrix.
    let rowOffsets: [Int]
    /// Distinct partner formats of the group, and each matrix's index into them.
    let formats: [ActivationFormat]
    let formatIndex: [Int]
    /// Each matrix's kernels, resolved once from `table`.
    let kernels: [WeightKernels]
    /// The ISA level's kernels the group runs (the process's, unless a test chose one).
    public let table: KernelTable

    public enum GroupError: Error, Equatable {
        case empty
        case columnMismatch
    }

    public init(_ matrices: [WeightMatrix], table: KernelTable = .active) throws(GroupError) {
        guard let first = matrices.first else { throw .empty }
        guard matrices.allSatisfy({ $0.columns == first.columns }) else { throw .columnMismatch }
        self.init(unchecked: matrices, table: table)
    }

    /// A group of one matrix.
    public init(single matrix: WeightMatrix, table: KernelTable = .active) { self.init(unchecked: [matrix], table: table) }

    init(unchecked matrices: [WeightMatrix], table: KernelTable) {
        self.matrices = matrices
        self.table = table
        kernels = matrices.map { table.kernels(for: $0.type) }
        columns = matrices.first?.columns ?? 0
        var offsets: [Int] = [], total = 0
        var formats: [ActivationFormat] = [], index: [Int] = []
        for w in matrices {
            offsets.append(total)
            total += w.rows
            let f = ActivationFormat(pairingWith: w.type)
            if let i = formats.firstIndex(of: f) {
                index.append(i)
            } else {
                index.append(formats.count)
                formats.append(f)
            }
        }
        rowOffsets = offsets
        totalRows = total
        self.formats = formats
        formatIndex = index
    }

    /// Where format `f`'s quantized activations start in the scratch buffer.
    func scratchOffset(format f: Int, tokens: Int) -> Int {
        var offset = 0
        for i in 0 ..< f { offset += (formats[i].rowBytes(columns) * tokens + 63) / 64 * 64 }
        return offset
    }

    /// Where the float scales of the Q8_0 activation blocks start (prefill reads them as floats).
    func scaleOffset(tokens: Int) -> Int { scratchOffset(format: formats.count, tokens: tokens) }

    /// Where the float (d, s) pairs of the Q8_1 activation blocks start (prefill reads them as floats).
    func pairScaleOffset(tokens: Int) -> Int {
        scaleOffset(tokens: tokens) + (formats.contains(.q8_0) ? (tokens * (columns / 32) * 4 + 63) / 64 * 64 : 0)
    }

    /// Where the biased Q8_0 activation bytes start (the VNNI levels' prefill reads them).
    func biasOffset(tokens: Int) -> Int {
        pairScaleOffset(tokens: tokens) + (formats.contains(.q8_1) ? (tokens * (columns / 32) * 8 + 63) / 64 * 64 : 0)
    }

    /// Scratch bytes that any group whose inputs are at most `columns` wide needs for `tokens`
    /// rows, whatever its formats and level: every partner format, the float scales, the pair
    /// scales and the biased bytes, each rounded as the group rounds them.
    public static func maximumScratchBytes(columns: Int, tokens: Int) -> Int {
        func region(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }
        let formats: [ActivationFormat] = [.f32, .q8_0, .q8_1, .q8_K]
        return formats.reduce(0) { $0 + region($1.rowBytes(columns) * tokens) }
            + region(tokens * (columns / 32) * 4) + region(tokens * (columns / 32) * 8) + region(tokens * columns) + 64
    }

    /// Scratch bytes a multiply of `tokens` rows needs.
    public func scratchBytes(tokens: Int) -> Int {
        biasOffset(tokens: tokens) + (formats.contains(.q8_0) && table.biasRows != nil ? (tokens * columns + 63) / 64 * 64 : 0)
    }
}
