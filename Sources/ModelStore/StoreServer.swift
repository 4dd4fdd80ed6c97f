#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GGUF
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Injected failures for drills and tests: the next responses of the file endpoint can carry a
/// flipped byte or end early, as a flaky network would make them.
public final class StoreFaults: Sendable {
    private let state = Mutex<(corrupt: Int, cuts: [Int])>((0, []))

    public init() {}

    /// Flips one byte in each of the next `count` file responses.
    public func corruptNext(_ count: Int) { state.withLock { $0.corrupt = count } }

    /// Ends the next file responses early, the first after `afters[0]` bytes, the second after
    /// `afters[1]`, and so on (an empty list clears the plan).
    public func cutNext(_ afters: [Int]) { state.withLock { $0.cuts = afters } }

    func takeCorruption() -> Bool {
        state.withLock { s in
            guard s.corrupt > 0 else { return false }
            s.corrupt -= 1
            return true
        }
    }

    func takeCut() -> Int? {
        state.withLock { s in s.cuts.isEmpty ? nil : s.cuts.removeFirst() }
    }
}

/// The model store's HTTP API (Hummingbird): the models of a folder, their parsed headers,
/// their tensor indexes with SHA-256 per tensor, and the files themselves with byte ranges and
/// entity tags, so nodes fetch only the tensors of their layers.
public final class StoreServer: Sendable {
    public let catalog: StoreCatalog
    public let faults = StoreFaults()
    private let host: String
    private let port: Int
    private let logger: Logger
    /// File bytes sent, per model id (tests and the operator's log).
    private let sent = Mutex<[String: Int]>([:])
    /// Bytes read from disk per `pread` while streaming a range.
    static let chunkBytes = 1 << 20

    public init(directory: String, host: String = "127.0.0.1", port: Int = 8090, logger: Logger) {
        catalog = StoreCatalog(directory: directory, logger: logger)
        self.host = host
        self.port = port
        self.logger = logger
    }

