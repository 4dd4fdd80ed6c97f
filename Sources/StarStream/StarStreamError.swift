/// Everything the StarStream codec rejects. Each case maps to the code sent in an ERROR frame.
/// After a decoder throws, the byte stream is out of sync: close the connection.
public enum StarStreamError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The first bytes are not "PGSS" (for example an HTTP request).
    case badMagic
    case unsupportedVersion(UInt16)
    case unknownType(UInt16)
    /// A reserved flag bit is set.
    case reservedFlags(UInt32)
    /// The declared payload length is over the receiver's cap (or a frame to encode is over 4 GiB).
    case payloadTooLarge(declared: UInt64, cap: UInt64)
    case checksumMismatch(expected: UInt32, actual: UInt32)
    case badDType(UInt8)
    /// ACTIVATIONS: token count and width disagree with the payload length, or either is zero,
    /// or (when encoding) `values.count != positions.count * width`.
    case shapeMismatch
    /// Q8 needs a width that is a multiple of 32.
    case widthNotMultipleOf32(width: UInt64)
    case positionsNotIncreasing
    /// ACTIVATIONS whose values, decoded to f32, would take more than the cap.
    case decodedSizeTooLarge(bytes: UInt64, cap: UInt64)
    /// A string that is not valid UTF-8.
    case badString
    case stringTooLong(length: Int, max: Int)
    /// A non-ACTIVATIONS payload whose length is not what its fields take.
    case badPayloadLength(type: UInt16, length: UInt32)
    case badRole(UInt8)
    /// HELLO with `firstLayer > endLayer`.
    case badLayerRange(first: UInt32, end: UInt32)
    /// HELLO model digest that is not 32 bytes (encoding only).
    case badDigestLength(Int)
    /// OPEN options with a reserved bit set (only bit 0, logprobs, is defined).
    case badOptions(UInt8)
    /// DONE with a reason byte that is not a `FinishCause`.
    case badFinishReason(UInt8)
    /// A count field over its maximum (OPEN stop tokens ≤ 64, history ≤ 1<<20; on the encode side
    /// also PROMPT tokens ≤ `UInt32.max`). Checked before the counted items are read.
    case countTooLarge(count: UInt64, max: UInt64)
    /// A count that must be positive is 0: OPEN prompt length, PROMPT token count.
    case zeroCount(type: UInt16)
    /// PROMPT whose `firstPosition + count` does not fit in a u32.
    case positionOverflow(first: UInt32, count: UInt64)
    /// A frame other than HELLO or ERROR from a peer that has not been authenticated yet;
    /// refused from its header, before any of its payload is read.
    case notAuthenticated(type: UInt16)

    /// The code carried by an ERROR frame for this failure (1...99 are codec errors).
    public var wireCode: UInt16 {
        switch self {
        case .badMagic: StarStreamErrorCode.badMagic
        case .unsupportedVersion: StarStreamErrorCode.unsupportedVersion
        case .unknownType: StarStreamErrorCode.unknownType
        case .reservedFlags: StarStreamErrorCode.reservedFlags
        case .payloadTooLarge: StarStreamErrorCode.payloadTooLarge
        case .checksumMismatch: StarStreamErrorCode.checksumMismatch
        case .badDType: StarStreamErrorCode.badDType
        case .shapeMismatch: StarStreamErrorCode.shapeMismatch
        case .widthNotMultipleOf32: StarStreamErrorCode.widthNotMultipleOf32
        case .positionsNotIncreasing: StarStreamErrorCode.positionsNotIncreasing
        case .decodedSizeTooLarge: StarStreamErrorCode.decodedSizeTooLarge
        case .badString: StarStreamErrorCode.badString
        case .stringTooLong: StarStreamErrorCode.stringTooLong
        case .badPayloadLength: StarStreamErrorCode.badPayloadLength
        case .badRole: StarStreamErrorCode.badRole
        case .badLayerRange: StarStreamErrorCode.badLayerRange
        case .badDigestLength: StarStreamErrorCode.badDigestLength
        case .badOptions: StarStreamErrorCode.badOptions
        case .badFinishReason: StarStreamErrorCode.badFinishReason
        case .countTooLarge: StarStreamErrorCode.countTooLarge
        case .zeroCount: StarStreamErrorCode.zeroCount
        case .positionOverflow: StarStreamErrorCode.positionOverflow
        case .notAuthenticated: StarStreamErrorCode.notAuthenticated
        }
    }

    public var description: String {
        switch self {
        case .badMagic: "bad magic: not a StarStream frame"
        case .unsupportedVersion(let v): "unsupported protocol version \(v)"
        case .unknownType(let t): "unknown frame type \(t)"
        case .reservedFlags(let f): "reserved flag bits set: \(f)"
        case .payloadTooLarge(let declared, let cap): "payload of \(declared) bytes is over the cap of \(cap)"
        case .checksumMismatch(let expected, let actual): "CRC32C mismatch: header \(expected), payload \(actual)"
        case .badDType(let d): "unknown dtype \(d)"
        case .shapeMismatch: "activation shape disagrees with the payload"
        case .widthNotMultipleOf32(let w): "Q8 width \(w) is not a multiple of 32"
        case .positionsNotIncreasing: "positions are not strictly increasing"
        case .decodedSizeTooLarge(let bytes, let cap): "decoded activations of \(bytes) bytes are over the cap of \(cap)"
        case .badString: "string is not valid UTF-8"
        case .stringTooLong(let length, let max): "string of \(length) bytes is over \(max)"
        case .badPayloadLength(let type, let length): "payload length \(length) is wrong for frame type \(type)"
        case .badRole(let r): "unknown role \(r)"
        case .badLayerRange(let first, let end): "layer range \(first)..<\(end) is reversed"
        case .badDigestLength(let n): "model digest of \(n) bytes, expected 32"
        case .badOptions(let o): "reserved OPEN option bits set: \(o)"
        case .badFinishReason(let r): "unknown finish reason \(r)"
        case .countTooLarge(let count, let max): "count \(count) is over the maximum of \(max)"
        case .zeroCount(let type): "zero count in a frame of type \(type)"
        case .positionOverflow(let first, let count): "positions \(first) + \(count) overflow u32"
        case .notAuthenticated(let type): "frame type \(type) before the handshake (only HELLO is accepted)"
        }
    }
}

