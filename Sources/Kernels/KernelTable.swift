#if canImport(Glibc)
import Glibc
#endif
import CKernels
import GGUF

/// The instruction-set levels the C kernels are compiled for, lowest first. A level runs only
/// where cpuid lists its instructions and the OS enables their registers (xgetbv), so a CPU
/// without AVX2 runs the plain C twins instead of dying on SIGILL.
public enum ISALevel: Int, Comparable, CaseIterable, Sendable, CustomStringConvertible {
    /// Plain C, any CPU.
    case reference = 0
    /// AVX2, FMA and F16C.
    case avx2 = 1
    /// AVX2 with AVX-VNNI, the VEX-encoded int8 dot products (Alder Lake, Zen 5).
    case avxVNNI = 2
    /// AVX-512 F, BW, VL and VNNI (Zen 4, Ice Lake and later Xeons).
    case avx512 = 3

    public static func < (a: ISALevel, b: ISALevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .reference: "reference C"
        case .avx2: "AVX2"
        case .avxVNNI: "AVX2+AVX-VNNI"
        case .avx512: "AVX-512+VNNI"
        }
    }

    /// The highest level this CPU and OS support.
    public static var best: ISALevel { ISALevel(rawValue: Int(pg_isa_best())) ?? .reference }

    /// The level this process runs: `PANGALACTIC_ISA=ref|avx2|avxvnni|avx512|amx` forces one (at
    /// most `best`; there are no AMX kernels, so `amx` means the best vector level), else `best`.
    public static var active: ISALevel { ISALevel(rawValue: Int(pg_isa_active())) ?? .reference }

    /// Whether `PANGALACTIC_ISA` asked for a level this machine lacks.
    public static var requestWasCapped: Bool { pg_isa_request_capped() != 0 }

    /// Every level this machine can run, for tests that compare each with the C twins.
    public static var available: [ISALevel] {
        let features = pg_cpu_features()
        return allCases.filter { $0 <= best && ($0 != .avxVNNI || features & UInt32(PG_CPU_AVX_VNNI) != 0) }
    }
}

/// What cpuid and xgetbv report, for `pangalactic bench` and logs.
public enum CPUFeatures {
    /// The features that matter to the kernels, by name.
    public static var names: [String] {
        let f = pg_cpu_features()
        let all: [(Int, String)] = [
            (PG_CPU_AVX2, "avx2"), (PG_CPU_FMA, "fma"), (PG_CPU_F16C, "f16c"), (PG_CPU_AVX_VNNI, "avx_vnni"),
            (PG_CPU_AVX512F, "avx512f"), (PG_CPU_AVX512BW, "avx512bw"), (PG_CPU_AVX512VL, "avx512vl"),
            (PG_CPU_AVX512_VNNI, "avx512_vnni"), (PG_CPU_AVX512_BF16, "avx512_bf16"), (PG_CPU_AMX_TILE, "amx_tile"),
            (PG_CPU_AMX_INT8, "amx_int8"), (PG_CPU_OS_YMM, "os:ymm"), (PG_CPU_OS_ZMM, "os:zmm"),
            (PG_CPU_OS_AMX_XCR0, "os:amx-xcr0"),
        ]
        return all.filter { f & UInt32($0.0) != 0 }.map(\.1)
    }

    /// Why AMX is not used: the kernels have no AMX path, and on this machine the tile state is
    /// not even offered where cpuid lists AMX but XCR0 or arch_prctl refuse it.
    public static var amxStatus: String {
        let f = pg_cpu_features()
        guard f & UInt32(PG_CPU_AMX_TILE) != 0 else { return "AMX: not on this CPU" }
        guard f & UInt32(PG_CPU_OS_AMX_XCR0) != 0 else { return "AMX: listed by cpuid, but XCR0 leaves the tile state off (not used)" }
        return pg_amx_request() != 0
            ? "AMX: granted by the OS, but no AMX kernels are built (not used)"
            : "AMX: arch_prctl refused the tile state (not used)"
    }
}