    /// File bytes served so far for `id`.
    public func bytesSent(_ id: String) -> Int { sent.withLock { $0[id] ?? 0 } }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/v1/store/models") { _, _ in await self.answer { try await self.list() } }
        router.get("/v1/store/models/:id/metadata") { request, context in
            await self.answer { try await self.metadata(id: context.parameters.get("id") ?? "", full: request.uri.queryParameters["full"] != nil) }
        }
        router.get("/v1/store/models/:id/tensors") { request, context in
            await self.answer { try await self.tensors(request, id: context.parameters.get("id") ?? "") }
        }
        router.get("/v1/store/models/:id/file") { request, context in
            await self.answer { try await self.file(request, id: context.parameters.get("id") ?? "", head: false) }
        }
        router.head("/v1/store/models/:id/file") { request, context in
            await self.answer { try await self.file(request, id: context.parameters.get("id") ?? "", head: true) }
        }
        return router
    }

    /// Indexes the folder, then serves until the task is cancelled; `onListening` gets the port.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        await catalog.warm()
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "pangalactic-store"),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) }, logger: logger)
        try await app.run()
    }

    // MARK: Endpoints

    private func list() async throws(StoreError) -> Response {
        var models: [[String: Any]] = []
        for id in try await catalog.ids() {
            guard let e = try? await catalog.entry(id) else { continue }
            let m = e.header.metadata
            let arch = m.string("general.architecture") ?? "unknown"
            var byType: [String: Int] = [:]
            for t in e.index.tensors { byType[t.type, default: 0] += t.size }
            let quant = m.int("general.file_type").flatMap { Self.fileTypeNames[$0] } ?? byType.max { $0.value < $1.value }?.key ?? "unknown"
            models.append([
                "id": id, "object": "model", "architecture": arch, "size": e.index.fileBytes,
                "layers": m.int("\(arch).block_count") ?? 0, "quant": quant, "name": m.string("general.name") ?? id,
                "etag": e.index.etag,
            ])
        }
        return Self.json(200, ["object": "list", "data": models])
    }

    private func metadata(id: String, full: Bool) async throws(StoreError) -> Response {
        let e = try await catalog.entry(id)
        var values: [String: Any] = [:]
        for key in e.header.metadata.keys {
            if let v = e.header.metadata[key] { values[key] = v.json(arrayLimit: full ? nil : 16) }
        }
        return Self.json(200, [
            "id": id, "version": e.header.version, "alignment": e.header.alignment, "data_offset": e.header.dataOffset,
            "file_bytes": e.index.fileBytes, "tensor_count": e.header.tensors.count, "metadata": values,
        ])
    }

    private func tensors(_ request: Request, id: String) async throws(StoreError) -> Response {
        let e = try await catalog.entry(id)
        let tag = "\"\(e.index.etag)\""
        if Self.matches(request.headers[.ifNoneMatch], tag) {
            return Response(status: .notModified, headers: [.eTag: tag])
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(e.index) else { throw .io("cannot encode the index of \(id)") }
        return Response(status: .ok, headers: [.contentType: "application/json", .eTag: tag],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func file(_ request: Request, id: String, head: Bool) async throws(StoreError) -> Response {
        let e = try await catalog.entry(id)
        let size = e.index.fileBytes
        let tag = "\"\(e.index.etag)\""
        var headers: HTTPFields = [.eTag: tag, .acceptRanges: "bytes", .contentType: "application/octet-stream"]
        if Self.matches(request.headers[.ifNoneMatch], tag) {
            return Response(status: .notModified, headers: headers)
        }
        var range = 0 ..< size
        var status = HTTPResponse.Status.ok
        if let spec = request.headers[.range] {
            switch ByteRangeRequest.parse(spec, size: size) {
            case let .single(r):
                range = r
                status = .partialContent
                headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(size)"
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            case .ignored:
                break
            }
        }
        headers[.contentLength] = "\(range.count)"
        if head { return Response(status: status, headers: headers) }
        let span = range
        let path = e.path
        let corrupt = faults.takeCorruption()
        let cut = faults.takeCut()
        let logger = self.logger
        let body = ResponseBody(contentLength: span.count) { [self] writer in
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw StoreError.io("cannot open \(path) (errno \(errno))") }
            defer { close(fd) }
            var position = span.lowerBound
            var corruptPending = corrupt
            while position < span.upperBound {
                let want = min(Self.chunkBytes, span.upperBound - position)
                let at = position
                var buffer = try await NIOThreadPool.singleton.runIfActive { () throws -> ByteBuffer in
                    var buffer = ByteBufferAllocator().buffer(capacity: want)
                    let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { raw -> Int in
                        guard let base = raw.baseAddress else { return 0 }
                        var done = 0
                        while done < want {
                            let r = pread(fd, base + done, want - done, off_t(at + done))
                            if r < 0, errno == EINTR { continue }
                            guard r > 0 else { break }
                            done += r
                        }
                        return done
                    }
                    guard n == want else { throw StoreError.io("\(path): short read at \(at + n)") }
                    return buffer
                }
                if corruptPending, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) {
                    buffer.setInteger(first ^ 0xFF, at: buffer.readerIndex)
                    corruptPending = false
                    logger.warning("fault drill: corrupted one byte", metadata: ["model": "\(id)", "offset": "\(at)"])
                }
                if let cut, position - span.lowerBound + buffer.readableBytes > cut {
                    let keep = max(0, cut - (position - span.lowerBound))
                    if keep > 0, let slice = buffer.getSlice(at: buffer.readerIndex, length: keep) {
                        try await writer.write(slice)
                        sent.withLock { $0[id, default: 0] += keep }
                    }
                    logger.warning("fault drill: cutting the response", metadata: ["model": "\(id)", "after": "\(cut)"])
                    throw StoreError.io("fault drill: response cut after \(cut) bytes")
                }
                let count = buffer.readableBytes
                try await writer.write(buffer)
                sent.withLock { $0[id, default: 0] += count }
                position += count
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// llama.cpp's `general.file_type` numbers (enum llama_ftype) for the common quantizations.
    static let fileTypeNames: [Int: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M",
        13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
    ]

    // MARK: Plumbing

    private func answer(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as StoreError {
            switch error {
            case .notFound: return Self.json(404, ["error": ["message": error.description, "type": "not_found"]])
            default:
                logger.error("store error: \(error)")
                return Self.json(500, ["error": ["message": error.description, "type": "server_error"]])
            }
        } catch {
            logger.error("store error: \(error)")
            return Self.json(500, ["error": ["message": "\(error)", "type": "server_error"]])
        }
    }

    static func json(_ status: Int, _ value: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: .init(code: status), headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `If-None-Match` against a strong tag: a list of tags, or `*`.
    static func matches(_ header: String?, _ tag: String) -> Bool {
        guard let header else { return false }
        return header.split(separator: ",").contains { part in
            let t = part.trimmingCharacters(in: .whitespaces)
            return t == "*" || t == tag || t == "W/" + tag
        }
    }
}

/// A `Range` request header, as RFC 9110 §14 reads it for one range of bytes.
public enum ByteRangeRequest: Equatable, Sendable {
    case single(Range<Int>)
    /// Syntactically fine, but no byte of the file is in it: 416.
    case unsatisfiable
    /// Not a bytes range this server answers with 206 (another unit, several ranges, bad
    /// syntax): the whole file is sent with 200, which the RFC allows.
    case ignored

    public static func parse(_ header: String, size: Int) -> ByteRangeRequest {
        let h = header.trimmingCharacters(in: .whitespaces)
        guard h.lowercased().hasPrefix("bytes=") else { return .ignored }
        let spec = h.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .ignored }
        let first = spec[..<dash].trimmingCharacters(in: .whitespaces)
        let last = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        guard first.count <= 19, last.count <= 19 else { return .ignored }
        if first.isEmpty {
            // A suffix: the last N bytes.
            guard let n = Int(last), n >= 0 else { return .ignored }
            guard n > 0, size > 0 else { return .unsatisfiable }
            return .single(max(0, size - n) ..< size)
        }
        guard let a = Int(first), a >= 0 else { return .ignored }
        let b: Int
        if last.isEmpty {
            b = size - 1
        } else {
            guard let v = Int(last), v >= a else { return .ignored }
            b = min(v, size - 1)
        }
        guard a < size else { return .unsatisfiable }
        return .single(a ..< b + 1)
    }
}
