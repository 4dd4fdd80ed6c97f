import NIOCore

/// Decodes StarStream frames from a byte stream. Use it as
/// `ByteToMessageHandler(StarStreamFrameDecoder(limits: ...))`, or call `decode(buffer:)` directly.
///
/// State machine: `waitingForHeader` (checks the magic of whatever bytes are there; once 32 bytes
/// are there validates magic, version, type, flags and the length cap, consumes the header)
/// → `waitingForPayload(header)` (waits for exactly `payloadLength` bytes, then checks the CRC
/// and the payload structure) → `waitingForHeader`. Bytes after a frame stay buffered. Every
/// throw is a `StarStreamError`; after one the stream is out of sync and must be closed.
public struct StarStreamFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = StarStreamFrame

    public enum State: Sendable, Equatable {
        case waitingForHeader
        case waitingForPayload(FrameHeader)
    }

    public let limits: StarStreamLimits
    public private(set) var state: State = .waitingForHeader
    /// Nil: every frame type is accepted (a connection whose peer is trusted from the start).
    public let gate: StarStreamGate?

    /// With a `gate`, only HELLO and ERROR are accepted until the gate opens, each at its small
    /// size (`StarStreamLimits.payloadCap`).
    public init(limits: StarStreamLimits, gate: StarStreamGate? = nil) {
        self.limits = limits
        self.gate = gate
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> StarStreamFrame? {
        try decodeFrame(&buffer)
    }

    /// At EOF a partial frame is left in the buffer (the peer is gone; there is no one to tell).
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> StarStreamFrame? {
        try decodeFrame(&buffer)
    }

    /// `decode(buffer:)` with the error type spelled out.
    public mutating func decodeFrame(_ buffer: inout ByteBuffer) throws(StarStreamError) -> StarStreamFrame? {
        let header: FrameHeader
        switch state {
        case .waitingForHeader:
            let authenticated = gate?.isOpen ?? true
            guard let parsed = try StarStreamCodec.peekHeader(buffer, limits: limits, authenticated: authenticated) else {
                return nil
            }
            buffer.moveReaderIndex(forwardBy: FrameHeader.size)
            state = .waitingForPayload(parsed)
            header = parsed
        case .waitingForPayload(let pending):
            header = pending
        }
        guard let length = Int(exactly: header.payloadLength), let payload = buffer.readSlice(length: length) else {
            return nil
        }
        state = .waitingForHeader
        return try StarStreamCodec.decodePayload(header: header, payload: payload, limits: limits)
    }
}

/// Whether the peer of one connection has been authenticated (its HELLO accepted). The
/// connection's frame handler opens it; the decoder reads it before each header, so until then
/// a peer can make the receiver buffer nothing larger than a HELLO. Frames are decoded and
/// handled one at a time on the channel's event loop, so the frame after an accepted HELLO
/// already sees the gate open. Used on that event loop only.
public final class StarStreamGate: @unchecked Sendable {
    public private(set) var isOpen = false

    public init() {}

    /// Lets every frame type through from now on.
    public func open() { isOpen = true }
}

/// Encodes `StarStreamFrame`s: `MessageToByteHandler(StarStreamFrameEncoder())`.
public struct StarStreamFrameEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = StarStreamFrame

    public init() {}

    public func encode(data: StarStreamFrame, out: inout ByteBuffer) throws {
        try StarStreamCodec.encode(data, into: &out)
    }
}

/// Answers a `StarStreamError` from the decoder with an ERROR frame (sequence 0, the error's
/// `wireCode` and description) and closes that connection only. Put it right after the decoder:
///
///     try channel.pipeline.syncOperations.addHandlers([
///         ByteToMessageHandler(StarStreamFrameDecoder(limits: limits)),
///         StarStreamErrorHandler(),
///         MessageToByteHandler(StarStreamFrameEncoder()),
///         yourFrameHandler,
///     ])
///
/// It writes raw bytes, so it works wherever the encoder sits. Frames pass through untouched.
/// Errors that are not `StarStreamError` are passed on, except the decoder's "data received in
/// error state", which follows a StarStreamError the handler has already answered.
public final class StarStreamErrorHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = StarStreamFrame
    public typealias InboundOut = StarStreamFrame
    public typealias OutboundOut = ByteBuffer

    private let onError: ((StarStreamError) -> Void)?
    private var answered = false

    /// `onError` is called (on the event loop) for each StarStreamError answered, e.g. to log it.
    public init(onError: ((StarStreamError) -> Void)? = nil) {
        self.onError = onError
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? StarStreamError {
            answer(context: context, error: error)
            return
        }
        if case .some(.dataReceivedInErrorState) = error as? ByteToMessageDecoderError, answered {
            return
        }
        context.fireErrorCaught(error)
    }

    private func answer(context: ChannelHandlerContext, error: StarStreamError) {
        guard !answered else { return }
        answered = true
        onError?(error)
        let frame = StarStreamFrame(payload: .error(code: error.wireCode, message: String(error.description.prefix(200))))
        var buffer = context.channel.allocator.buffer(capacity: 64)
        do {
            try StarStreamCodec.encode(frame, into: &buffer)
        } catch {
            // A short ASCII message always encodes; if it ever did not, close without a reply.
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