/// The kernels one weight type runs at one level: resolved once, when a model's matrices are
/// grouped at load (as ggml resolves its type traits), never chosen inside the parallel loop.
public struct WeightKernels: @unchecked Sendable {
    public typealias Dot = @convention(c) (Int64, UnsafeRawPointer?, UnsafeRawPointer?) -> Float
    public typealias Dot4 = @convention(c) (Int64, UnsafeRawPointer?, UnsafeRawPointer?, Int64, Int64, UnsafeMutablePointer<Float>?) -> Void
    public typealias Unpack = @convention(c) (UnsafeRawPointer?, Int64, UnsafeMutableRawPointer?, UnsafeMutablePointer<Float>?) -> Void
    public typealias UnpackedDot4 = @convention(c) (Int64, UnsafeRawPointer?, UnsafePointer<Float>?, UnsafeRawPointer?, Int64,
                                                    UnsafePointer<Float>?, Int64, UnsafeMutablePointer<Float>?) -> Void
    /// Eight weight rows (a stride apart) with one activation row: (n, w, wStride, a, out[8]).
    public typealias Dot8 = @convention(c) (Int64, UnsafeRawPointer?, Int64, UnsafeRawPointer?, UnsafeMutablePointer<Float>?) -> Void
    /// Eight weight rows interleaved for `PackedGemm`: (w, wStride, blocks, packed).
    public typealias Pack8 = @convention(c) (UnsafeRawPointer?, Int64, Int64, UnsafeMutableRawPointer?) -> Void
    /// Eight packed rows against many tokens: (blocks, packed, a, aStride, tokens, scales,
    /// scaleStride, out, outStride).
    public typealias PackedGemm = @convention(c) (Int64, UnsafeRawPointer?, UnsafeRawPointer?, Int64, Int64, UnsafePointer<Float>?,
                                                  Int64, UnsafeMutablePointer<Float>?, Int64) -> Void

    /// How prefill (four or more token rows) meets this weight type.
    public enum Prefill: Sendable, CustomStringConvertible {
        /// One dot product per (row, token): float weights and the reference level.
        case rowByRow
        /// K-quants: each weight block unpacked once for four token rows (`dot4`).
        case fourRows
        /// Formats with a min (Q4_1, Q5_1): the weight row unpacked once into bytes for every
        /// chunk of tokens.
        case unpackedRow
        /// The Q8_0-paired formats: eight weight rows interleaved once, then met by every token
        /// with one exact integer sum per (block, row) and one FMA per eight rows.
        case packedRows

        public var description: String {
            switch self {
            case .rowByRow: "row by row"
            case .fourRows: "4 rows per weight block"
            case .unpackedRow: "unpacked row × 4 tokens"
            case .packedRows: "8 or 16 interleaved rows × 4 tokens"
            }
        }
    }

    public let format: ActivationFormat
    /// Whether `packedGemm` reads the activations biased to unsigned bytes
    /// (`KernelTable.biasRows`) rather than as Q8_0 blocks (the VNNI levels).
    public let biasedActivations: Bool
    /// Decode: one weight row with one quantized activation row (nil for float weights).
    public let dot: Dot?
    public let dot4: Dot4?
    public let unpack: Unpack?
    public let unpackedDot4: UnpackedDot4?
    /// Decode of the Q8_0-paired formats, eight rows at a time (same result as `dot` per row).
    public let dot8: Dot8?
    public let pack8: Pack8?
    public let packedGemm: PackedGemm?
    /// The AVX-512 level's sixteen-row forms of `pack8` and `packedGemm` (same results, each
    /// broadcast activation word serving sixteen rows).
    public let pack16: Pack8?
    public let packedGemm16: PackedGemm?

    init(format: ActivationFormat, biasedActivations: Bool = false, dot: Dot?, dot4: Dot4? = nil, unpack: Unpack? = nil,
         unpackedDot4: UnpackedDot4? = nil, dot8: Dot8? = nil, pack8: Pack8? = nil, packedGemm: PackedGemm? = nil,
         pack16: Pack8? = nil, packedGemm16: PackedGemm? = nil) {
        self.format = format
        self.biasedActivations = biasedActivations
        self.dot = dot
        self.dot4 = dot4
        self.unpack = unpack
        self.unpackedDot4 = unpackedDot4
        self.dot8 = dot8
        self.pack8 = pack8
        self.packedGemm = packedGemm
        self.pack16 = pack16
        self.packedGemm16 = packedGemm16
    }

