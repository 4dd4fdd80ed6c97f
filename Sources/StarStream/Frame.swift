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
    /// Opens a sequence on every node of the ring (driver → node 0 → … → last node).
    case open = 8
    /// Prompt tokens of a sequence, for node 0.
    case prompt = 9
    /// Node 0 tells the driver that a sequence has ended.
    case done = 10
    /// Ring liveness probe: forwarded to the next stage, not answered.
    case probe = 11
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
    /// Every flag bit is reserved in version 1 and must be zero. (Bit 0 was once set aside for
    /// "sampling parameters follow" on a sequence's first ACTIVATIONS frame; OPEN carries them now.)
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

/// A candidate token and its log-probability under the model.
public struct TokenAlternative: Sendable, Equatable {
    public var tokenID: Int32
    public var logprob: Float

    public init(tokenID: Int32, logprob: Float) {
        self.tokenID = tokenID
        self.logprob = logprob
    }
}

/// TOKEN: the sampled token of a sequence step.
public struct TokenMessage: Sendable, Equatable {
    /// Most alternatives a TOKEN carries (OpenAI's `top_logprobs` limit).
    public static let maxAlternatives = 20

    public var tokenID: Int32
    /// Log-probability of the token; nil travels as NaN.
    public var logprob: Float?
    /// The most likely tokens under the model at this step, most likely first, when the
    /// sequence asked for them (OPEN's top-logprobs option); empty otherwise.
    public var alternatives: [TokenAlternative]

    public init(tokenID: Int32, logprob: Float? = nil, alternatives: [TokenAlternative] = []) {
        self.tokenID = tokenID
        self.logprob = logprob
        self.alternatives = alternatives
    }
}

/// The sampling settings of a sequence as they travel in OPEN. The same fields as the Sampling
/// module's `SamplingParameters` (StarStream does not depend on it), with fixed-width integers.
/// The codec checks only the structure: the node validates the values (`validate()` there)
/// before it builds a sampler, so NaN or a negative temperature travel as they are.
public struct WireSampling: Sendable, Equatable {
    /// `0` = greedy.
    public var temperature: Float
    /// `0` disables top-k.
    public var topK: UInt32
    public var topP: Float
    public var minP: Float
    public var repetitionPenalty: Float
    public var frequencyPenalty: Float
    public var presencePenalty: Float
    /// How many recent tokens the penalties see; `0` disables them.
    public var penaltyLastN: UInt32
    public var seed: UInt64

    public init(
        temperature: Float, topK: UInt32, topP: Float, minP: Float, repetitionPenalty: Float,
        frequencyPenalty: Float, presencePenalty: Float, penaltyLastN: UInt32, seed: UInt64
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.penaltyLastN = penaltyLastN
        self.seed = seed
    }
}

extension WireSampling {
    /// Argmax decoding with every filter and penalty off (benchmarks, tests, reference runs).
    public static let greedy = WireSampling(temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1,
                                            frequencyPenalty: 0, presencePenalty: 0, penaltyLastN: 0, seed: 0)
}

/// OPEN: everything the nodes need to set a sequence up before its first token arrives. The
/// driver sends it to node 0 and each node forwards it, so every node allocates the sequence's
/// KV cache and the last node builds its sampler; the header's sequence id names the sequence.
public struct SequenceOpen: Sendable, Equatable {
    /// Bytes of the fixed fields: prompt length, max new tokens, options, the sampling fields,
    /// stop token count and history count.
    public static let fixedBytes = 55
    /// Most stop tokens an OPEN carries.
    public static let maxStopTokens = 64
    /// Most history tokens an OPEN carries (the largest penalty window the sampler accepts).
    public static let maxHistoryTokens = 1 << 20
    /// Options bit 0: send logprobs with TOKEN.
    public static let logprobsOption: UInt8 = 1
    /// Options bit 1: the sequence resumes a replayed request, and a u64 count of the random
    /// draws its sampler already made follows the history. Every other bit is reserved and must be 0.
    public static let resumeOption: UInt8 = 2
    /// Bytes the resume option adds.
    public static let resumeBytes = 8
    /// Options bit 2: TOKEN frames carry the top alternatives; a u8 count (1...20) follows the
    /// history (and the random draws, with the resume option).
    public static let alternativesOption: UInt8 = 4

