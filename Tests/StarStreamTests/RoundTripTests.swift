import NIOCore
import NIOEmbedded
import Testing
import StarStream

let roomyLimits = StarStreamLimits(maxBatchTokens: 64, width: 512)

@Suite struct RoundTripTests {
    @Test func headerLayout() throws {
        let frame = StarStreamFrame(sequenceID: 0x0102_0304_0506_0708, position: 0x0A0B_0C0D, payload: .ping(5))
        let out = bytes(try encoded(frame))
        #expect(out.count == 40)
        #expect(Array(out[0..<4]) == [0x50, 0x47, 0x53, 0x53])
        #expect(Array(out[4..<8]) == [1, 0, 6, 0])
        #expect(Array(out[8..<12]) == [0, 0, 0, 0])
        #expect(Array(out[12..<20]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(Array(out[20..<24]) == [0x0D, 0x0C, 0x0B, 0x0A])
        #expect(Array(out[24..<28]) == [8, 0, 0, 0])
        let crc = CRC32C.checksum(out[32...])
        #expect(Array(out[28..<32]) == [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: crc >> $0) })
        #expect(Array(out[32...]) == [5, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func everyFrameTypeRoundTrips() throws {
        for frame in sampleFrames() {
            var buf = try encoded(frame)
            let decoded = try StarStreamCodec.decode(&buf, limits: roomyLimits)
            #expect(buf.readableBytes == 0)
            switch (frame.payload, decoded?.payload) {
            case (.activations(let sent), .activations(let got)?) where sent.dtype != .f32:
                #expect(got.positions == sent.positions && got.width == sent.width && got.dtype == sent.dtype)
            default:
                #expect(decoded == frame)
            }
        }
    }

    @Test(arguments: [(1, 8), (3, 1), (5, 96), (17, 33), (64, 512)])
    func f32IsExact(count: Int, width: Int) throws {
        var rng = SeededRandom(seed: UInt64(count * 1000 + width))
        let frame = activationsFrame(dtype: .f32, count: count, width: width, using: &rng)
        var buf = try encoded(frame)
        #expect(buf.readableBytes == 32 + 9 + count * 4 + count * width * 4)
        #expect(try StarStreamCodec.decode(&buf, limits: roomyLimits) == frame)
    }