    /// `pack16` and `packedGemm16` together, where this level has them.
    public var wide: (Pack8, PackedGemm)? {
        guard let p = pack16, let g = packedGemm16 else { return nil }
        return (p, g)
    }

    public var prefill: Prefill {
        packedGemm != nil ? .packedRows : unpack != nil ? .unpackedRow : dot4 != nil ? .fourRows : .rowByRow
    }
}

/// Every kernel of one ISA level: per weight type, the activation quantizers and the scale
/// converters prefill needs. `KernelTable.active` is the process's; tests build one per level.
public struct KernelTable: @unchecked Sendable {
    public typealias Quantize = @convention(c) (UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int64) -> Void
    public typealias RowScales = @convention(c) (UnsafeRawPointer?, Int64, Int64, Int64, UnsafeMutablePointer<Float>?) -> Void
    public typealias BiasRows = @convention(c) (UnsafeRawPointer?, Int64, Int64, Int64, UnsafeMutableRawPointer?) -> Void

    public let level: ISALevel
    let quantizeQ8_0: Quantize
    let quantizeQ8_1: Quantize
    let quantizeQ8_K: Quantize
    let q8_0RowScales: RowScales?
    let q8_1RowScales: RowScales?
    /// Q8_0 activation rows biased to unsigned bytes, for the VNNI levels' prefill.
    public let biasRows: BiasRows?
    private let dots: [GGMLType: WeightKernels.Dot]
    private let dot4s: [GGMLType: WeightKernels.Dot4]
    private let unsignedUnpacks: [GGMLType: WeightKernels.Unpack]
    private let unpackedDot4Unsigned: WeightKernels.UnpackedDot4?
    private let dot8s: [GGMLType: WeightKernels.Dot8]
    private let pack8s: [GGMLType: WeightKernels.Pack8]
    private let gemm8: WeightKernels.PackedGemm?
    private let pack16s: [GGMLType: WeightKernels.Pack8]
    private let gemm16: WeightKernels.PackedGemm?

    /// The process's table, at `ISALevel.active`.
    public static let active = KernelTable(level: .active)

