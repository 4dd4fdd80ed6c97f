import NIOCore
import Testing
import StarStream

/// A frame built byte by byte, independent of the encoder. `length` overrides the header's
/// payload length, `crc` its checksum (the real CRC otherwise).
func rawFrame(
    type: UInt16, payload: [UInt8], version: UInt16 = 1, flags: UInt32 = 0, sequenceID: UInt64 = 1,
    length: UInt32? = nil, crc: UInt32? = nil
) -> [UInt8] {
    var out: [UInt8] = [0x50, 0x47, 0x53, 0x53]
    func le(_ value: UInt64, _ bytes: Int) { for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) } }
    le(UInt64(version), 2)
    le(UInt64(type), 2)
    le(UInt64(flags), 4)
    le(sequenceID, 8)
    le(0, 4)
    le(UInt64(length ?? UInt32(payload.count)), 4)
    le(UInt64(crc ?? CRC32C.checksum(payload)), 4)
    return out + payload
}

func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) } }
func le16(_ value: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8)] }

func helloPayload(role: UInt8 = 1, token: [UInt8], tokenLength: UInt16? = nil, first: UInt32 = 0, end: UInt32 = 4) -> [UInt8] {
    le16(1) + [role] + le16(tokenLength ?? UInt16(token.count)) + token + sampleDigest + le32(first) + le32(end)
}

func activationsPayload(dtype: UInt8, count: UInt32, width: UInt32, positions: [UInt32], dataBytes: Int) -> [UInt8] {
    [dtype] + le32(count) + le32(width) + positions.flatMap(le32) + [UInt8](repeating: 0x11, count: dataBytes)
}

let testLimits = StarStreamLimits(maxPayloadBytes: 4096)

/// The error a fresh decoder (and the stateless decode) throw for `input`, fed whole.
func decodeError(_ input: [UInt8], limits: StarStreamLimits = testLimits) -> StarStreamError? {
    let result = decodeAll(input, limits: limits)
    var buf = buffer(input)
    var stateless: StarStreamError?
    do throws(StarStreamError) {
        while try StarStreamCodec.decode(&buf, limits: limits) != nil {}
    } catch {
        stateless = error
    }
    #expect(result.error == stateless, "decoder and stateless decode disagree")
    return result.error
}

@Suite struct HardeningTests {
    @Test func sanityOfTheRawBuilder() {
        let frame = rawFrame(type: 6, payload: le32(9) + le32(0))
        #expect(decodeAll(frame, limits: testLimits).frames.first?.payload == .ping(9))
    }

    @Test func wrongMagicFromTheFirstByte() {
        #expect(decodeError([0x47]) == .badMagic)
        #expect(decodeError([0x50, 0x47, 0x53, 0x54]) == .badMagic)
        var frame = rawFrame(type: 6, payload: le32(1) + le32(0))
        frame[3] = 0x00
        #expect(decodeError(frame) == .badMagic)
        #expect(decodeError([0x50, 0x47]) == nil)  // a correct prefix just waits
    }

    @Test func httpRequestIsBadMagic() {
        let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        #expect(request.count < FrameHeader.size)
        #expect(decodeError(request) == .badMagic)
        #expect(decodeAll(request, limits: testLimits, chunks: [1]).error == .badMagic)
    }

    @Test func wrongVersionTypeAndFlags() {
        let payload = le32(1) + le32(0)
        #expect(decodeError(rawFrame(type: 6, payload: payload, version: 2)) == .unsupportedVersion(2))
        #expect(decodeError(rawFrame(type: 6, payload: payload, version: 0)) == .unsupportedVersion(0))
        #expect(decodeError(rawFrame(type: 0, payload: payload)) == .unknownType(0))
        #expect(decodeError(rawFrame(type: 12, payload: payload)) == .unknownType(12))
        #expect(decodeError(rawFrame(type: 0xFFFF, payload: payload)) == .unknownType(0xFFFF))
        #expect(decodeError(rawFrame(type: 6, payload: payload, flags: 1)) == .reservedFlags(1))
        #expect(decodeError(rawFrame(type: 6, payload: payload, flags: 0x8000_0000)) == .reservedFlags(0x8000_0000))
    }

    @Test func headerErrorsNeedOnlyTheHeader() {
        // The payload never arrives: the header alone is enough to reject.
        let header = Array(rawFrame(type: 12, payload: [1, 2, 3])[0..<32])
        #expect(decodeError(header) == .unknownType(12))
    }

