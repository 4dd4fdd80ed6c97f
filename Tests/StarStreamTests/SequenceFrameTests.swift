import NIOCore
import Testing
import StarStream

// OPEN, PROMPT, DONE and PROBE: layouts checked against payloads built byte by byte, round trips,
// and every rejection on both sides.

func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }
func leTokens(_ tokens: [Int32]) -> [UInt8] { tokens.flatMap { le32(UInt32(bitPattern: $0)) } }

/// An OPEN payload built field by field; the counts default to the arrays' lengths.
func openPayload(
    promptLength: UInt32 = 5, maxNewTokens: UInt32 = 128, options: UInt8 = 1, sampling: WireSampling = sampleSampling,
    stopCount: UInt16? = nil, stops: [Int32] = [2, 151_645], historyCount: UInt32? = nil,
    history: [Int32] = [11, -3, 0x7FFF_FFFF], randomDraws: UInt64? = nil, topLogprobs: UInt8? = nil
) -> [UInt8] {
    var out = le32(promptLength) + le32(maxNewTokens) + [options]
    out += le32(sampling.temperature.bitPattern) + le32(sampling.topK) + le32(sampling.topP.bitPattern)
    out += le32(sampling.minP.bitPattern) + le32(sampling.repetitionPenalty.bitPattern)
    out += le32(sampling.frequencyPenalty.bitPattern) + le32(sampling.presencePenalty.bitPattern)
    out += le32(sampling.penaltyLastN) + le64(sampling.seed)
    out += le16(stopCount ?? UInt16(stops.count)) + leTokens(stops)
    out += le32(historyCount ?? UInt32(history.count)) + leTokens(history)
    if let randomDraws { out += le64(randomDraws) }
    if let topLogprobs { out += [topLogprobs] }
    return out
}

func promptPayload(first: UInt32, count: UInt32? = nil, tokens: [Int32]) -> [UInt8] {
    le32(first) + le32(count ?? UInt32(tokens.count)) + leTokens(tokens)
}

/// Encodes `payload`; returns the error, after checking that nothing was written.
func encodeError(_ payload: StarStreamPayload) -> StarStreamError? {
    var buf = ByteBuffer()
    do throws(StarStreamError) {
        try StarStreamCodec.encode(StarStreamFrame(sequenceID: 1, payload: payload), into: &buf)
    } catch {
        #expect(buf.readableBytes == 0)
        return error
    }
    return nil
}

func decodedPayload(_ input: [UInt8], limits: StarStreamLimits = testLimits) -> StarStreamPayload? {
    let result = decodeAll(input, limits: limits)
    #expect(result.error == nil)
    return result.frames.first?.payload
}

@Suite struct SequenceFrameTests {
    let sampleOpen = SequenceOpen(
        promptLength: 5, maxNewTokens: 128, wantsLogprobs: true, sampling: sampleSampling,
        stopTokens: [2, 151_645], history: [11, -3, 0x7FFF_FFFF])

    // MARK: OPEN

    @Test func openLayout() throws {
        let out = bytes(try encoded(StarStreamFrame(sequenceID: 77, payload: .open(sampleOpen))))
        let payload = openPayload()
        #expect(payload.count == SequenceOpen.fixedBytes + 4 * 2 + 4 * 3)
        #expect(Array(out[6..<8]) == [8, 0])
        #expect(Array(out[32...]) == payload)
        #expect(out == rawFrame(type: 8, payload: payload, sequenceID: 77))
        #expect(decodedPayload(rawFrame(type: 8, payload: payload)) == .open(sampleOpen))
        // Without logprobs the options byte is 0.
        var plain = sampleOpen
        plain.wantsLogprobs = false
        #expect(bytes(try encoded(StarStreamFrame(sequenceID: 77, payload: .open(plain))))[32 + 8] == 0)
        #expect(decodedPayload(rawFrame(type: 8, payload: openPayload(options: 0))) == .open(plain))
    }