    /// The table of `level`. Only run it where `ISALevel.available` lists the level.
    public init(level: ISALevel) {
        self.level = level
        switch level {
        case .reference:
            (quantizeQ8_0, quantizeQ8_1, quantizeQ8_K) = (pg_quantize_row_q8_0_ref, pg_quantize_row_q8_1_ref, pg_quantize_row_q8_K_ref)
            (q8_0RowScales, q8_1RowScales) = (nil, nil)
            biasRows = nil
            dots = [.q4_0: pg_vec_dot_q4_0_q8_0_ref, .q4_1: pg_vec_dot_q4_1_q8_1_ref, .q5_0: pg_vec_dot_q5_0_q8_0_ref,
                    .q5_1: pg_vec_dot_q5_1_q8_1_ref, .q8_0: pg_vec_dot_q8_0_q8_0_ref, .q4_K: pg_vec_dot_q4_K_q8_K_ref,
                    .q5_K: pg_vec_dot_q5_K_q8_K_ref, .q6_K: pg_vec_dot_q6_K_q8_K_ref]
            dot4s = [:]
            unsignedUnpacks = [:]
            unpackedDot4Unsigned = nil
            (dot8s, pack8s, gemm8) = ([:], [:], nil)
            (pack16s, gemm16) = ([:], nil)
        case .avx2:
            (quantizeQ8_0, quantizeQ8_1, quantizeQ8_K) = (pg_quantize_row_q8_0_avx2, pg_quantize_row_q8_1_avx2, pg_quantize_row_q8_K_avx2)
            (q8_0RowScales, q8_1RowScales) = (pg_q8_0_row_scales_avx2, pg_q8_1_row_scales_avx2)
            biasRows = nil
            dots = [.q4_0: pg_vec_dot_q4_0_q8_0_avx2, .q4_1: pg_vec_dot_q4_1_q8_1_avx2, .q5_0: pg_vec_dot_q5_0_q8_0_avx2,
                    .q5_1: pg_vec_dot_q5_1_q8_1_avx2, .q8_0: pg_vec_dot_q8_0_q8_0_avx2, .q4_K: pg_vec_dot_q4_K_q8_K_avx2,
                    .q5_K: pg_vec_dot_q5_K_q8_K_avx2, .q6_K: pg_vec_dot_q6_K_q8_K_avx2]
            dot4s = [.q4_K: pg_vec_dot4_q4_K_q8_K_avx2, .q5_K: pg_vec_dot4_q5_K_q8_K_avx2, .q6_K: pg_vec_dot4_q6_K_q8_K_avx2]
            unsignedUnpacks = [.q4_1: pg_unpack_q4_1_avx2, .q5_1: pg_unpack_q5_1_avx2]
            unpackedDot4Unsigned = pg_vec_dot4u_u8_q8_1_avx2
            dot8s = [.q4_0: pg_vec_dot8_q4_0_q8_0_avx2, .q5_0: pg_vec_dot8_q5_0_q8_0_avx2, .q8_0: pg_vec_dot8_q8_0_q8_0_avx2]
            pack8s = [.q4_0: pg_pack8_q4_0_avx2, .q5_0: pg_pack8_q5_0_avx2, .q8_0: pg_pack8_q8_0_avx2]
            gemm8 = pg_gemm8_q8_0_avx2
            (pack16s, gemm16) = ([:], nil)
        case .avxVNNI:
            (quantizeQ8_0, quantizeQ8_1, quantizeQ8_K) = (pg_quantize_row_q8_0_avxvnni, pg_quantize_row_q8_1_avxvnni, pg_quantize_row_q8_K_avxvnni)
            (q8_0RowScales, q8_1RowScales) = (pg_q8_0_row_scales_avxvnni, pg_q8_1_row_scales_avxvnni)
            biasRows = pg_q8_0_bias_rows_avxvnni
            dots = [.q4_0: pg_vec_dot_q4_0_q8_0_avxvnni, .q4_1: pg_vec_dot_q4_1_q8_1_avxvnni, .q5_0: pg_vec_dot_q5_0_q8_0_avxvnni,
                    .q5_1: pg_vec_dot_q5_1_q8_1_avxvnni, .q8_0: pg_vec_dot_q8_0_q8_0_avxvnni, .q4_K: pg_vec_dot_q4_K_q8_K_avxvnni,
                    .q5_K: pg_vec_dot_q5_K_q8_K_avxvnni, .q6_K: pg_vec_dot_q6_K_q8_K_avxvnni]
            dot4s = [.q4_K: pg_vec_dot4_q4_K_q8_K_avxvnni, .q5_K: pg_vec_dot4_q5_K_q8_K_avxvnni, .q6_K: pg_vec_dot4_q6_K_q8_K_avxvnni]
            unsignedUnpacks = [.q4_1: pg_unpack_q4_1_avxvnni, .q5_1: pg_unpack_q5_1_avxvnni]
            unpackedDot4Unsigned = pg_vec_dot4u_u8_q8_1_avxvnni
            dot8s = [.q4_0: pg_vec_dot8_q4_0_q8_0_avxvnni, .q5_0: pg_vec_dot8_q5_0_q8_0_avxvnni, .q8_0: pg_vec_dot8_q8_0_q8_0_avxvnni]
            pack8s = [.q4_0: pg_pack8_q4_0_avxvnni, .q5_0: pg_pack8_q5_0_avxvnni, .q8_0: pg_pack8_q8_0_avxvnni]
            gemm8 = pg_gemm8_q8_0_avxvnni
            (pack16s, gemm16) = ([:], nil)
        case .avx512:
            (quantizeQ8_0, quantizeQ8_1, quantizeQ8_K) = (pg_quantize_row_q8_0_avx512, pg_quantize_row_q8_1_avx512, pg_quantize_row_q8_K_avx512)
            (q8_0RowScales, q8_1RowScales) = (pg_q8_0_row_scales_avx512, pg_q8_1_row_scales_avx512)
            biasRows = pg_q8_0_bias_rows_avx512
            dots = [.q4_0: pg_vec_dot_q4_0_q8_0_avx512, .q4_1: pg_vec_dot_q4_1_q8_1_avx512, .q5_0: pg_vec_dot_q5_0_q8_0_avx512,
                    .q5_1: pg_vec_dot_q5_1_q8_1_avx512, .q8_0: pg_vec_dot_q8_0_q8_0_avx512, .q4_K: pg_vec_dot_q4_K_q8_K_avx512,
                    .q5_K: pg_vec_dot_q5_K_q8_K_avx512, .q6_K: pg_vec_dot_q6_K_q8_K_avx512]
            dot4s = [.q4_K: pg_vec_dot4_q4_K_q8_K_avx512, .q5_K: pg_vec_dot4_q5_K_q8_K_avx512, .q6_K: pg_vec_dot4_q6_K_q8_K_avx512]
            unsignedUnpacks = [.q4_1: pg_unpack_q4_1_avx512, .q5_1: pg_unpack_q5_1_avx512]
            unpackedDot4Unsigned = pg_vec_dot4u_u8_q8_1_avx512
            dot8s = [.q4_0: pg_vec_dot8_q4_0_q8_0_avx512, .q5_0: pg_vec_dot8_q5_0_q8_0_avx512, .q8_0: pg_vec_dot8_q8_0_q8_0_avx512]
            pack8s = [.q4_0: pg_pack8_q4_0_avx512, .q5_0: pg_pack8_q5_0_avx512, .q8_0: pg_pack8_q8_0_avx512]
            gemm8 = pg_gemm8_q8_0_avx512
            pack16s = [.q4_0: pg_pack16_q4_0_avx512, .q5_0: pg_pack16_q5_0_avx512, .q8_0: pg_pack16_q8_0_avx512]
            gemm16 = pg_gemm16_q8_0_avx512
        }
    }

