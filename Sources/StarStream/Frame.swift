// StarStream frame model: header, payload types and limits. See docs/starstream.md for the bytes.

/// The frame types of StarStream version 1.
public enum StarStreamFrameType: UInt16, Sendable, CaseIterable {
    case hello = 1
    case activations = 2
    case token = 3
    case cancel = 4
    case error = 5
    case ping = 6
    case pong = 7
}

/// Element type of an ACTIVATIONS payload on the wire. Receivers always get `Float` values.
public enum WireDType: UInt8, Sendable, CaseIterable {
    /// Little-endian IEEE binary32, exact.
    case f32 = 0
    /// Little-endian IEEE binary16, round to nearest even.
    case f16 = 1
    /// Per row, `width / 32` blocks of { f32 scale, 32 x i8 }; value = scale * q.
    case q8 = 2

    /// Values per Q8 block.
    public static let q8BlockValues = 32
    /// Bytes per Q8 block: a 4-byte scale and 32 signed bytes.
    public static let q8BlockBytes = 36
}

/// The fixed 32-byte frame header.
public struct FrameHeader: Sendable, Equatable {
    public static let size = 32
    /// "PGSS" as it appears on the wire.
    public static let magicBytes: [UInt8] = [0x50, 0x47, 0x53, 0x53]
    /// "PGSS" read as a little-endian u32.
    public static let magic: UInt32 = 0x5353_4750
    /// The only protocol version this module speaks.
    public static let currentVersion: UInt16 = 1
    /// Every flag bit is reserved in version 1 and must be zero. Bit 0 is set aside for a future
    /// "sampling parameters follow" extension of a sequence's first ACTIVATIONS frame.
    public static let reservedFlagsMask: UInt32 = 0xFFFF_FFFF

    public var version: UInt16
    public var type: StarStreamFrameType
    public var flags: UInt32
    public var sequenceID: UInt64
    public var position: UInt32
    public var payloadLength: UInt32
    public var checksum: UInt32

    public init(
        version: UInt16 = FrameHeader.currentVersion, type: StarStreamFrameType, flags: UInt32 = 0,
        sequenceID: UInt64, position: UInt32, payloadLength: UInt32, checksum: UInt32
    ) {
        self.version = version
        self.type = type
        self.flags = flags
        self.sequenceID = sequenceID
        self.position = position
        self.payloadLength = payloadLength
        self.checksum = checksum
    }
}

/// Who sent a HELLO.
public enum StarStreamRole: UInt8, Sendable, CaseIterable {
    /// The gateway / driver that owns the sequences.
    case driver = 0
    /// A node that serves a range of layers.
    case node = 1
}

/// HELLO: the first frame in each direction on a connection.
public struct Hello: Sendable, Equatable {
    public static let digestLength = 32
    public static let maxClusterTokenBytes = 256

    public var protocolVersion: UInt16
    public var role: StarStreamRole
    /// Shared secret of the cluster, at most 256 UTF-8 bytes.
    public var clusterToken: String
    /// SHA-256 of the model file, exactly 32 bytes.
    public var modelDigest: [UInt8]
    /// The sender's layer range `firstLayer ..< endLayer`; 0, 0 for a driver.
    public var firstLayer: UInt32
    public var endLayer: UInt32

    public init(
        protocolVersion: UInt16 = FrameHeader.currentVersion, role: StarStreamRole, clusterToken: String,
        modelDigest: [UInt8], firstLayer: UInt32 = 0, endLayer: UInt32 = 0
    ) {
        self.protocolVersion = protocolVersion
        self.role = role
        self.clusterToken = clusterToken
        self.modelDigest = modelDigest
        self.firstLayer = firstLayer
        self.endLayer = endLayer
    }
}

