import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One plain-HTTP range request on a connection of its own, whose body is hashed and written
/// to the cache by the event loop that reads the socket, in reads of up to a megabyte.
///
/// A whole-model pull is bound by the CPU (receive copies, SHA-256, page-cache writes and, on
/// one machine, the store's own sends). The streaming HTTP client reads at most 64 KiB at a
/// time and hands every buffer to another thread; this path reads large buffers and never
/// changes threads, which is what brings a pull near `curl`'s speed (docs/model-store.md).
/// Its loops are its own, so a pull cannot stall a node's data plane or control plane.
enum RangeDownload {
    /// Where a plain-HTTP URL points; nil for any other scheme.
    struct Target: Sendable {
        let host: String
        let port: Int
        let path: String

        init?(url: String) {
            guard let c = URLComponents(string: url), c.scheme == "http", let host = c.host, !host.isEmpty else { return nil }
            self.host = host
            port = c.port ?? 80
            let p = c.percentEncodedPath
            path = (p.isEmpty ? "/" : p) + (c.percentEncodedQuery.map { "?" + $0 } ?? "")
        }
    }

    /// Loops that read and store pulled bytes, one per request in flight.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: StoreModelSource.parallelRequests)
    /// A transfer that receives nothing for this long is broken (the pull resumes it).
    static let stallTimeout = TimeAmount.seconds(30)

    static func run(_ target: Target, plan: StoreModelSource.RangePlan, cache: TensorCache, etag: String,
                    onBytes: @escaping @Sendable (Int) -> Void) async throws(StoreError) -> [StoreModelSource.PieceOutcome] {
        let url = "http://\(target.host):\(target.port)\(target.path)"
        let loop = group.next()
        let promise = loop.makePromise(of: [StoreModelSource.PieceOutcome].self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64 << 10, initial: 1 << 20, maximum: 1 << 20))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: stallTimeout))
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(sink: RangeSink(plan: plan, cache: cache), etag: etag, url: url, promise: promise, onBytes: onBytes))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch {
            promise.fail(StoreError.unreachable(url: url, reason: "\(error)"))
            throw .unreachable(url: url, reason: "\(error)")
        }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.path)
        head.headers.add(name: "Host", value: "\(target.host):\(target.port)")
        head.headers.add(name: "Range", value: "bytes=\(plan.range.lowerBound)-\(plan.range.upperBound - 1)")
        head.headers.add(name: "Connection", value: "close")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        do {
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .unreachable(url: url, reason: "\(error)")
        }
    }

    /// Feeds the response into the sink and completes the promise once: with the outcomes
    /// when every piece arrived, with an error otherwise. Everything runs on the channel's loop.
    private final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPClientResponsePart

        private var sink: RangeSink
        private let etag: String
        private let url: String
        private let promise: EventLoopPromise<[StoreModelSource.PieceOutcome]>
        private let onBytes: @Sendable (Int) -> Void
        private var completed = false

        init(sink: RangeSink, etag: String, url: String, promise: EventLoopPromise<[StoreModelSource.PieceOutcome]>,
             onBytes: @escaping @Sendable (Int) -> Void) {
            self.sink = sink
            self.etag = etag
            self.url = url
            self.promise = promise
            self.onBytes = onBytes
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !completed else { return }
            do throws(StoreError) {
                switch unwrapInboundIn(data) {
                case let .head(head):
                    try sink.begin(status: Int(head.status.code), etag: head.headers.first(name: "ETag"), expected: etag, url: url)
                case let .body(buffer):
                    onBytes(buffer.readableBytes)
                    try buffer.withUnsafeReadableBytes { (raw: UnsafeRawBufferPointer) throws(StoreError) in try sink.consume(raw) }
                    if sink.isComplete { succeed(context) }
                case .end:
                    succeed(context)
                }
            } catch {
                fail(error, context)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            fail(.unreachable(url: url, reason: "the connection closed after \(sink.position - sink.plan.range.lowerBound) of \(sink.plan.range.count) bytes"), context)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            fail(.unreachable(url: url, reason: "\(error)"), context)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event as? IdleStateHandler.IdleStateEvent == .read {
                fail(.unreachable(url: url, reason: "nothing arrived for \(stallTimeout.nanoseconds / 1_000_000_000) s"), context)
            } else {
                context.fireUserInboundEventTriggered(event)
            }
        }

        private func succeed(_ context: ChannelHandlerContext) {
            guard !completed else { return }
            completed = true
            do throws(StoreError) {
                promise.succeed(try sink.end(url: url))
            } catch {
                promise.fail(error)
            }
            sink.abandon()
            context.close(promise: nil)
        }

        private func fail(_ error: StoreError, _ context: ChannelHandlerContext) {
            guard !completed else { return }
            completed = true
            sink.abandon()
            promise.fail(error)
            context.close(promise: nil)
        }
    }
}