    /// Prompt tokens the sequence will receive (in PROMPT frames); at least 1.
    public var promptLength: UInt32
    /// Most tokens to generate after the prompt.
    public var maxNewTokens: UInt32
    /// Whether TOKEN frames carry the sampled token's log-probability.
    public var wantsLogprobs: Bool
    public var sampling: WireSampling
    /// End-of-generation token ids: node 0 ends the sequence when one is sampled. At most 64.
    public var stopTokens: [Int32]
    /// The last prompt tokens, for the penalties of the last node's sampler (which never sees
    /// the prompt otherwise). At most 1<<20.
    public var history: [Int32]
    /// Random draws the sequence's sampler made before a failover: a driver that replays a
    /// request as a new prompt sets it, and the last node advances its seeded generator that far,
    /// so the replayed sequence draws exactly the numbers the interrupted one would have. 0 for a
    /// fresh request (travels only with the resume option).
    public var randomDraws: UInt64
    /// How many of the most likely tokens each TOKEN carries with their logprobs (0...20; 0 =
    /// none, travels only with the alternatives option).
    public var topLogprobs: Int

    public init(
        promptLength: UInt32, maxNewTokens: UInt32, wantsLogprobs: Bool = false, sampling: WireSampling,
        stopTokens: [Int32] = [], history: [Int32] = [], randomDraws: UInt64 = 0, topLogprobs: Int = 0
    ) {
        self.promptLength = promptLength
        self.maxNewTokens = maxNewTokens
        self.wantsLogprobs = wantsLogprobs
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.history = history
        self.randomDraws = randomDraws
        self.topLogprobs = topLogprobs
    }
}

/// PROMPT: consecutive prompt tokens of a sequence, for node 0, at positions
/// `firstPosition ..< firstPosition + tokens.count`.
public struct PromptChunk: Sendable, Equatable {
    /// Bytes of the fixed fields: first position and count.
    public static let fixedBytes = 8

    public var firstPosition: UInt32
    /// At least one token; `firstPosition + tokens.count` must fit in a `UInt32`.
    public var tokens: [Int32]

    public init(firstPosition: UInt32, tokens: [Int32]) {
        self.firstPosition = firstPosition
        self.tokens = tokens
    }
}

/// Why a sequence ended (DONE's reason byte).
public enum FinishCause: UInt8, Sendable, CaseIterable {
    /// An end-of-generation (stop) token was sampled.
    case stop = 0
    /// `maxNewTokens` tokens were generated.
    case length = 1
    /// The sequence reached the context size.
    case contextFull = 2
    /// CANCEL (or the driver going away) ended it.
    case cancelled = 3
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
    case open(SequenceOpen)
    case prompt(PromptChunk)
    /// The sequence ended for `cause` after `generated` new tokens.
    case done(FinishCause, generated: UInt32)
    /// A nonce that travels around the ring back to the node that sent it.
    case probe(UInt64)

    public var frameType: StarStreamFrameType {
        switch self {
        case .hello: .hello
        case .activations: .activations
        case .token: .token
        case .cancel: .cancel
        case .error: .error
        case .ping: .ping
        case .pong: .pong
        case .open: .open
        case .prompt: .prompt
        case .done: .done
        case .probe: .probe
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
    /// Most token ids a driver puts in one PROMPT frame (a prompt chunk) or OPEN (penalty
    /// history), so that every node's frame cap admits them.
    public static let maxTokensPerDriverFrame = 4096

    /// The largest payload a control frame can have: ERROR with a 1024-byte message.
    public static let controlPayloadBytes = 2 + 2 + StarStreamPayload.maxErrorMessageBytes
    /// ACTIVATIONS fixed fields: dtype u8, token count u32, width u32.
    public static let activationsFixedBytes = 9

    public var maxPayloadBytes: Int

    /// The largest HELLO payload: version, role, token length, a 256-byte token, digest, range.
    public static let helloPayloadBytes = 2 + 1 + 2 + Hello.maxClusterTokenBytes + Hello.digestLength + 4 + 4

    /// The largest payload a frame of `type` may declare, or nil when that type is refused
    /// outright. Before the peer is authenticated only HELLO and ERROR (a refusal) are
    /// accepted, each at its own small size, so an unauthenticated peer can never make a
    /// receiver buffer a large payload. After it, the fixed-size control frames keep their exact
    /// sizes and only ACTIVATIONS, OPEN and PROMPT may use `maxPayloadBytes`.
    public func payloadCap(for type: StarStreamFrameType, authenticated: Bool) -> Int? {
        switch type {
        case .hello: return Self.helloPayloadBytes
        case .error: return Self.controlPayloadBytes
        default: guard authenticated else { return nil }
        }
        switch type {
        case .cancel: return 0
        case .ping, .pong, .probe: return 8
        case .done: return 5
        case .token: return 9 + 8 * TokenMessage.maxAlternatives
        default: return maxPayloadBytes
        }
    }

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