    @Test func f32KeepsSpecialValues() throws {
        let values: [Float] = [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 0x1p-130, -3]
        let frame = StarStreamFrame(
            payload: .activations(Activations(dtype: .f32, positions: [0], width: values.count, values: values)))
        var buf = try encoded(frame)
        let got = try StarStreamCodec.decode(&buf, limits: roomyLimits)
        guard case .activations(let a)? = got?.payload else { Issue.record("not activations"); return }
        #expect(a.values.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test(arguments: [(1, 8), (3, 1), (5, 96), (17, 33), (64, 512)])
    func f16WithinRounding(count: Int, width: Int) throws {
        var rng = SeededRandom(seed: UInt64(count * 1000 + width))
        let frame = activationsFrame(dtype: .f16, count: count, width: width, using: &rng)
        guard case .activations(let sent) = frame.payload else { return }
        var buf = try encoded(frame)
        #expect(buf.readableBytes == 32 + 9 + count * 4 + count * width * 2)
        guard case .activations(let got)? = try StarStreamCodec.decode(&buf, limits: roomyLimits)?.payload else {
            Issue.record("no activations")
            return
        }
        #expect(got.positions == sent.positions)
        #expect(got.values.count == sent.values.count)
        for (x, y) in zip(sent.values, got.values) {
            // Half has 11 significant bits: the error is at most half an ulp, 2^-11 relative.
            #expect(abs(x - y) <= abs(x) * 0x1p-11 + 0x1p-25)
            #expect(y == HalfFloat.round(x))
        }
    }

    @Test(arguments: [(1, 32), (2, 64), (5, 96), (16, 512), (3, 4096)])
    func q8WithinHalfAScale(count: Int, width: Int) throws {
        var rng = SeededRandom(seed: UInt64(count * 1000 + width))
        var frame = activationsFrame(dtype: .q8, count: count, width: width, using: &rng)
        guard case .activations(var sent) = frame.payload else { return }
        // Blocks of very different magnitudes, an all-zero block and exact extremes.
        for i in 0..<sent.values.count { sent.values[i] *= Float(1 << (i / 32 % 6)) / 4 }
        for i in 0..<32 { sent.values[i] = 0 }
        if sent.values.count >= 64 { sent.values[33] = -10; sent.values[34] = 10 }
        frame.payload = .activations(sent)
        var buf = try encoded(frame)
        #expect(buf.readableBytes == 32 + 9 + count * 4 + count * width / 32 * 36)
        let limits = StarStreamLimits(maxBatchTokens: count, width: width)
        guard case .activations(let got)? = try StarStreamCodec.decode(&buf, limits: limits)?.payload else {
            Issue.record("no activations")
            return
        }
        #expect(got.positions == sent.positions)
        for block in 0..<(sent.values.count / 32) {
            let range = (block * 32)..<(block * 32 + 32)
            let amax = sent.values[range].map(abs).max() ?? 0
            let scale = amax / 127
            for i in range {
                #expect(abs(sent.values[i] - got.values[i]) <= scale / 2 * 1.0001 + 1e-30)
            }
        }
        #expect(got.values[0..<32].allSatisfy { $0 == 0 })
    }

    @Test func byteByByteGivesTheSameFrames() throws {
        var all: [UInt8] = []
        let frames = sampleFrames()
        for frame in frames { all += bytes(try encoded(frame)) }
        let whole = decodeAll(all, limits: roomyLimits)
        let single = decodeAll(all, limits: roomyLimits, chunks: [1])
        let ragged = decodeAll(all, limits: roomyLimits, chunks: [3, 31, 1, 33, 7, 100])
        #expect(whole.error == nil && single.error == nil && ragged.error == nil)
        #expect(whole.frames.count == frames.count)
        #expect(single.frames == whole.frames)
        #expect(ragged.frames == whole.frames)
    }

    @Test func twoFramesInOneBufferAndLeftovers() throws {
        var buf = try encoded(StarStreamFrame(payload: .ping(1)))
        var second = try encoded(StarStreamFrame(payload: .pong(2)))
        buf.writeBuffer(&second)
        buf.writeBytes([0x50, 0x47])  // start of a third frame
        var decoder = StarStreamFrameDecoder(limits: roomyLimits)
        #expect(try decoder.decodeFrame(&buf)?.payload == .ping(1))
        #expect(try decoder.decodeFrame(&buf)?.payload == .pong(2))
        #expect(try decoder.decodeFrame(&buf) == nil)
        #expect(buf.readableBytes == 2)
        #expect(decoder.state == .waitingForHeader)
    }

    @Test func decoderStateMachine() throws {
        let out = bytes(try encoded(StarStreamFrame(sequenceID: 3, payload: .token(TokenMessage(tokenID: 5)))))
        var decoder = StarStreamFrameDecoder(limits: roomyLimits)
        var buf = buffer(Array(out[0..<31]))
        #expect(try decoder.decodeFrame(&buf) == nil)
        #expect(decoder.state == .waitingForHeader)
        buf.writeBytes(out[31..<35])
        #expect(try decoder.decodeFrame(&buf) == nil)
        guard case .waitingForPayload(let header) = decoder.state else {
            Issue.record("expected waitingForPayload")
            return
        }
        #expect(header.type == .token && header.sequenceID == 3 && header.payloadLength == 8)
        buf.writeBytes(out[35...])
        #expect(try decoder.decodeFrame(&buf)?.payload == .token(TokenMessage(tokenID: 5)))
        #expect(decoder.state == .waitingForHeader)
    }

    @Test func throughEmbeddedChannels() throws {
        let sender = EmbeddedChannel()
        try sender.pipeline.syncOperations.addHandler(MessageToByteHandler(StarStreamFrameEncoder()))
        let receiver = EmbeddedChannel()
        try receiver.pipeline.syncOperations.addHandler(ByteToMessageHandler(StarStreamFrameDecoder(limits: roomyLimits)))

        var stream = ByteBuffer()
        for frame in sampleFrames() {
            try sender.writeOutbound(frame)
            while var chunk = try sender.readOutbound(as: ByteBuffer.self) { stream.writeBuffer(&chunk) }
        }
        // Deliver in uneven reads, one frame split across several of them.
        var sizes = [1, 5, 40, 3, 77, 200]
        var index = 0
        while stream.readableBytes > 0 {
            let size = min(sizes[index % sizes.count], stream.readableBytes)
            index += 1
            if let chunk = stream.readSlice(length: size) { try receiver.writeInbound(chunk) }
        }
        sizes.removeAll()
        var received: [StarStreamFrame] = []
        while let frame = try receiver.readInbound(as: StarStreamFrame.self) { received.append(frame) }
        #expect(received.count == sampleFrames().count)
        for (sent, got) in zip(sampleFrames(), received) {
            if case .activations(let a) = sent.payload, a.dtype != .f32 { continue }
            #expect(sent == got)
        }
        _ = try sender.finish()
        _ = try receiver.finish()
    }

    @Test func limitsHelper() {
        let limits = StarStreamLimits(maxBatchTokens: 512, width: 4096)
        #expect(limits.maxPayloadBytes == 512 * 4096 * 4 + 512 * 4 + 9)
        #expect(StarStreamLimits(maxBatchTokens: 1, width: 8).maxPayloadBytes == StarStreamLimits.controlPayloadBytes)
        #expect(StarStreamLimits(maxBatchTokens: Int.max, width: Int.max).maxPayloadBytes == Int(UInt32.max))
        #expect(StarStreamLimits(maxBatchTokens: -1, width: 3).maxPayloadBytes == StarStreamLimits.controlPayloadBytes)
    }

    @Test func encoderRejectsInvalidFrames() {
        func encodeError(_ payload: StarStreamPayload) -> StarStreamError? {
            var buf = ByteBuffer()
            do throws(StarStreamError) {
                try StarStreamCodec.encode(StarStreamFrame(payload: payload), into: &buf)
            } catch {
                #expect(buf.readableBytes == 0)
                return error
            }
            return nil
        }
        let longToken = String(repeating: "a", count: 257)
        #expect(encodeError(.hello(Hello(role: .node, clusterToken: longToken, modelDigest: sampleDigest)))
            == .stringTooLong(length: 257, max: 256))
        #expect(encodeError(.hello(Hello(role: .node, clusterToken: "", modelDigest: [1, 2]))) == .badDigestLength(2))
        #expect(encodeError(.error(code: 1, message: String(repeating: "é", count: 513)))
            == .stringTooLong(length: 1026, max: 1024))
        #expect(encodeError(.activations(Activations(dtype: .f32, positions: [1, 2], width: 4, values: [1])))
            == .shapeMismatch)
        #expect(encodeError(.activations(Activations(dtype: .q8, positions: [1], width: 4, values: [1, 2, 3, 4])))
            == .widthNotMultipleOf32(width: 4))
        #expect(encodeError(.activations(Activations(dtype: .f32, positions: [2, 2], width: 1, values: [1, 2])))
            == .positionsNotIncreasing)
        #expect(encodeError(.activations(Activations(dtype: .f32, positions: [], width: 1, values: []))) == .shapeMismatch)
    }

    @Test func q8EncodesNonFiniteWithoutTrapping() throws {
        var values = [Float](repeating: 1, count: 64)
        values[3] = .nan
        values[40] = .infinity
        let frame = StarStreamFrame(
            payload: .activations(Activations(dtype: .q8, positions: [0], width: 64, values: values)))
        var buf = try encoded(frame)
        let got = try StarStreamCodec.decode(&buf, limits: roomyLimits)
        guard case .activations(let a)? = got?.payload else { Issue.record("no activations"); return }
        #expect(a.values[0] == 1)
        #expect(a.values[3] == 0)
    }
}