    @Test func openRoundTripsEmptyAndMaximalLists() throws {
        let limits = StarStreamLimits(maxPayloadBytes: 5 << 20)
        let stops = (0..<Int32(SequenceOpen.maxStopTokens)).map { $0 * 1000 - 7 }
        let history = (0..<Int32(SequenceOpen.maxHistoryTokens)).map { $0 &* 2_654_435 }
        let cases = [
            SequenceOpen(promptLength: 1, maxNewTokens: 0, sampling: sampleSampling),
            SequenceOpen(promptLength: .max, maxNewTokens: .max, sampling: sampleSampling, stopTokens: stops),
            SequenceOpen(promptLength: 3, maxNewTokens: 9, sampling: sampleSampling, history: history),
            SequenceOpen(
                promptLength: 2, maxNewTokens: 1, wantsLogprobs: true, sampling: sampleSampling, stopTokens: stops,
                history: history),
        ]
        for open in cases {
            var buf = try encoded(StarStreamFrame(sequenceID: 3, payload: .open(open)))
            #expect(buf.readableBytes == 32 + 55 + 4 * open.stopTokens.count + 4 * open.history.count)
            #expect(try StarStreamCodec.decode(&buf, limits: limits)?.payload == .open(open))
            #expect(buf.readableBytes == 0)
        }
    }

    @Test func openCarriesSamplingBitForBit() throws {
        // The codec does not judge the values: NaN, infinities and negatives travel unchanged.
        let odd = WireSampling(
            temperature: -1, topK: .max, topP: .nan, minP: .infinity, repetitionPenalty: -.infinity,
            frequencyPenalty: Float(bitPattern: 0x7FC0_1234), presencePenalty: -0.0, penaltyLastN: .max, seed: .max)
        var buf = try encoded(
            StarStreamFrame(payload: .open(SequenceOpen(promptLength: 1, maxNewTokens: 1, sampling: odd))))
        guard case .open(let got)? = try StarStreamCodec.decode(&buf, limits: testLimits)?.payload else {
            Issue.record("no OPEN")
            return
        }
        let sent = [odd.temperature, odd.topP, odd.minP, odd.repetitionPenalty, odd.frequencyPenalty, odd.presencePenalty]
        let back = [got.sampling.temperature, got.sampling.topP, got.sampling.minP, got.sampling.repetitionPenalty,
                    got.sampling.frequencyPenalty, got.sampling.presencePenalty]
        #expect(back.map(\.bitPattern) == sent.map(\.bitPattern))
        #expect(got.sampling.topK == .max && got.sampling.penaltyLastN == .max && got.sampling.seed == .max)
    }

    @Test func openLengthMustBeExact() {
        let good = openPayload()
        #expect(decodeError(rawFrame(type: 8, payload: good)) == nil)
        #expect(decodeError(rawFrame(type: 8, payload: good + [0])) == .badPayloadLength(type: 8, length: 76))
        #expect(decodeError(rawFrame(type: 8, payload: Array(good.dropLast()))) == .badPayloadLength(type: 8, length: 74))
        // Shorter than the fixed fields.
        let empty = openPayload(stops: [], history: [])
        #expect(empty.count == 55)
        #expect(decodeError(rawFrame(type: 8, payload: empty)) == nil)
        #expect(decodeError(rawFrame(type: 8, payload: Array(empty.dropLast()))) == .badPayloadLength(type: 8, length: 54))
        #expect(decodeError(rawFrame(type: 8, payload: [])) == .badPayloadLength(type: 8, length: 0))
    }

