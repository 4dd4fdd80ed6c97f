import NIOCore

/// Channel-free encoding and decoding of StarStream frames. The NIO handlers use these too.
public enum StarStreamCodec {

    // MARK: Encoding

    /// Appends `frame` (header and payload) to `buffer`. Validates the frame first with the rules
    /// the decoder applies, so a frame that encodes also decodes (given a large enough cap);
    /// on a throw nothing has been written.
    public static func encode(_ frame: StarStreamFrame, into buffer: inout ByteBuffer) throws(StarStreamError) {
        let payloadLength = try validatedPayloadLength(frame.payload)
        guard let length32 = UInt32(exactly: payloadLength) else {
            throw .payloadTooLarge(declared: UInt64(payloadLength), cap: UInt64(UInt32.max))
        }
        buffer.reserveCapacity(minimumWritableBytes: FrameHeader.size + payloadLength)
        let headerIndex = buffer.writerIndex
        buffer.writeInteger(FrameHeader.magic, endianness: .little, as: UInt32.self)
        buffer.writeInteger(FrameHeader.currentVersion, endianness: .little, as: UInt16.self)
        buffer.writeInteger(frame.payload.frameType.rawValue, endianness: .little, as: UInt16.self)
        buffer.writeInteger(0, endianness: .little, as: UInt32.self)  // flags
        buffer.writeInteger(frame.sequenceID, endianness: .little, as: UInt64.self)
        buffer.writeInteger(frame.position, endianness: .little, as: UInt32.self)
        buffer.writeInteger(length32, endianness: .little, as: UInt32.self)
        buffer.writeInteger(0, endianness: .little, as: UInt32.self)  // checksum, patched below
        let payloadIndex = buffer.writerIndex
        writePayload(frame.payload, into: &buffer)
        var checksum: UInt32 = 0
        if let payload = buffer.getSlice(at: payloadIndex, length: buffer.writerIndex - payloadIndex) {
            checksum = payload.withUnsafeReadableBytes { CRC32C.checksum($0) }
        }
        buffer.setInteger(checksum, at: headerIndex + 28, endianness: .little, as: UInt32.self)
    }

