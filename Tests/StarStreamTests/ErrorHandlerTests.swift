import NIOCore
import NIOEmbedded
import Testing
import StarStream

@Suite struct ErrorHandlerTests {
    final class Box: @unchecked Sendable { var errors: [StarStreamError] = [] }

    private func makeChannel(_ box: Box) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(StarStreamFrameDecoder(limits: testLimits)),
            StarStreamErrorHandler(onError: { box.errors.append($0) }),
            MessageToByteHandler(StarStreamFrameEncoder()),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return channel
    }

    /// The single ERROR frame the channel wrote, decoded.
    private func writtenError(_ channel: EmbeddedChannel) throws -> (code: UInt16, message: String)? {
        var out = ByteBuffer()
        while var chunk = try channel.readOutbound(as: ByteBuffer.self) { out.writeBuffer(&chunk) }
        guard let frame = try StarStreamCodec.decode(&out, limits: testLimits),
            case .error(let code, let message) = frame.payload
        else { return nil }
        #expect(frame.sequenceID == 0)
        #expect(out.readableBytes == 0, "more than one frame written")
        return (code, message)
    }

    @Test func httpGarbageGetsAnErrorFrameAndACloseAndNothingElse() throws {
        let box = Box()
        let channel = try makeChannel(box)
        // Runs the pipeline teardown that a close schedules, so the channel is freed.
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        #expect(channel.isActive)
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        let error = try writtenError(channel)
        #expect(error?.code == StarStreamErrorCode.badMagic)
        #expect(error?.message.contains("magic") == true)
        #expect(!channel.isActive)
        #expect(box.errors == [.badMagic])
        #expect(try channel.readInbound(as: StarStreamFrame.self) == nil)
    }

    @Test func goodFramesPassThenABadOneCloses() throws {
        let box = Box()
        let channel = try makeChannel(box)
        // Runs the pipeline teardown that a close schedules, so the channel is freed.
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        var input = try encoded(StarStreamFrame(sequenceID: 4, payload: .ping(11)))
        var bad = bytes(try encoded(StarStreamFrame(payload: .pong(12))))
        bad[33] ^= 0xFF
        input.writeBytes(bad)
        input.writeBytes(bytes(try encoded(StarStreamFrame(payload: .ping(13)))))  // after the error: ignored
        try channel.writeInbound(input)
        #expect(try channel.readInbound(as: StarStreamFrame.self)?.payload == .ping(11))
        #expect(try channel.readInbound(as: StarStreamFrame.self) == nil)
        #expect(try writtenError(channel)?.code == StarStreamErrorCode.checksumMismatch)
        #expect(!channel.isActive)
        #expect(box.errors.count == 1)
    }

    @Test func oversizedHeaderIsAnsweredAtOnce() throws {
        let box = Box()
        let channel = try makeChannel(box)
        // Runs the pipeline teardown that a close schedules, so the channel is freed.
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        try channel.writeInbound(ByteBuffer(bytes: rawFrame(type: 2, payload: [], length: 1 << 30)[0..<32]))
        #expect(try writtenError(channel)?.code == StarStreamErrorCode.payloadTooLarge)
        #expect(!channel.isActive)
    }

    @Test func applicationWritesStillEncode() throws {
        let box = Box()
        let channel = try makeChannel(box)
        // Runs the pipeline teardown that a close schedules, so the channel is freed.
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        try channel.writeOutbound(StarStreamFrame(payload: .pong(3)))
        var out = try channel.readOutbound(as: ByteBuffer.self) ?? ByteBuffer()
        #expect(try StarStreamCodec.decode(&out, limits: testLimits)?.payload == .pong(3))
        #expect(channel.isActive)
    }
}