    @Test func openCountsMustMatchThePayload() {
        // Counts that say more or fewer tokens than there are.
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(stopCount: 3))) == .badPayloadLength(type: 8, length: 75))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(stopCount: 1))) == .badPayloadLength(type: 8, length: 75))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(historyCount: 4))) == .badPayloadLength(type: 8, length: 75))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(historyCount: 0))) == .badPayloadLength(type: 8, length: 75))
        // A stop count that puts the history count past the end of the payload.
        let past = openPayload(stopCount: 64, stops: [], history: [])
        #expect(decodeError(rawFrame(type: 8, payload: past)) == .badPayloadLength(type: 8, length: 55))
        // A history count near u32's end must not overflow anything.
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(historyCount: 1 << 20))) == .badPayloadLength(type: 8, length: 75))
    }

    @Test func openCountsAreCappedBeforeTheLength() {
        // Over the cap: rejected as such even though the payload could not hold them anyway.
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(stopCount: 65)))
            == .countTooLarge(count: 65, max: 64))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(stopCount: .max, stops: [], history: [])))
            == .countTooLarge(count: 65535, max: 64))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(historyCount: (1 << 20) + 1)))
            == .countTooLarge(count: (1 << 20) + 1, max: 1 << 20))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(historyCount: .max, history: [])))
            == .countTooLarge(count: UInt64(UInt32.max), max: 1 << 20))
        // 64 stop tokens are fine.
        let stops = [Int32](repeating: 2, count: 64)
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(stops: stops))) == nil)
    }

    @Test func openOptionsAndPromptLength() {
        for options: UInt8 in [8, 9, 0x80, 0xFF] {
            #expect(decodeError(rawFrame(type: 8, payload: openPayload(options: options))) == .badOptions(options))
        }
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(promptLength: 0))) == .zeroCount(type: 8))
        // The options come before the exact length (the resume bit adds 8 bytes): bad options in a
        // payload of the wrong length are an options error.
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(options: 0xFF) + [0])) == .badOptions(0xFF))
        // The resume bit without its 8 bytes, or the 8 bytes without the bit, is a length error.
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(options: 3))) == .badPayloadLength(type: 8, length: 75))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(options: 1, randomDraws: 9))) == .badPayloadLength(type: 8, length: 83))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(options: 3, randomDraws: 9))) == nil)
    }

    @Test func openAsksForAlternativesAndTokensCarryThem() throws {
        let open = SequenceOpen(promptLength: 3, maxNewTokens: 5, wantsLogprobs: true, sampling: sampleSampling,
                                randomDraws: 9, topLogprobs: 20)
        let frame = StarStreamFrame(sequenceID: 3, payload: .open(open))
        let limits = StarStreamLimits(maxPayloadBytes: 4096)
        var result = decodeAll(bytes(try encoded(frame)), limits: limits)
        #expect(result.error == nil && result.frames == [frame])
        // The count byte: 1...20.
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(options: 5, topLogprobs: 0))) == .zeroCount(type: 8))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(options: 5, topLogprobs: 21))) == .countTooLarge(count: 21, max: 20))
        #expect(decodeError(rawFrame(type: 8, payload: openPayload(options: 7, randomDraws: 1, topLogprobs: 20))) == nil)
        #expect(encodeError(.open(SequenceOpen(promptLength: 1, maxNewTokens: 1, sampling: sampleSampling, topLogprobs: 21)))
            == .countTooLarge(count: 21, max: 20))

        let alternatives = (0 ..< 20).map { TokenAlternative(tokenID: Int32($0 * 7), logprob: -Float($0)) }
        for token in [TokenMessage(tokenID: 5, logprob: -0.5, alternatives: alternatives),
                      TokenMessage(tokenID: 6, logprob: nil, alternatives: Array(alternatives.prefix(1))), TokenMessage(tokenID: 7)] {
            let f = StarStreamFrame(sequenceID: 2, position: 9, payload: .token(token))
            let out = try encoded(f)
            #expect(out.readableBytes == 32 + (token.alternatives.isEmpty ? 8 : 9 + 8 * token.alternatives.count))
            result = decodeAll(bytes(out), limits: limits)
            #expect(result.error == nil && result.frames == [f])
        }
        let head = le32(5) + le32(Float(-0.5).bitPattern)
        #expect(decodeError(rawFrame(type: 3, payload: head + [0])) == .zeroCount(type: 3))
        #expect(decodeError(rawFrame(type: 3, payload: head + [21] + [UInt8](repeating: 0, count: 168))) == .payloadTooLarge(declared: 177, cap: 169))
        #expect(decodeError(rawFrame(type: 3, payload: head + [21] + [UInt8](repeating: 0, count: 160))) == .countTooLarge(count: 21, max: 20))
        #expect(decodeError(rawFrame(type: 3, payload: head + [2] + [UInt8](repeating: 0, count: 8))) == .badPayloadLength(type: 3, length: 17))
        #expect(encodeError(.token(TokenMessage(tokenID: 1, alternatives: Array(repeating: alternatives[0], count: 21))))
            == .countTooLarge(count: 21, max: 20))
    }

    @Test func openResumeCarriesTheSamplersDraws() throws {
        for draws: UInt64 in [0, 1, 77, .max] {
            let open = SequenceOpen(promptLength: 12, maxNewTokens: 5, wantsLogprobs: draws % 2 == 1, sampling: sampleSampling,
                                    stopTokens: [2], history: [7, 8], randomDraws: draws)
            let frame = StarStreamFrame(sequenceID: 3, payload: .open(open))
            let out = try encoded(frame)
            #expect(out.readableBytes == 32 + 55 + 4 + 8 + (draws > 0 ? 8 : 0))
            let result = decodeAll(bytes(out), limits: StarStreamLimits(maxPayloadBytes: 4096))
            #expect(result.error == nil && result.frames == [frame])
        }
    }

    @Test func openOverTheReceiversCapIsRejectedAtTheHeader() throws {
        let open = SequenceOpen(
            promptLength: 1, maxNewTokens: 1, sampling: sampleSampling, history: [Int32](repeating: 5, count: 2000))
        let out = bytes(try encoded(StarStreamFrame(payload: .open(open))))
        #expect(decodeError(Array(out[0..<32])) == .payloadTooLarge(declared: 8055, cap: 4096))
    }

    @Test func openEncoderRejections() {
        #expect(encodeError(.open(SequenceOpen(promptLength: 0, maxNewTokens: 1, sampling: sampleSampling)))
            == .zeroCount(type: 8))
        #expect(encodeError(.open(SequenceOpen(
            promptLength: 1, maxNewTokens: 1, sampling: sampleSampling, stopTokens: [Int32](repeating: 0, count: 65))))
            == .countTooLarge(count: 65, max: 64))
        #expect(encodeError(.open(SequenceOpen(
            promptLength: 1, maxNewTokens: 1, sampling: sampleSampling,
            history: [Int32](repeating: 0, count: (1 << 20) + 1))))
            == .countTooLarge(count: (1 << 20) + 1, max: 1 << 20))
    }

    // MARK: PROMPT

    @Test func promptLayoutAndRoundTrip() throws {
        let chunk = PromptChunk(firstPosition: 0x0102_0304, tokens: [5, -1, 151_643])
        let out = bytes(try encoded(StarStreamFrame(sequenceID: 4, position: 0x0102_0304, payload: .prompt(chunk))))
        #expect(Array(out[6..<8]) == [9, 0])
        #expect(Array(out[32...]) == promptPayload(first: 0x0102_0304, tokens: [5, -1, 151_643]))
        #expect(decodedPayload(out) == .prompt(chunk))
        // One token, and the last positions u32 can hold.
        for chunk in [PromptChunk(firstPosition: 0, tokens: [9]), PromptChunk(firstPosition: .max - 1, tokens: [9]),
                      PromptChunk(firstPosition: .max - 3, tokens: [1, 2, 3])] {
            var buf = try encoded(StarStreamFrame(payload: .prompt(chunk)))
            #expect(buf.readableBytes == 32 + 8 + 4 * chunk.tokens.count)
            #expect(try StarStreamCodec.decode(&buf, limits: testLimits)?.payload == .prompt(chunk))
        }
        // As many tokens as the cap allows: (4096 - 8) / 4.
        let largest = PromptChunk(firstPosition: 10, tokens: (0..<1022).map { Int32($0) })
        #expect(decodedPayload(bytes(try encoded(StarStreamFrame(payload: .prompt(largest))))) == .prompt(largest))
    }

    @Test func promptRejections() {
        #expect(decodeError(rawFrame(type: 9, payload: [1, 0, 0, 0, 1, 0, 0])) == .badPayloadLength(type: 9, length: 7))
        #expect(decodeError(rawFrame(type: 9, payload: [])) == .badPayloadLength(type: 9, length: 0))
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: 0, tokens: []))) == .zeroCount(type: 9))
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: 0, count: 0, tokens: [1])))
            == .zeroCount(type: 9))
        // Count and length disagree, either way, including a count no payload could back.
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: 0, count: 3, tokens: [1, 2])))
            == .badPayloadLength(type: 9, length: 16))
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: 0, count: 1, tokens: [1, 2])))
            == .badPayloadLength(type: 9, length: 16))
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: 0, count: .max, tokens: [1, 2])))
            == .badPayloadLength(type: 9, length: 16))
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: 0, tokens: [1, 2]) + [0, 0]))
            == .badPayloadLength(type: 9, length: 18))
        // Positions past u32.
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: .max, tokens: [1])))
            == .positionOverflow(first: .max, count: 1))
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: .max - 1, tokens: [1, 2])))
            == .positionOverflow(first: .max - 1, count: 2))
        // The length is checked before the overflow.
        #expect(decodeError(rawFrame(type: 9, payload: promptPayload(first: .max, count: 2, tokens: [1])))
            == .badPayloadLength(type: 9, length: 12))
    }

    @Test func promptEncoderRejections() {
        #expect(encodeError(.prompt(PromptChunk(firstPosition: 0, tokens: []))) == .zeroCount(type: 9))
        #expect(encodeError(.prompt(PromptChunk(firstPosition: .max, tokens: [1])))
            == .positionOverflow(first: .max, count: 1))
        #expect(encodeError(.prompt(PromptChunk(firstPosition: .max - 2, tokens: [1, 2, 3])))
            == .positionOverflow(first: .max - 2, count: 3))
    }

    // MARK: DONE

    @Test func doneLayoutAndEveryCause() throws {
        #expect(FinishCause.allCases.map(\.rawValue) == [0, 1, 2, 3])
        for cause in FinishCause.allCases {
            let frame = StarStreamFrame(sequenceID: 12, payload: .done(cause, generated: 0x0A0B_0C0D))
            let out = bytes(try encoded(frame))
            #expect(Array(out[6..<8]) == [10, 0])
            #expect(Array(out[32...]) == [cause.rawValue, 0x0D, 0x0C, 0x0B, 0x0A])
            #expect(decodeAll(out, limits: testLimits).frames == [frame])
        }
    }

    @Test func doneRejections() {
        for reason: UInt8 in [4, 5, 0x80, 0xFF] {
            #expect(decodeError(rawFrame(type: 10, payload: [reason] + le32(1))) == .badFinishReason(reason))
        }
        #expect(decodeError(rawFrame(type: 10, payload: [0, 1, 0, 0])) == .badPayloadLength(type: 10, length: 4))
        #expect(decodeError(rawFrame(type: 10, payload: [0] + le32(1) + [0])) == .payloadTooLarge(declared: 6, cap: 5))
        #expect(decodeError(rawFrame(type: 10, payload: [9] + le32(1) + [0])) == .payloadTooLarge(declared: 6, cap: 5))
        #expect(decodeError(rawFrame(type: 10, payload: [])) == .badPayloadLength(type: 10, length: 0))
    }

    // MARK: PROBE

    @Test func probeIsItsOwnType() throws {
        let out = bytes(try encoded(StarStreamFrame(payload: .probe(0x1122_3344_5566_7788))))
        #expect(Array(out[6..<8]) == [11, 0])
        #expect(Array(out[32...]) == le64(0x1122_3344_5566_7788))
        #expect(decodedPayload(out) == .probe(0x1122_3344_5566_7788))
        // The same nonce as a PING is a different frame.
        #expect(decodedPayload(rawFrame(type: 6, payload: le64(5))) == .ping(5))
        #expect(decodedPayload(rawFrame(type: 11, payload: le64(5))) == .probe(5))
        #expect(decodeError(rawFrame(type: 11, payload: [UInt8](repeating: 0, count: 7))) == .badPayloadLength(type: 11, length: 7))
        #expect(decodeError(rawFrame(type: 11, payload: [UInt8](repeating: 0, count: 9))) == .payloadTooLarge(declared: 9, cap: 8))
    }

    // MARK: Types and codes

    @Test func frameTypesAndApplicationCodes() {
        #expect(StarStreamFrameType.allCases.map(\.rawValue) == (1...11).map { UInt16($0) })
        #expect(StarStreamFrameType.open.rawValue == 8 && StarStreamFrameType.prompt.rawValue == 9)
        #expect(StarStreamFrameType.done.rawValue == 10 && StarStreamFrameType.probe.rawValue == 11)
        #expect(StarStreamPayload.open(sampleOpen).frameType == .open)
        #expect(StarStreamPayload.prompt(PromptChunk(firstPosition: 0, tokens: [1])).frameType == .prompt)
        #expect(StarStreamPayload.done(.stop, generated: 1).frameType == .done)
        #expect(StarStreamPayload.probe(1).frameType == .probe)
        let application = [
            StarStreamErrorCode.unauthorized, StarStreamErrorCode.unknownSequence, StarStreamErrorCode.positionOutOfOrder,
            StarStreamErrorCode.tokenOutOfRange, StarStreamErrorCode.unexpectedFrame, StarStreamErrorCode.busy,
            StarStreamErrorCode.pipelineBroken, StarStreamErrorCode.internalError,
        ]
        #expect(application == [100, 101, 102, 103, 104, 105, 106, 199])
        #expect([StarStreamError.badOptions(2), .badFinishReason(4), .countTooLarge(count: 65, max: 64),
                 .zeroCount(type: 9), .positionOverflow(first: 1, count: 2)].map(\.wireCode) == [18, 19, 20, 21, 22])
    }
}