    @Test func payloadOverTheCapIsRejectedBeforeItArrives() {
        let cap = UInt64(testLimits.maxPayloadBytes)
        for declared in [UInt32(cap + 1), 1 << 20, UInt32.max] {
            let header = Array(rawFrame(type: 2, payload: [], length: declared)[0..<32])
            var decoder = StarStreamFrameDecoder(limits: testLimits)
            var buf = buffer(header)
            #expect(throws: StarStreamError.payloadTooLarge(declared: UInt64(declared), cap: cap)) {
                try decoder.decodeFrame(&buf)
            }
        }
        // Exactly the cap is fine (it waits for the bytes).
        let atCap = Array(rawFrame(type: 2, payload: [], length: UInt32(cap))[0..<32])
        #expect(decodeError(atCap) == nil)
    }

    @Test func beforeTheGateOpensOnlyASmallHelloOrErrorIsRead() throws {
        let limits = StarStreamLimits(maxPayloadBytes: 64 << 20)
        let gate = StarStreamGate()
        func attempt(_ header: [UInt8]) -> StarStreamError? {
            var decoder = StarStreamFrameDecoder(limits: limits, gate: gate)
            var buf = buffer(header)
            do {
                _ = try decoder.decodeFrame(&buf)
                return nil
            } catch { return error }
        }
        // Every type but HELLO and ERROR is refused from its header, whatever its length.
        for type: UInt16 in [2, 3, 4, 6, 7, 8, 9, 10, 11] {
            #expect(attempt(Array(rawFrame(type: type, payload: [], length: 8)[0..<32])) == .notAuthenticated(type: type))
        }
        // A maximum-length HELLO or ERROR is refused before its payload arrives.
        let helloCap = UInt64(StarStreamLimits.helloPayloadBytes)
        #expect(attempt(Array(rawFrame(type: 1, payload: [], length: UInt32.max)[0..<32]))
                == .payloadTooLarge(declared: UInt64(UInt32.max), cap: helloCap))
        #expect(attempt(Array(rawFrame(type: 1, payload: [], length: UInt32(helloCap + 1))[0..<32]))
                == .payloadTooLarge(declared: helloCap + 1, cap: helloCap))
        #expect(attempt(Array(rawFrame(type: 5, payload: [], length: 1 << 20)[0..<32]))
                == .payloadTooLarge(declared: 1 << 20, cap: UInt64(StarStreamLimits.controlPayloadBytes)))
        // The largest real HELLO fits.
        let longest = Hello(role: .node, clusterToken: String(repeating: "t", count: Hello.maxClusterTokenBytes),
                            modelDigest: [UInt8](repeating: 1, count: 32), firstLayer: 0, endLayer: 9)
        let helloBytes = bytes(try encoded(StarStreamFrame(payload: .hello(longest))))
        #expect(helloBytes.count == 32 + StarStreamLimits.helloPayloadBytes)
        var decoder = StarStreamFrameDecoder(limits: limits, gate: gate)
        var buf = buffer(helloBytes)
        #expect(try decoder.decodeFrame(&buf) == StarStreamFrame(payload: .hello(longest)))
        // Once open, the same decoder takes every type at the full cap.
        gate.open()
        #expect(attempt(Array(rawFrame(type: 2, payload: [], length: 1 << 20)[0..<32])) == nil)
    }

    @Test func truncatedFramesJustWait() throws {
        for frame in sampleFrames() {
            let full = bytes(try encoded(frame))
            for cut in 0..<full.count {
                let result = decodeAll(Array(full[0..<cut]), limits: roomyLimits)
                #expect(result.error == nil && result.frames.isEmpty)
            }
        }
        // A declared length longer than the data that arrives: wait, do not fail.
        let short = rawFrame(type: 6, payload: le32(1), length: 8)
        #expect(decodeError(short) == nil)
    }

    @Test func checksumMismatch() throws {
        var frame = bytes(try encoded(StarStreamFrame(payload: .ping(77))))
        frame[35] ^= 0x40
        guard case .checksumMismatch? = decodeError(frame) else {
            Issue.record("expected checksumMismatch")
            return
        }
        var headerOnly = bytes(try encoded(StarStreamFrame(payload: .ping(77))))
        headerOnly[29] ^= 1
        guard case .checksumMismatch? = decodeError(headerOnly) else {
            Issue.record("expected checksumMismatch")
            return
        }
    }

    @Test func dtypeOutOfRange() {
        for dtype: UInt8 in [3, 4, 0x80, 0xFF] {
            let payload = activationsPayload(dtype: dtype, count: 1, width: 4, positions: [0], dataBytes: 16)
            #expect(decodeError(rawFrame(type: 2, payload: payload)) == .badDType(dtype))
        }
    }

    @Test func shapesThatDisagreeWithTheLength() {
        // F32, 2 x 4: 9 + 8 + 32 bytes. One byte more or less, or fields that say otherwise.
        let good = activationsPayload(dtype: 0, count: 2, width: 4, positions: [0, 1], dataBytes: 32)
        #expect(decodeError(rawFrame(type: 2, payload: good)) == nil)
        #expect(decodeError(rawFrame(type: 2, payload: good + [0])) == .shapeMismatch)
        #expect(decodeError(rawFrame(type: 2, payload: Array(good.dropLast()))) == .shapeMismatch)
        let f16 = activationsPayload(dtype: 1, count: 2, width: 4, positions: [0, 1], dataBytes: 32)
        #expect(decodeError(rawFrame(type: 2, payload: f16)) == .shapeMismatch)
        let moreTokens = activationsPayload(dtype: 0, count: 3, width: 4, positions: [0, 1], dataBytes: 32)
        #expect(decodeError(rawFrame(type: 2, payload: moreTokens)) == .shapeMismatch)
        let zeroWidth = activationsPayload(dtype: 0, count: 1, width: 0, positions: [0], dataBytes: 0)
        #expect(decodeError(rawFrame(type: 2, payload: zeroWidth)) == .shapeMismatch)
        let zeroCount = activationsPayload(dtype: 0, count: 0, width: 4, positions: [], dataBytes: 0)
        #expect(decodeError(rawFrame(type: 2, payload: zeroCount)) == .shapeMismatch)
        // Counts whose products overflow 64 bits must not trap.
        let huge = activationsPayload(dtype: 0, count: .max, width: .max, positions: [0], dataBytes: 8)
        #expect(decodeError(rawFrame(type: 2, payload: huge)) == .shapeMismatch)
        let hugeQ8 = activationsPayload(dtype: 2, count: .max, width: 0xFFFF_FFE0, positions: [0], dataBytes: 8)
        #expect(decodeError(rawFrame(type: 2, payload: hugeQ8)) == .shapeMismatch)
        // Fewer bytes than the fixed fields.
        #expect(decodeError(rawFrame(type: 2, payload: [0, 1, 0])) == .badPayloadLength(type: 2, length: 3))
    }

    @Test func q8WidthMustBeAMultipleOf32() {
        let payload = activationsPayload(dtype: 2, count: 1, width: 48, positions: [0], dataBytes: 54)
        #expect(decodeError(rawFrame(type: 2, payload: payload)) == .widthNotMultipleOf32(width: 48))
        let ok = activationsPayload(dtype: 2, count: 1, width: 64, positions: [0], dataBytes: 72)
        #expect(decodeError(rawFrame(type: 2, payload: ok)) == nil)
    }

    @Test func positionsMustIncrease() {
        for positions: [UInt32] in [[5, 4, 6], [5, 5, 6], [0, 1, 1], [UInt32.max, 0, 1]] {
            let payload = activationsPayload(dtype: 0, count: 3, width: 1, positions: positions, dataBytes: 12)
            #expect(decodeError(rawFrame(type: 2, payload: payload)) == .positionsNotIncreasing)
        }
    }

    @Test func decodedSizeIsCappedToo() {
        // F16 and Q8 expand on receipt: 1 x 512 halves is a 1037-byte payload but 2048 bytes of f32.
        let limits = StarStreamLimits(maxPayloadBytes: 1100)
        let payload = activationsPayload(dtype: 1, count: 1, width: 512, positions: [0], dataBytes: 1024)
        #expect(decodeError(rawFrame(type: 2, payload: payload), limits: limits) == .decodedSizeTooLarge(bytes: 2048, cap: 1100))
    }

    @Test func overLongStrings() {
        let token = [UInt8](repeating: 0x61, count: 257)
        // A HELLO with a 257-byte token is over HELLO's cap: refused from the header.
        #expect(decodeError(rawFrame(type: 1, payload: helloPayload(token: token))) == .payloadTooLarge(declared: 302, cap: 301))
        // Within the cap, a length field over 256 is refused before the string is read.
        #expect(decodeError(rawFrame(type: 1, payload: helloPayload(token: [0x61], tokenLength: 257)))
            == .stringTooLong(length: 257, max: 256))
        let okToken = [UInt8](repeating: 0x61, count: 256)
        #expect(decodeError(rawFrame(type: 1, payload: helloPayload(token: okToken))) == nil)
        // A length field that claims more than is there.
        #expect(decodeError(rawFrame(type: 1, payload: helloPayload(token: [0x61], tokenLength: 200)))
            == .badPayloadLength(type: 1, length: 46))
        let message = [UInt8](repeating: 0x62, count: 1025)
        #expect(decodeError(rawFrame(type: 5, payload: le16(3) + le16(1025) + message))
            == .payloadTooLarge(declared: 1029, cap: 1028))
        #expect(decodeError(rawFrame(type: 5, payload: le16(3) + le16(1025) + message.dropLast()))
            == .stringTooLong(length: 1025, max: 1024))
        #expect(decodeError(rawFrame(type: 5, payload: le16(3) + le16(5) + [0x62]))
            == .badPayloadLength(type: 5, length: 5))
    }

    @Test func invalidUTF8() {
        for bad: [UInt8] in [[0xC3, 0x28], [0xFF], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xC0, 0xAF]] {
            #expect(decodeError(rawFrame(type: 1, payload: helloPayload(token: bad))) == .badString)
            #expect(decodeError(rawFrame(type: 5, payload: le16(3) + le16(UInt16(bad.count)) + bad)) == .badString)
        }
    }

    @Test func helloFields() {
        #expect(decodeError(rawFrame(type: 1, payload: helloPayload(role: 2, token: []))) == .badRole(2))
        #expect(decodeError(rawFrame(type: 1, payload: helloPayload(token: [], first: 5, end: 4)))
            == .badLayerRange(first: 5, end: 4))
        #expect(decodeError(rawFrame(type: 1, payload: helloPayload(token: []) + [0]))
            == .badPayloadLength(type: 1, length: 46))
        #expect(decodeError(rawFrame(type: 1, payload: [1, 0])) == .badPayloadLength(type: 1, length: 2))
    }

    @Test func fixedSizePayloads() {
        #expect(decodeError(rawFrame(type: 3, payload: [1, 2, 3, 4, 5, 6, 7])) == .badPayloadLength(type: 3, length: 7))
        // Fixed-size frames longer than their size are refused from the header (their type's cap).
        #expect(decodeError(rawFrame(type: 4, payload: [0])) == .payloadTooLarge(declared: 1, cap: 0))
        #expect(decodeError(rawFrame(type: 6, payload: [UInt8](repeating: 0, count: 9))) == .payloadTooLarge(declared: 9, cap: 8))
        #expect(decodeError(rawFrame(type: 7, payload: [])) == .badPayloadLength(type: 7, length: 0))
        #expect(decodeError(rawFrame(type: 5, payload: [1, 0, 0])) == .badPayloadLength(type: 5, length: 3))
    }

    @Test func wireCodesAreDistinctAndNonZero() {
        let errors: [StarStreamError] = [
            .badMagic, .unsupportedVersion(2), .unknownType(9), .reservedFlags(1),
            .payloadTooLarge(declared: 1, cap: 0), .checksumMismatch(expected: 1, actual: 2), .badDType(9),
            .shapeMismatch, .widthNotMultipleOf32(width: 1), .positionsNotIncreasing,
            .decodedSizeTooLarge(bytes: 1, cap: 0), .badString, .stringTooLong(length: 1, max: 0),
            .badPayloadLength(type: 1, length: 0), .badRole(3), .badLayerRange(first: 1, end: 0),
            .badDigestLength(1), .badOptions(2), .badFinishReason(4), .countTooLarge(count: 65, max: 64),
            .zeroCount(type: 9), .positionOverflow(first: .max, count: 1), .notAuthenticated(type: 2),
        ]
        let codes = errors.map(\.wireCode)
        #expect(Set(codes).count == codes.count)
        #expect(codes.allSatisfy { $0 > 0 && $0 < 100 })
    }
}