    /// `frame` encoded into a new buffer.
    public static func encode(
        _ frame: StarStreamFrame, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(StarStreamError) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 0)
        try encode(frame, into: &buffer)
        return buffer
    }

    /// The payload length of a valid payload; throws for one the decoder would reject.
    static func validatedPayloadLength(_ payload: StarStreamPayload) throws(StarStreamError) -> Int {
        switch payload {
        case .hello(let hello):
            let tokenBytes = hello.clusterToken.utf8.count
            guard tokenBytes <= Hello.maxClusterTokenBytes else {
                throw .stringTooLong(length: tokenBytes, max: Hello.maxClusterTokenBytes)
            }
            guard hello.modelDigest.count == Hello.digestLength else {
                throw .badDigestLength(hello.modelDigest.count)
            }
            guard hello.firstLayer <= hello.endLayer else {
                throw .badLayerRange(first: hello.firstLayer, end: hello.endLayer)
            }
            return 2 + 1 + 2 + tokenBytes + Hello.digestLength + 4 + 4
        case .activations(let activations):
            return try validatedActivationsLength(activations)
        case .token(let token):
            let n = token.alternatives.count
            guard n <= TokenMessage.maxAlternatives else {
                throw .countTooLarge(count: UInt64(n), max: UInt64(TokenMessage.maxAlternatives))
            }
            return n == 0 ? 8 : 9 + 8 * n
        case .cancel:
            return 0
        case .error(_, let message):
            let messageBytes = message.utf8.count
            guard messageBytes <= StarStreamPayload.maxErrorMessageBytes else {
                throw .stringTooLong(length: messageBytes, max: StarStreamPayload.maxErrorMessageBytes)
            }
            return 2 + 2 + messageBytes
        case .ping, .pong, .probe:
            return 8
        case .open(let open):
            return try validatedOpenLength(open)
        case .prompt(let chunk):
            return try validatedPromptLength(chunk)
        case .done:
            return 5
        }
    }

    static func validatedOpenLength(_ open: SequenceOpen) throws(StarStreamError) -> Int {
        guard open.promptLength > 0 else { throw .zeroCount(type: StarStreamFrameType.open.rawValue) }
        guard open.stopTokens.count <= SequenceOpen.maxStopTokens else {
            throw .countTooLarge(count: UInt64(open.stopTokens.count), max: UInt64(SequenceOpen.maxStopTokens))
        }
        guard open.history.count <= SequenceOpen.maxHistoryTokens else {
            throw .countTooLarge(count: UInt64(open.history.count), max: UInt64(SequenceOpen.maxHistoryTokens))
        }
        guard (0 ... TokenMessage.maxAlternatives).contains(open.topLogprobs) else {
            throw .countTooLarge(count: UInt64(max(0, open.topLogprobs)), max: UInt64(TokenMessage.maxAlternatives))
        }
        // The counts are capped, so this is at most 55 + 256 + 4 MiB + 8 + 1.
        let resume = open.randomDraws > 0 ? SequenceOpen.resumeBytes : 0
        let alternatives = open.topLogprobs > 0 ? 1 : 0
        return SequenceOpen.fixedBytes + 4 * open.stopTokens.count + 4 * open.history.count + resume + alternatives
    }

    static func validatedPromptLength(_ chunk: PromptChunk) throws(StarStreamError) -> Int {
        let count = chunk.tokens.count
        guard count > 0 else { throw .zeroCount(type: StarStreamFrameType.prompt.rawValue) }
        guard let count32 = UInt32(exactly: count) else {
            throw .countTooLarge(count: UInt64(count), max: UInt64(UInt32.max))
        }
        guard !chunk.firstPosition.addingReportingOverflow(count32).overflow else {
            throw .positionOverflow(first: chunk.firstPosition, count: UInt64(count))
        }
        // count < 2^32, so this fits in Int; `encode` rejects a total over UInt32.max.
        return PromptChunk.fixedBytes + 4 * count
    }

    static func validatedActivationsLength(_ a: Activations) throws(StarStreamError) -> Int {
        let count = a.positions.count
        guard count > 0, a.width > 0, UInt32(exactly: count) != nil, UInt32(exactly: a.width) != nil else {
            throw .shapeMismatch
        }
        if a.dtype == .q8 && a.width % WireDType.q8BlockValues != 0 {
            throw .widthNotMultipleOf32(width: UInt64(a.width))
        }
        let (valueCount, overflow) = count.multipliedReportingOverflow(by: a.width)
        guard !overflow, valueCount == a.values.count else { throw .shapeMismatch }
        var previous = a.positions[0]
        for position in a.positions.dropFirst() {
            guard position > previous else { throw .positionsNotIncreasing }
            previous = position
        }
        guard let length = activationsPayloadLength(
            dtype: a.dtype, count: UInt64(count), width: UInt64(a.width)), let result = Int(exactly: length)
        else {
            throw .payloadTooLarge(declared: UInt64.max, cap: UInt64(UInt32.max))
        }
        return result
    }

    /// 9 + 4·count + data bytes, or nil on overflow. `width` must already be a multiple of 32 for Q8.
    static func activationsPayloadLength(dtype: WireDType, count: UInt64, width: UInt64) -> UInt64? {
        let (values, o1) = count.multipliedReportingOverflow(by: width)
        let dataBytes: UInt64
        let o2: Bool
        switch dtype {
        case .f32: (dataBytes, o2) = values.multipliedReportingOverflow(by: 4)
        case .f16: (dataBytes, o2) = values.multipliedReportingOverflow(by: 2)
        case .q8:
            (dataBytes, o2) = (values / UInt64(WireDType.q8BlockValues))
                .multipliedReportingOverflow(by: UInt64(WireDType.q8BlockBytes))
        }
        let (positionBytes, o3) = count.multipliedReportingOverflow(by: 4)
        let (sum, o4) = dataBytes.addingReportingOverflow(positionBytes)
        let (total, o5) = sum.addingReportingOverflow(UInt64(StarStreamLimits.activationsFixedBytes))
        if o1 || o2 || o3 || o4 || o5 { return nil }
        return total
    }

    /// Writes a payload that `validatedPayloadLength` accepted.
    static func writePayload(_ payload: StarStreamPayload, into buffer: inout ByteBuffer) {
        switch payload {
        case .hello(let hello):
            buffer.writeInteger(hello.protocolVersion, endianness: .little, as: UInt16.self)
            buffer.writeInteger(hello.role.rawValue, as: UInt8.self)
            buffer.writeInteger(UInt16(truncatingIfNeeded: hello.clusterToken.utf8.count), endianness: .little)
            buffer.writeString(hello.clusterToken)
            buffer.writeBytes(hello.modelDigest)
            buffer.writeInteger(hello.firstLayer, endianness: .little, as: UInt32.self)
            buffer.writeInteger(hello.endLayer, endianness: .little, as: UInt32.self)
        case .activations(let activations):
            writeActivations(activations, into: &buffer)
        case .token(let token):
            buffer.writeInteger(UInt32(bitPattern: token.tokenID), endianness: .little, as: UInt32.self)
            let logprob = token.logprob ?? Float.nan
            buffer.writeInteger(logprob.bitPattern, endianness: .little, as: UInt32.self)
            if !token.alternatives.isEmpty {
                buffer.writeInteger(UInt8(token.alternatives.count), as: UInt8.self)
                for a in token.alternatives {
                    buffer.writeInteger(UInt32(bitPattern: a.tokenID), endianness: .little, as: UInt32.self)
                    buffer.writeInteger(a.logprob.bitPattern, endianness: .little, as: UInt32.self)
                }
            }
        case .cancel:
            break
        case .error(let code, let message):
            buffer.writeInteger(code, endianness: .little, as: UInt16.self)
            buffer.writeInteger(UInt16(truncatingIfNeeded: message.utf8.count), endianness: .little)
            buffer.writeString(message)
        case .ping(let nonce), .pong(let nonce), .probe(let nonce):
            buffer.writeInteger(nonce, endianness: .little, as: UInt64.self)
        case .open(let open):
            writeOpen(open, into: &buffer)
        case .prompt(let chunk):
            buffer.writeInteger(chunk.firstPosition, endianness: .little, as: UInt32.self)
            buffer.writeInteger(UInt32(truncatingIfNeeded: chunk.tokens.count), endianness: .little, as: UInt32.self)
            writeTokens(chunk.tokens, into: &buffer)
        case .done(let cause, let generated):
            buffer.writeInteger(cause.rawValue, as: UInt8.self)
            buffer.writeInteger(generated, endianness: .little, as: UInt32.self)
        }
    }

    static func writeOpen(_ open: SequenceOpen, into buffer: inout ByteBuffer) {
        buffer.writeInteger(open.promptLength, endianness: .little, as: UInt32.self)
        buffer.writeInteger(open.maxNewTokens, endianness: .little, as: UInt32.self)
        let options = (open.wantsLogprobs ? SequenceOpen.logprobsOption : 0) | (open.randomDraws > 0 ? SequenceOpen.resumeOption : 0)
            | (open.topLogprobs > 0 ? SequenceOpen.alternativesOption : 0)
        buffer.writeInteger(options, as: UInt8.self)
        let s = open.sampling
        buffer.writeInteger(s.temperature.bitPattern, endianness: .little, as: UInt32.self)
        buffer.writeInteger(s.topK, endianness: .little, as: UInt32.self)
        buffer.writeInteger(s.topP.bitPattern, endianness: .little, as: UInt32.self)
        buffer.writeInteger(s.minP.bitPattern, endianness: .little, as: UInt32.self)
        buffer.writeInteger(s.repetitionPenalty.bitPattern, endianness: .little, as: UInt32.self)
        buffer.writeInteger(s.frequencyPenalty.bitPattern, endianness: .little, as: UInt32.self)
        buffer.writeInteger(s.presencePenalty.bitPattern, endianness: .little, as: UInt32.self)
        buffer.writeInteger(s.penaltyLastN, endianness: .little, as: UInt32.self)
        buffer.writeInteger(s.seed, endianness: .little, as: UInt64.self)
        buffer.writeInteger(UInt16(truncatingIfNeeded: open.stopTokens.count), endianness: .little, as: UInt16.self)
        writeTokens(open.stopTokens, into: &buffer)
        buffer.writeInteger(UInt32(truncatingIfNeeded: open.history.count), endianness: .little, as: UInt32.self)
        writeTokens(open.history, into: &buffer)
        if open.randomDraws > 0 { buffer.writeInteger(open.randomDraws, endianness: .little, as: UInt64.self) }
        if open.topLogprobs > 0 { buffer.writeInteger(UInt8(open.topLogprobs), as: UInt8.self) }
    }

    /// Token ids as little-endian i32, one after the other.
    static func writeTokens(_ tokens: [Int32], into buffer: inout ByteBuffer) {
        let count = tokens.count
        guard count > 0 else { return }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count * 4) { out in
            tokens.withUnsafeBufferPointer { ids in
                for i in 0..<count {
                    out.storeBytes(of: UInt32(bitPattern: ids[i]).littleEndian, toByteOffset: i * 4, as: UInt32.self)
                }
            }
            return count * 4
        }
    }

    static func writeActivations(_ a: Activations, into buffer: inout ByteBuffer) {
        let count = a.positions.count
        let width = a.width
        buffer.writeInteger(a.dtype.rawValue, as: UInt8.self)
        buffer.writeInteger(UInt32(truncatingIfNeeded: count), endianness: .little, as: UInt32.self)
        buffer.writeInteger(UInt32(truncatingIfNeeded: width), endianness: .little, as: UInt32.self)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count * 4) { out in
            a.positions.withUnsafeBufferPointer { positions in
                for i in 0..<count {
                    out.storeBytes(of: positions[i].littleEndian, toByteOffset: i * 4, as: UInt32.self)
                }
            }
            return count * 4
        }
        let valueCount = count * width
        switch a.dtype {
        case .f32:
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: valueCount * 4) { out in
                a.values.withUnsafeBufferPointer { values in
                    for i in 0..<valueCount {
                        out.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                    }
                }
                return valueCount * 4
            }
        case .f16:
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: valueCount * 2) { out in
                a.values.withUnsafeBufferPointer { values in
                    for i in 0..<valueCount {
                        out.storeBytes(of: halfBits(from: values[i]).littleEndian, toByteOffset: i * 2, as: UInt16.self)
                    }
                }
                return valueCount * 2
            }
        case .q8:
            let blocks = valueCount / WireDType.q8BlockValues
            let byteCount = blocks * WireDType.q8BlockBytes
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: byteCount) { out in
                a.values.withUnsafeBufferPointer { values in
                    for block in 0..<blocks {
                        let base = block * WireDType.q8BlockValues
                        let outBase = block * WireDType.q8BlockBytes
                        var amax: Float = 0
                        for j in 0..<WireDType.q8BlockValues {
                            let magnitude = abs(values[base + j])
                            if magnitude > amax { amax = magnitude }  // NaN never wins
                        }
                        let scale = amax / 127
                        out.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: outBase, as: UInt32.self)
                        for j in 0..<WireDType.q8BlockValues {
                            var q: Float = 0
                            if scale > 0 && scale.isFinite {
                                q = (values[base + j] / scale).rounded(.toNearestOrAwayFromZero)
                                if q.isNaN { q = 0 }
                                q = Swift.min(127, Swift.max(-127, q))
                            }
                            out.storeBytes(
                                of: UInt8(bitPattern: Int8(q)), toByteOffset: outBase + 4 + j, as: UInt8.self)
                        }
                    }
                }
                return byteCount
            }
        }
    }

    // MARK: Decoding

    /// Decodes one frame from the front of `buffer`. Returns nil, consuming nothing, while the
    /// frame is incomplete; on success the frame's bytes are consumed and any following bytes stay.
    /// Throws as soon as the bytes present are invalid: a wrong magic from the first byte on, a bad
    /// header (version, type, flags, length over `limits.maxPayloadBytes`) once its 32 bytes are
    /// there, without waiting for the payload. After a throw, close the connection.
    public static func decode(
        _ buffer: inout ByteBuffer, limits: StarStreamLimits
    ) throws(StarStreamError) -> StarStreamFrame? {
        guard let header = try peekHeader(buffer, limits: limits) else { return nil }
        guard let payloadLength = Int(exactly: header.payloadLength),
            buffer.readableBytes - FrameHeader.size >= payloadLength
        else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        guard let payload = buffer.readSlice(length: payloadLength) else { return nil }
        return try decodePayload(header: header, payload: payload, limits: limits)
    }

    /// Validates the header at the front of `buffer` without consuming it: nil while fewer than 32
    /// bytes are there (after checking the magic of those that are).
    ///
    /// The length is checked against the cap of its frame type (`StarStreamLimits.payloadCap`);
    /// with `authenticated` false only HELLO and ERROR pass.
    public static func peekHeader(
        _ buffer: ByteBuffer, limits: StarStreamLimits, authenticated: Bool = true
    ) throws(StarStreamError) -> FrameHeader? {
        let start = buffer.readerIndex
        let present = min(buffer.readableBytes, FrameHeader.magicBytes.count)
        for i in 0..<present {
            guard buffer.getInteger(at: start + i, as: UInt8.self) == FrameHeader.magicBytes[i] else {
                throw .badMagic
            }
        }
        guard buffer.readableBytes >= FrameHeader.size,
            let version = buffer.getInteger(at: start + 4, endianness: .little, as: UInt16.self),
            let rawType = buffer.getInteger(at: start + 6, endianness: .little, as: UInt16.self),
            let flags = buffer.getInteger(at: start + 8, endianness: .little, as: UInt32.self),
            let sequenceID = buffer.getInteger(at: start + 12, endianness: .little, as: UInt64.self),
            let position = buffer.getInteger(at: start + 20, endianness: .little, as: UInt32.self),
            let length = buffer.getInteger(at: start + 24, endianness: .little, as: UInt32.self),
            let checksum = buffer.getInteger(at: start + 28, endianness: .little, as: UInt32.self)
        else { return nil }
        guard version == FrameHeader.currentVersion else { throw .unsupportedVersion(version) }
        guard let type = StarStreamFrameType(rawValue: rawType) else { throw .unknownType(rawType) }
        guard flags & FrameHeader.reservedFlagsMask == 0 else { throw .reservedFlags(flags) }
        guard let typeCap = limits.payloadCap(for: type, authenticated: authenticated) else {
            throw .notAuthenticated(type: rawType)
        }
        let cap = UInt64(max(0, min(typeCap, limits.maxPayloadBytes)))
        guard UInt64(length) <= cap else { throw .payloadTooLarge(declared: UInt64(length), cap: cap) }
        return FrameHeader(
            version: version, type: type, flags: flags, sequenceID: sequenceID, position: position,
            payloadLength: length, checksum: checksum)
    }

    /// Checks the CRC and the structure of a complete payload (exactly `header.payloadLength` bytes).
    public static func decodePayload(
        header: FrameHeader, payload: ByteBuffer, limits: StarStreamLimits
    ) throws(StarStreamError) -> StarStreamFrame {
        let length = header.payloadLength
        guard UInt64(payload.readableBytes) == UInt64(length) else {
            throw .badPayloadLength(type: header.type.rawValue, length: length)
        }
        let actual = payload.withUnsafeReadableBytes { CRC32C.checksum($0) }
        guard actual == header.checksum else { throw .checksumMismatch(expected: header.checksum, actual: actual) }
        var p = payload
        let type = header.type.rawValue
        let body: StarStreamPayload
        switch header.type {
        case .hello:
            body = .hello(try decodeHello(&p, type: type, length: length))
        case .activations:
            body = .activations(try decodeActivations(&p, length: length, limits: limits))
        case .token:
            body = .token(try decodeToken(&p, length: length))
        case .cancel:
            guard p.readableBytes == 0 else { throw .badPayloadLength(type: type, length: length) }
            body = .cancel
        case .error:
            guard let code = p.readInteger(endianness: .little, as: UInt16.self),
                let messageLength = p.readInteger(endianness: .little, as: UInt16.self)
            else { throw .badPayloadLength(type: type, length: length) }
            let message = try readString(
                &p, length: Int(messageLength), max: StarStreamPayload.maxErrorMessageBytes, type: type,
                payloadLength: length)
            guard p.readableBytes == 0 else { throw .badPayloadLength(type: type, length: length) }
            body = .error(code: code, message: message)
        case .ping, .pong, .probe:
            guard p.readableBytes == 8, let nonce = p.readInteger(endianness: .little, as: UInt64.self) else {
                throw .badPayloadLength(type: type, length: length)
            }
            switch header.type {
            case .ping: body = .ping(nonce)
            case .pong: body = .pong(nonce)
            default: body = .probe(nonce)
            }
        case .open:
            body = .open(try decodeOpen(&p, length: length))
        case .prompt:
            body = .prompt(try decodePrompt(&p, length: length))
        case .done:
            guard p.readableBytes == 5,
                let rawReason = p.readInteger(as: UInt8.self),
                let generated = p.readInteger(endianness: .little, as: UInt32.self)
            else { throw .badPayloadLength(type: type, length: length) }
            guard let cause = FinishCause(rawValue: rawReason) else { throw .badFinishReason(rawReason) }
            body = .done(cause, generated: generated)
        }
        return StarStreamFrame(sequenceID: header.sequenceID, position: header.position, payload: body)
    }

    /// Reads `length` bytes of UTF-8 after checking `length <= max` and that they are there.
    private static func readString(
        _ p: inout ByteBuffer, length: Int, max: Int, type: UInt16, payloadLength: UInt32
    ) throws(StarStreamError) -> String {
        guard length <= max else { throw .stringTooLong(length: length, max: max) }
        guard let bytes = p.readBytes(length: length) else {
            throw .badPayloadLength(type: type, length: payloadLength)
        }
        guard let string = String(validating: bytes, as: UTF8.self) else { throw .badString }
        return string
    }

    private static func decodeHello(
        _ p: inout ByteBuffer, type: UInt16, length: UInt32
    ) throws(StarStreamError) -> Hello {
        guard let version = p.readInteger(endianness: .little, as: UInt16.self),
            let rawRole = p.readInteger(as: UInt8.self),
            let tokenLength = p.readInteger(endianness: .little, as: UInt16.self)
        else { throw .badPayloadLength(type: type, length: length) }
        guard let role = StarStreamRole(rawValue: rawRole) else { throw .badRole(rawRole) }
        let token = try readString(
            &p, length: Int(tokenLength), max: Hello.maxClusterTokenBytes, type: type, payloadLength: length)
        guard p.readableBytes == Hello.digestLength + 8,
            let digest = p.readBytes(length: Hello.digestLength),
            let first = p.readInteger(endianness: .little, as: UInt32.self),
            let end = p.readInteger(endianness: .little, as: UInt32.self)
        else { throw .badPayloadLength(type: type, length: length) }
        guard first <= end else { throw .badLayerRange(first: first, end: end) }
        return Hello(
            protocolVersion: version, role: role, clusterToken: token, modelDigest: digest, firstLayer: first,
            endLayer: end)
    }

    /// OPEN, in this order: at least the fixed 55 bytes; the option bits (the resume bit adds 8
    /// bytes at the end); the stop count ≤ 64; the history count (read at its offset, which the
    /// stop count fixes) ≤ 1<<20; the exact length `55 + 4·stops + 4·history (+ 8)`; only then the
    /// prompt length and the token ids.
    /// Both counts are capped before the payload length is compared, so every size is small and
    /// nothing is read or allocated from a count the bytes do not back.
    private static func decodeOpen(
        _ p: inout ByteBuffer, length: UInt32
    ) throws(StarStreamError) -> SequenceOpen {
        let type = StarStreamFrameType.open.rawValue
        let start = p.readerIndex
        let stopCountOffset = SequenceOpen.fixedBytes - 6  // stop count u16, then history count u32
        guard p.readableBytes >= SequenceOpen.fixedBytes,
            let options = p.getInteger(at: start + 8, as: UInt8.self),
            let stopCount16 = p.getInteger(at: start + stopCountOffset, endianness: .little, as: UInt16.self)
        else { throw .badPayloadLength(type: type, length: length) }
        guard options & ~(SequenceOpen.logprobsOption | SequenceOpen.resumeOption | SequenceOpen.alternativesOption) == 0 else {
            throw .badOptions(options)
        }
        let resumeBytes = options & SequenceOpen.resumeOption != 0 ? SequenceOpen.resumeBytes : 0
        let alternativesBytes = options & SequenceOpen.alternativesOption != 0 ? 1 : 0
        let stopCount = Int(stopCount16)
        guard stopCount <= SequenceOpen.maxStopTokens else {
            throw .countTooLarge(count: UInt64(stopCount), max: UInt64(SequenceOpen.maxStopTokens))
        }
        let historyCountOffset = stopCountOffset + 2 + 4 * stopCount
        guard p.readableBytes >= historyCountOffset + 4,
            let historyCount32 = p.getInteger(at: start + historyCountOffset, endianness: .little, as: UInt32.self)
        else { throw .badPayloadLength(type: type, length: length) }
        guard historyCount32 <= UInt32(SequenceOpen.maxHistoryTokens) else {
            throw .countTooLarge(count: UInt64(historyCount32), max: UInt64(SequenceOpen.maxHistoryTokens))
        }
        let historyCount = Int(historyCount32)
        // Both counts are capped above: 55 + 256 + 4·2^20 + 8 cannot overflow.
        guard p.readableBytes == SequenceOpen.fixedBytes + 4 * stopCount + 4 * historyCount + resumeBytes + alternativesBytes else {
            throw .badPayloadLength(type: type, length: length)
        }
        guard let promptLength = p.readInteger(endianness: .little, as: UInt32.self),
            let maxNewTokens = p.readInteger(endianness: .little, as: UInt32.self),
            p.readInteger(as: UInt8.self) != nil,  // options, read above
            let temperature = p.readInteger(endianness: .little, as: UInt32.self),
            let topK = p.readInteger(endianness: .little, as: UInt32.self),
            let topP = p.readInteger(endianness: .little, as: UInt32.self),
            let minP = p.readInteger(endianness: .little, as: UInt32.self),
            let repetition = p.readInteger(endianness: .little, as: UInt32.self),
            let frequency = p.readInteger(endianness: .little, as: UInt32.self),
            let presence = p.readInteger(endianness: .little, as: UInt32.self),
            let penaltyLastN = p.readInteger(endianness: .little, as: UInt32.self),
            let seed = p.readInteger(endianness: .little, as: UInt64.self)
        else { throw .badPayloadLength(type: type, length: length) }
        guard promptLength > 0 else { throw .zeroCount(type: type) }
        p.moveReaderIndex(forwardBy: 2)  // stop count, read above
        let stopTokens = readTokens(&p, count: stopCount)
        p.moveReaderIndex(forwardBy: 4)  // history count, read above
        let history = readTokens(&p, count: historyCount)
        var randomDraws: UInt64 = 0
        if resumeBytes > 0 {
            guard let draws = p.readInteger(endianness: .little, as: UInt64.self) else {
                throw .badPayloadLength(type: type, length: length)
            }
            randomDraws = draws
        }
        var topLogprobs = 0
        if alternativesBytes > 0 {
            guard let n = p.readInteger(as: UInt8.self) else { throw .badPayloadLength(type: type, length: length) }
            guard n >= 1 else { throw .zeroCount(type: type) }
            guard Int(n) <= TokenMessage.maxAlternatives else {
                throw .countTooLarge(count: UInt64(n), max: UInt64(TokenMessage.maxAlternatives))
            }
            topLogprobs = Int(n)
        }
        let sampling = WireSampling(
            temperature: Float(bitPattern: temperature), topK: topK, topP: Float(bitPattern: topP),
            minP: Float(bitPattern: minP), repetitionPenalty: Float(bitPattern: repetition),
            frequencyPenalty: Float(bitPattern: frequency), presencePenalty: Float(bitPattern: presence),
            penaltyLastN: penaltyLastN, seed: seed)
        return SequenceOpen(
            promptLength: promptLength, maxNewTokens: maxNewTokens,
            wantsLogprobs: options & SequenceOpen.logprobsOption != 0, sampling: sampling,
            stopTokens: stopTokens, history: history, randomDraws: randomDraws, topLogprobs: topLogprobs)
    }

    /// TOKEN: exactly 8 bytes, or 9 + 8·n with a count n of 1...20 alternatives after the first 8.
    private static func decodeToken(_ p: inout ByteBuffer, length: UInt32) throws(StarStreamError) -> TokenMessage {
        let type = StarStreamFrameType.token.rawValue
        guard p.readableBytes >= 8,
            let id = p.readInteger(endianness: .little, as: UInt32.self),
            let logprob = p.readInteger(endianness: .little, as: UInt32.self)
        else { throw .badPayloadLength(type: type, length: length) }
        let value = Float(bitPattern: logprob)
        var token = TokenMessage(tokenID: Int32(bitPattern: id), logprob: value.isNaN ? nil : value)
        guard p.readableBytes > 0 else { return token }
        guard let count8 = p.readInteger(as: UInt8.self) else { throw .badPayloadLength(type: type, length: length) }
        let count = Int(count8)
        guard count >= 1 else { throw .zeroCount(type: type) }
        guard count <= TokenMessage.maxAlternatives else {
            throw .countTooLarge(count: UInt64(count), max: UInt64(TokenMessage.maxAlternatives))
        }
        guard p.readableBytes == 8 * count else { throw .badPayloadLength(type: type, length: length) }
        token.alternatives.reserveCapacity(count)
        for _ in 0 ..< count {
            guard let a = p.readInteger(endianness: .little, as: UInt32.self),
                let l = p.readInteger(endianness: .little, as: UInt32.self)
            else { throw .badPayloadLength(type: type, length: length) }
            token.alternatives.append(TokenAlternative(tokenID: Int32(bitPattern: a), logprob: Float(bitPattern: l)))
        }
        return token
    }

    /// PROMPT, in this order: at least 8 bytes; count > 0; the exact length `8 + 4·count`;
    /// `firstPosition + count` fits in a u32; then the token ids.
    private static func decodePrompt(
        _ p: inout ByteBuffer, length: UInt32
    ) throws(StarStreamError) -> PromptChunk {
        let type = StarStreamFrameType.prompt.rawValue
        guard let first = p.readInteger(endianness: .little, as: UInt32.self),
            let count32 = p.readInteger(endianness: .little, as: UInt32.self)
        else { throw .badPayloadLength(type: type, length: length) }
        guard count32 > 0 else { throw .zeroCount(type: type) }
        // In 64 bits: 4·count cannot overflow, and a count the payload does not back is rejected
        // here, before anything is allocated for it.
        guard UInt64(p.readableBytes) == 4 * UInt64(count32) else {
            throw .badPayloadLength(type: type, length: length)
        }
        guard !first.addingReportingOverflow(count32).overflow else {
            throw .positionOverflow(first: first, count: UInt64(count32))
        }
        return PromptChunk(firstPosition: first, tokens: readTokens(&p, count: Int(count32)))
    }

    /// Reads `count` little-endian i32 token ids; the caller has checked that they are there.
    private static func readTokens(_ p: inout ByteBuffer, count: Int) -> [Int32] {
        guard count > 0 else { return [] }
        let tokens = p.withUnsafeReadableBytes { raw in
            [Int32](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count {
                    out[i] = Int32(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                }
                initialized = count
            }
        }
        p.moveReaderIndex(forwardBy: count * 4)
        return tokens
    }

    private static func decodeActivations(
        _ p: inout ByteBuffer, length: UInt32, limits: StarStreamLimits
    ) throws(StarStreamError) -> Activations {
        let type = StarStreamFrameType.activations.rawValue
        guard let rawDType = p.readInteger(as: UInt8.self),
            let count32 = p.readInteger(endianness: .little, as: UInt32.self),
            let width32 = p.readInteger(endianness: .little, as: UInt32.self)
        else { throw .badPayloadLength(type: type, length: length) }
        guard let dtype = WireDType(rawValue: rawDType) else { throw .badDType(rawDType) }
        guard count32 > 0, width32 > 0 else { throw .shapeMismatch }
        if dtype == .q8 && width32 % UInt32(WireDType.q8BlockValues) != 0 {
            throw .widthNotMultipleOf32(width: UInt64(width32))
        }
        // Every size below is checked against the payload that is already here before anything is
        // allocated, so hostile counts cannot make the receiver reserve memory.
        guard let expected = activationsPayloadLength(dtype: dtype, count: UInt64(count32), width: UInt64(width32)),
            expected == UInt64(length)
        else { throw .shapeMismatch }
        let valueCount64 = UInt64(count32) * UInt64(width32)  // both < 2^32: no overflow
        let (decodedBytes, overflow) = valueCount64.multipliedReportingOverflow(by: 4)
        let cap = UInt64(max(0, limits.maxPayloadBytes))
        guard !overflow, decodedBytes <= cap else {
            throw .decodedSizeTooLarge(bytes: overflow ? UInt64.max : decodedBytes, cap: cap)
        }
        guard let count = Int(exactly: count32), let width = Int(exactly: width32),
            let valueCount = Int(exactly: valueCount64),
            p.readableBytes == Int(exactly: expected).map({ $0 - StarStreamLimits.activationsFixedBytes })
        else { throw .shapeMismatch }

        let positions = p.withUnsafeReadableBytes { raw in
            [UInt32](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count {
                    out[i] = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                }
                initialized = count
            }
        }
        for i in 1..<count where positions[i] <= positions[i - 1] {
            throw .positionsNotIncreasing
        }
        p.moveReaderIndex(forwardBy: count * 4)

        let values = p.withUnsafeReadableBytes { raw in
            [Float](unsafeUninitializedCapacity: valueCount) { out, initialized in
                switch dtype {
                case .f32:
                    for i in 0..<valueCount {
                        out[i] = Float(
                            bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                    }
                case .f16:
                    for i in 0..<valueCount {
                        out[i] = floatFromHalfBits(
                            UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                    }
                case .q8:
                    let blocks = valueCount / WireDType.q8BlockValues
                    for block in 0..<blocks {
                        let inBase = block * WireDType.q8BlockBytes
                        let outBase = block * WireDType.q8BlockValues
                        let scale = Float(
                            bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: inBase, as: UInt32.self)))
                        for j in 0..<WireDType.q8BlockValues {
                            out[outBase + j] = scale * Float(Int8(bitPattern: raw[inBase + 4 + j]))
                        }
                    }
                }
                initialized = valueCount
            }
        }
        return Activations(dtype: dtype, positions: positions, width: width, values: values)
    }
}