/// ACTIVATIONS: hidden states of `positions.count` tokens, row-major `[token][width]`.
public struct Activations: Sendable, Equatable {
    /// How the values travel (decoded frames report the dtype they arrived in).
    public var dtype: WireDType
    /// Sequence positions of the rows, strictly increasing.
    public var positions: [UInt32]
    /// Values per row (n_embd). A multiple of 32 for Q8.
    public var width: Int
    /// `positions.count * width` values.
    public var values: [Float]

    public init(dtype: WireDType, positions: [UInt32], width: Int, values: [Float]) {
        self.dtype = dtype
        self.positions = positions
        self.width = width
        self.values = values
    }

    public var tokenCount: Int { positions.count }
}

/// TOKEN: the sampled token of a sequence step.
public struct TokenMessage: Sendable, Equatable {
    public var tokenID: Int32
    /// Log-probability of the token; nil travels as NaN.
    public var logprob: Float?

    public init(tokenID: Int32, logprob: Float? = nil) {
        self.tokenID = tokenID
        self.logprob = logprob
    }
}

public enum StarStreamPayload: Sendable, Equatable {
    case hello(Hello)
    case activations(Activations)
    case token(TokenMessage)
    case cancel
    /// `message` is at most 1024 UTF-8 bytes.
    case error(code: UInt16, message: String)
    case ping(UInt64)
    case pong(UInt64)

    public var frameType: StarStreamFrameType {
        switch self {
        case .hello: .hello
        case .activations: .activations
        case .token: .token
        case .cancel: .cancel
        case .error: .error
        case .ping: .ping
        case .pong: .pong
        }
    }

    public static let maxErrorMessageBytes = 1024
}

public struct StarStreamFrame: Sendable, Equatable {
    /// The sequence (request) this frame belongs to; 0 for connection-level frames.
    public var sequenceID: UInt64
    /// The step / position in the sequence this frame is about.
    public var position: UInt32
    public var payload: StarStreamPayload

    public init(sequenceID: UInt64 = 0, position: UInt32 = 0, payload: StarStreamPayload) {
        self.sequenceID = sequenceID
        self.position = position
        self.payload = payload
    }
}

/// What a receiver accepts. The decoder rejects any frame whose declared payload length is over
/// `maxPayloadBytes` as soon as the header arrives, before buffering or allocating that much, and
/// any ACTIVATIONS frame whose decoded `Float` values would take more than `maxPayloadBytes`.
public struct StarStreamLimits: Sendable, Equatable {
    /// The largest payload a control frame can have: ERROR with a 1024-byte message.
    public static let controlPayloadBytes = 2 + 2 + StarStreamPayload.maxErrorMessageBytes
    /// ACTIVATIONS fixed fields: dtype u8, token count u32, width u32.
    public static let activationsFixedBytes = 9

    public var maxPayloadBytes: Int

    public init(maxPayloadBytes: Int) {
        self.maxPayloadBytes = max(0, maxPayloadBytes)
    }

    /// Room for one F32 ACTIVATIONS frame of `maxBatchTokens` rows of `width` values (and its
    /// positions), and never less than the largest control frame. Clamped to `UInt32.max`.
    public init(maxBatchTokens: Int, width: Int) {
        let tokens = max(0, maxBatchTokens)
        let width = max(0, width)
        let ceiling = Int(UInt32.max)
        var bytes = ceiling
        let (values, overflow1) = tokens.multipliedReportingOverflow(by: width)
        let (valueBytes, overflow2) = values.multipliedReportingOverflow(by: 4)
        let (positionBytes, overflow3) = tokens.multipliedReportingOverflow(by: 4)
        if !overflow1 && !overflow2 && !overflow3 {
            let (sum, overflow4) = valueBytes.addingReportingOverflow(positionBytes)
            if !overflow4 && sum <= ceiling - Self.activationsFixedBytes {
                bytes = sum + Self.activationsFixedBytes
            }
        }
        self.maxPayloadBytes = max(bytes, Self.controlPayloadBytes)
    }
}