    /// The kernels for weights of `type`.
    public func kernels(for type: GGMLType) -> WeightKernels {
        let format = ActivationFormat(pairingWith: type)
        if let p = pack8s[type], let g = gemm8 {
            return WeightKernels(format: format, biasedActivations: biasRows != nil, dot: dots[type], dot8: dot8s[type], pack8: p, packedGemm: g,
                                 pack16: pack16s[type], packedGemm16: gemm16)
        }
        if let u = unsignedUnpacks[type], let d = unpackedDot4Unsigned {
            return WeightKernels(format: format, dot: dots[type], unpack: u, unpackedDot4: d)
        }
        return WeightKernels(format: format, dot: dots[type], dot4: dot4s[type])
    }

    /// The quantizer for one activation format (nil for f32, which is copied).
    public func quantizer(_ format: ActivationFormat) -> Quantize? {
        switch format {
        case .f32: nil
        case .q8_0: quantizeQ8_0
        case .q8_1: quantizeQ8_1
        case .q8_K: quantizeQ8_K
        }
    }

    /// The converter of a block-scaled activation format's scales to floats, which prefill
    /// reads (nil where this level has no prefill strategy for the format).
    public func rowScales(_ format: ActivationFormat) -> RowScales? {
        switch format {
        case .q8_0: q8_0RowScales
        case .q8_1: q8_1RowScales
        default: nil
        }
    }

    /// The SIMD levels this machine runs (every available level but the plain C one).
    public static var simdLevels: [ISALevel] { ISALevel.available.filter { $0 != .reference } }

    /// One line per weight type: what decode and prefill run at this level.
    public func describe(_ types: [GGMLType]) -> [String] {
        types.map { t in
            let k = kernels(for: t)
            guard k.dot != nil else { return "\(t): float rows (\(level >= .avx2 ? "AVX2" : "C"))" }
            return "\(t): \(level) dot\(k.dot8 != nil ? " (8 rows at a time)" : "") with \(k.format), prefill \(k.prefill)"
        }
    }
}