/// Codes carried by ERROR frames. 1...99: codec errors (`StarStreamError.wireCode`).
/// 100...: errors the application sends about a well-formed frame.
public enum StarStreamErrorCode {
    public static let badMagic: UInt16 = 1
    public static let unsupportedVersion: UInt16 = 2
    public static let unknownType: UInt16 = 3
    public static let reservedFlags: UInt16 = 4
    public static let payloadTooLarge: UInt16 = 5
    public static let checksumMismatch: UInt16 = 6
    public static let badDType: UInt16 = 7
    public static let shapeMismatch: UInt16 = 8
    public static let widthNotMultipleOf32: UInt16 = 9
    public static let positionsNotIncreasing: UInt16 = 10
    public static let decodedSizeTooLarge: UInt16 = 11
    public static let badString: UInt16 = 12
    public static let stringTooLong: UInt16 = 13
    public static let badPayloadLength: UInt16 = 14
    public static let badRole: UInt16 = 15
    public static let badLayerRange: UInt16 = 16
    public static let badDigestLength: UInt16 = 17
    public static let badOptions: UInt16 = 18
    public static let badFinishReason: UInt16 = 19
    public static let countTooLarge: UInt16 = 20
    public static let zeroCount: UInt16 = 21
    public static let positionOverflow: UInt16 = 22
    public static let notAuthenticated: UInt16 = 23

    /// HELLO refused: wrong cluster token, model digest or layer range.
    public static let unauthorized: UInt16 = 100
    /// A frame for a sequence the receiver does not know.
    public static let unknownSequence: UInt16 = 101
    /// A position that goes backwards relative to what the receiver already has.
    public static let positionOutOfOrder: UInt16 = 102
    /// A token id outside the vocabulary.
    public static let tokenOutOfRange: UInt16 = 103
    /// A frame that is valid but not expected now (e.g. ACTIVATIONS before HELLO).
    public static let unexpectedFrame: UInt16 = 104
    /// The receiver is out of capacity (KV cache, batch slots).
    public static let busy: UInt16 = 105
    /// Pipeline broken: a stage of the ring is unreachable (a connection to a neighbouring node
    /// failed, or a PROBE did not come back), so the sequences in flight cannot finish. The frames
    /// themselves were fine: this tells the driver why its sequences stopped.
    public static let pipelineBroken: UInt16 = 106
    /// A well-formed request the node cannot serve: invalid sampling values, a prompt longer
    /// than the context, activations of the wrong width.
    public static let badRequest: UInt16 = 107
    /// The sequence heard nothing for the node's idle deadline (a frame was lost, or a stage
    /// hung), so the node freed it.
    public static let idleTimeout: UInt16 = 108
    /// Anything else that went wrong on the receiver's side.
    public static let internalError: UInt16 = 199
}
