#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import Crypto
import Foundation
import GGUF
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// A model a node reads from a store (`http://STORE/v1/store/models/ID`): the tensor index,
/// the header, and then only the tensors its layers need, each checked against its SHA-256
/// and kept in the node's `TensorCache`. The node then runs from mapped cache files, the same
/// mmap path as a local file.
public final class StoreModelSource: Sendable {
    /// Bytes received from the store, by kind.
    public struct Counters: Sendable, Equatable {
        public var indexBytes = 0
        public var headerBytes = 0
        /// Bytes of tensor ranges received (tensor bytes plus any alignment padding between
        /// tensors fetched in one request, plus bytes of attempts that failed).
        public var tensorBytes = 0
        public var requests = 0
        public var refetches = 0
        public var total: Int { indexBytes + headerBytes + tensorBytes }
    }

    /// How tensor ranges travel.
    public enum Transport: Sendable {
        /// Plain HTTP through `RangeDownload`, anything else through the HTTP client.
        case automatic
        /// Always the HTTP client's streaming body (HTTPS takes this path; tests use it to
        /// drill both).
        case httpClient
    }

    public let url: String
    public let cache: TensorCache
    private let transport: Transport
    private let client: HTTPClient
    private let logger: Logger
    private let showProgress: Bool
    private let counters = Mutex(Counters())
    /// Range requests in flight at once.
    public static let parallelRequests = 4
    /// The most bytes one range request asks for (so a cut connection loses little, and a
    /// whole-model pull runs several requests at once).
    public static let maximumRequestBytes = 32 << 20
    /// Padding between two wanted tensors that is fetched rather than split into two requests.
    public static let maximumGapBytes = 256 << 10
    /// The largest header (metadata and tensor index) a node accepts from a store: a
    /// vocabulary of a million tokens takes tens of MiB.
    public static let maximumHeaderBytes = 1 << 30
    /// Failed checks of one tensor before the pull gives up.
    public static let maximumAttempts = 3

    /// `url` is the model's address on the store: `http://HOST:PORT/v1/store/models/ID`.
    public init(url: String, cache: TensorCache, logger: Logger, showProgress: Bool = false,
                transport: Transport = .automatic) throws(StoreError) {
        var u = url
        while u.hasSuffix("/") { u.removeLast() }
        guard u.hasPrefix("http://") || u.hasPrefix("https://"), u.contains("/v1/store/models/") else {
            throw .configuration("--model-source must look like http://HOST:PORT/v1/store/models/ID, not \(url)")
        }
        self.url = u
        self.cache = cache
        self.logger = logger
        self.showProgress = showProgress
        self.transport = transport
        client = HTTPClient.shared
    }

    /// Resolves a store address to one model's URL: a model URL stays as it is; a store root
    /// (`http://HOST:PORT`) names its only model, or the one called `model`.
    public static func resolve(_ address: String, model: String? = nil) async throws(StoreError) -> String {
        var root = address
        while root.hasSuffix("/") { root.removeLast() }
        if root.contains("/v1/store/models/") { return root }
        let listURL = root + "/v1/store/models"
        let data = try await get(listURL, limit: 16 << 20, client: .shared).body
        guard let object = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any],
              let list = object["data"] as? [[String: Any]] else { throw .badIndex("\(listURL) did not list models") }
        let ids = list.compactMap { $0["id"] as? String }
        if let model {
            guard ids.contains(model) else { throw .notFound("the store at \(root) has no model \(model) (it has \(ids.joined(separator: ", ")))") }
            return root + "/v1/store/models/" + model
        }
        guard ids.count == 1, let only = ids.first else {
            throw .configuration(ids.isEmpty ? "the store at \(root) holds no models"
                : "the store at \(root) holds several models (\(ids.joined(separator: ", "))); name one")
        }
        return root + "/v1/store/models/" + only
    }

    public var received: Counters { counters.withLock { $0 } }

    // MARK: Index and header

    /// The tensor index, revalidated against the cached copy with `If-None-Match`: a second
    /// start whose model did not change receives no index bytes.
    public func index() async throws(StoreError) -> TensorIndex {
        let key = Self.cacheKey(url)
        let cachedPath = cache.indexPath(key + ".json")
        var cached: TensorIndex?
        if let data = FileManager.default.contents(atPath: cachedPath), data.count <= TensorIndex.maximumJSONBytes {
            cached = try? JSONDecoder().decode(TensorIndex.self, from: data)
        }
        var headers = HTTPHeaders()
        if let cached { headers.add(name: "If-None-Match", value: "\"\(cached.etag)\"") }
        let reply = try await Self.get(url + "/tensors", headers: headers, limit: TensorIndex.maximumJSONBytes, client: client,
                                       accept: [200, 304])
        counters.withLock { $0.requests += 1; $0.indexBytes += reply.body.count }
        if reply.status == 304, let cached { return cached }
        let index: TensorIndex
        do { index = try JSONDecoder().decode(TensorIndex.self, from: Data(reply.body)) } catch {
            throw .badIndex("\(url)/tensors: \(error)")
        }
        guard index.fileBytes >= index.dataOffset, index.dataOffset > 0, index.dataOffset <= Self.maximumHeaderBytes,
              index.tensors.count <= 1 << 20 else {
            throw .badIndex("\(url)/tensors: sizes out of range")
        }
        let temporary = cachedPath + ".tmp-\(getpid())"
        if FileManager.default.createFile(atPath: temporary, contents: Data(reply.body)) { rename(temporary, cachedPath) }
        return index
    }

    /// The file's header (metadata and tensor index), checked against the index's SHA-256 and
    /// kept in the cache, parsed as a GGUF file with no tensor bytes.
    public func header(_ index: TensorIndex) async throws(StoreError) -> GGUFFile {
        try Self.parseHeader(try await headerBytes(index), index: index, url: url)
    }

    /// The header's bytes, from the cache or the store, checked against the index's SHA-256
    /// and kept in the cache (a pull that only fills the cache need not parse them).
    public func headerBytes(_ index: TensorIndex) async throws(StoreError) -> [UInt8] {
        let path = cache.indexPath(index.etag + ".header")
        var bytes: [UInt8]
        if let data = FileManager.default.contents(atPath: path), data.count == index.dataOffset,
           TensorIndex.hex(SHA256.hash(data: data)) == index.headerSHA256 {
            bytes = [UInt8](data)
        } else {
            var headers = HTTPHeaders()
            headers.add(name: "Range", value: "bytes=0-\(index.dataOffset - 1)")
            let reply = try await Self.get(url + "/file", headers: headers, limit: index.dataOffset, client: client, accept: [206])
            counters.withLock { $0.requests += 1; $0.headerBytes += reply.body.count }
            bytes = reply.body
            guard bytes.count == index.dataOffset, TensorIndex.hex(SHA256.hash(data: bytes)) == index.headerSHA256 else {
                throw .badIndex("the header of \(url) does not match its SHA-256")
            }
            let temporary = path + ".tmp-\(getpid())"
            if FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) { rename(temporary, path) }
        }
        return bytes
    }

    /// A store's model without a cache (the hub's view): its index and its header, verified.
    public static func describe(_ url: String) async throws(StoreError) -> (index: TensorIndex, header: GGUFFile) {
        let reply = try await get(url + "/tensors", limit: TensorIndex.maximumJSONBytes, client: .shared)
        let index: TensorIndex
        do { index = try JSONDecoder().decode(TensorIndex.self, from: Data(reply.body)) } catch {
            throw .badIndex("\(url)/tensors: \(error)")
        }
        guard index.dataOffset > 0, index.dataOffset <= index.fileBytes, index.dataOffset <= maximumHeaderBytes else {
            throw .badIndex("\(url)/tensors: header size \(index.dataOffset) out of range")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Range", value: "bytes=0-\(index.dataOffset - 1)")
        let header = try await get(url + "/file", headers: headers, limit: index.dataOffset, client: .shared, accept: [206]).body
        guard header.count == index.dataOffset, TensorIndex.hex(SHA256.hash(data: header)) == index.headerSHA256 else {
            throw .badIndex("the header of \(url) does not match its SHA-256")
        }
        return (index, try parseHeader(header, index: index, url: url))
    }

    static func parseHeader(_ bytes: [UInt8], index: TensorIndex, url: String) throws(StoreError) -> GGUFFile {
        let file: GGUFFile
        do { file = try GGUFFile(storage: ByteStorage.copy(bytes), fileSize: index.fileBytes) } catch {
            throw .badModel("\(url): \(error)")
        }
        // The header's own index must be the store's index.
        guard file.tensors.count == index.tensors.count else { throw .badIndex("the header lists \(file.tensors.count) tensors, the index \(index.tensors.count)") }
        for t in index.tensors {
            guard let h = file.tensor(named: t.name), h.fileOffset == t.offset, h.byteCount == t.size else {
                throw .badIndex("tensor \(t.name) differs between the header and the index")
            }
        }
        return file
    }

    // MARK: Tensors

    /// A file with the bytes of `names` attached from the cache, fetching those it lacks.
    /// `base` is the index-only file (from `header` or `TensorIndex.file(metadata:)`).
    public func load(_ names: [String], base: GGUFFile, index: TensorIndex) async throws(StoreError) -> GGUFFile {
        let byName = Dictionary(index.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var wanted: [TensorIndex.Tensor] = []
        for name in names {
            guard let t = byName[name] else { throw .badIndex("the index has no tensor \(name)") }
            wanted.append(t)
        }
        try await fetch(wanted, etag: index.etag)
        var data: [String: ByteStorage] = [:]
        for t in wanted { data[t.name] = try cache.map(t.sha256) }
        guard let digest = index.modelDigestBytes, digest.count == 32 else { throw .badIndex("bad model digest") }
        do { return try base.assembled(tensorData: data, digest: digest) } catch { throw .badIndex("\(error)") }
    }

    /// Makes the tensors `names` verified blobs of the cache, fetching those it lacks, without
    /// mapping or assembling them (what `pangalactic pull` does to fill a cache ahead of time).
    public func prefetch(_ names: [String], index: TensorIndex) async throws(StoreError) {
        let byName = Dictionary(index.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var wanted: [TensorIndex.Tensor] = []
        for name in names {
            guard let t = byName[name] else { throw .badIndex("the index has no tensor \(name)") }
            wanted.append(t)
        }
        try await fetch(wanted, etag: index.etag)
    }

    /// One planned range request: a byte range of the file and the tensors (or the rest of
    /// partly received ones) inside it.
    struct RangePlan {
        struct Piece {
            let tensor: TensorIndex.Tensor
            /// Absolute file range still wanted (the tensor's tail when part of it is held).
            let range: Range<Int>
        }

        var range: Range<Int>
        var pieces: [Piece]
    }

    static func plan(_ pieces: [RangePlan.Piece]) -> [RangePlan] {
        var plans: [RangePlan] = []
        for piece in pieces.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
            if var last = plans.last, piece.range.lowerBound >= last.range.upperBound,
               piece.range.lowerBound - last.range.upperBound <= maximumGapBytes,
               piece.range.upperBound - last.range.lowerBound <= maximumRequestBytes {
                last.range = last.range.lowerBound ..< piece.range.upperBound
                last.pieces.append(piece)
                plans[plans.count - 1] = last
            } else {
                plans.append(RangePlan(range: piece.range, pieces: [piece]))
            }
        }
        return plans
    }

    /// Makes every tensor of `wanted` a verified blob of the cache: requests only the ones
    /// missing (and of a partial one only its missing tail), several ranges at once, checking
    /// each tensor's SHA-256 as its last byte arrives. A corrupted tensor is fetched again, up
    /// to `maximumAttempts` times; a broken connection resumes where it stopped.
    func fetch(_ wanted: [TensorIndex.Tensor], etag: String) async throws(StoreError) {
        var unique: [String: TensorIndex.Tensor] = [:]
        for t in wanted where unique[t.sha256] == nil { unique[t.sha256] = t }
        let keep = Set(unique.keys)
        var failures: [String: Int] = [:]
        var stalls = 0
        let total = unique.values.filter { !cache.has($0.sha256, size: $0.size) }.reduce(0) { $0 + $1.size }
        let progress = PullProgress(total: total, terminal: showProgress, logger: logger)
        defer { progress.finish() }
        while true {
            let missing = unique.values.filter { !cache.has($0.sha256, size: $0.size) }
            if missing.isEmpty { return }
            let pieces = missing.map { t in
                RangePlan.Piece(tensor: t, range: (t.offset + min(cache.partialBytes(t.sha256), t.size)) ..< (t.offset + t.size))
            }
            cache.makeRoom(for: pieces.reduce(0) { $0 + $1.range.count }, keep: keep)
            // Longest first: a large tensor is one request (its hash runs in order), and
            // started last it would finish alone while the other loops sit idle.
            let plans = Self.plan(pieces).sorted { $0.range.count > $1.range.count }
            let before = received.tensorBytes
            var outcome: [PieceOutcome] = []
            var networkError: StoreError?
            await withTaskGroup(of: Result<[PieceOutcome], StoreError>.self) { group in
                var next = 0
                func launch() {
                    guard next < plans.count else { return }
                    let plan = plans[next]
                    next += 1
                    group.addTask { [self] in
                        do throws(StoreError) { return .success(try await run(plan, etag: etag, progress: progress)) } catch { return .failure(error) }
                    }
                }
                for _ in 0 ..< Self.parallelRequests { launch() }
                for await result in group {
                    switch result {
                    case let .success(list): outcome += list
                    case let .failure(error): networkError = networkError ?? error
                    }
                    launch()
                }
            }
            for case let .corrupt(t) in outcome {
                failures[t.sha256, default: 0] += 1
                counters.withLock { $0.refetches += 1 }
                logger.warning("tensor \(t.name) failed its SHA-256 check; fetching it again",
                               metadata: ["attempt": "\(failures[t.sha256] ?? 0)"])
                if (failures[t.sha256] ?? 0) >= Self.maximumAttempts { throw .corrupt(tensor: t.name, attempts: Self.maximumAttempts) }
            }
            if let networkError {
                if case .badIndex = networkError { throw networkError }
                // A broken transfer keeps what it wrote; give up only when attempts stop making progress.
                stalls = received.tensorBytes > before ? 0 : stalls + 1
                guard stalls < Self.maximumAttempts else { throw networkError }
                logger.warning("pull interrupted (\(networkError)); resuming")
                try? await Task.sleep(for: .milliseconds(200 * (stalls + 1)))
            }
            if Task.isCancelled { throw .io("the pull was cancelled") }
        }
    }

    enum PieceOutcome: Sendable {
        case stored(TensorIndex.Tensor)
        case corrupt(TensorIndex.Tensor)
    }

    /// Streams one range request into the pieces' partial files, verifying each tensor whose
    /// last byte arrives. Plain HTTP goes through `RangeDownload` (large reads, processed on
    /// the event loop that reads the socket); HTTPS through the HTTP client.
    private func run(_ plan: RangePlan, etag: String, progress: PullProgress) async throws(StoreError) -> [PieceOutcome] {
        counters.withLock { $0.requests += 1 }
        let onBytes: @Sendable (Int) -> Void = { [self] n in
            counters.withLock { $0.tensorBytes += n }
            progress.add(n)
        }
        if transport == .automatic, let target = RangeDownload.Target(url: url + "/file") {
            return try await RangeDownload.run(target, plan: plan, cache: cache, etag: etag, onBytes: onBytes)
        }
        var request = HTTPClientRequest(url: url + "/file")
        request.headers.add(name: "Range", value: "bytes=\(plan.range.lowerBound)-\(plan.range.upperBound - 1)")
        var sink = RangeSink(plan: plan, cache: cache)
        defer { sink.abandon() }
        do {
            let response = try await client.execute(request, timeout: .seconds(600))
            try sink.begin(status: Int(response.status.code), etag: response.headers.first(name: "ETag"), expected: etag, url: url + "/file")
            for try await buffer in response.body {
                onBytes(buffer.readableBytes)
                try buffer.withUnsafeReadableBytes { (raw: UnsafeRawBufferPointer) throws(StoreError) in try sink.consume(raw) }
                if sink.isComplete { break }
            }
            return try sink.end(url: url + "/file")
        } catch let error as StoreError {
            throw error
        } catch {
            throw .unreachable(url: url + "/file", reason: "\(error)")
        }
    }

    // MARK: HTTP

    static func get(_ url: String, headers: HTTPHeaders = [:], limit: Int, client: HTTPClient,
                    accept: Set<UInt> = [200]) async throws(StoreError) -> (status: UInt, body: [UInt8]) {
        var request = HTTPClientRequest(url: url)
        request.headers = headers
        do {
            let response = try await client.execute(request, timeout: .seconds(60))
            guard accept.contains(response.status.code) else {
                if response.status == .notFound { throw StoreError.notFound(url) }
                throw StoreError.http(url: url, status: Int(response.status.code))
            }
            let body = try await response.body.collect(upTo: limit)
            return (response.status.code, Array(buffer: body))
        } catch let error as StoreError {
            throw error
        } catch {
            throw .unreachable(url: url, reason: "\(error)")
        }
    }

    /// A file name for a URL (the index cache key).
    static func cacheKey(_ url: String) -> String {
        TensorIndex.hex(SHA256.hash(data: Array(url.utf8))).prefix(32).description
    }
}

/// One range response on its way into the cache: routes the bytes to the pieces' partial
/// files in order, skipping padding between them, and verifies each tensor as its last byte
/// arrives. The same for every transport.
struct RangeSink {
    let plan: StoreModelSource.RangePlan
    let cache: TensorCache
    /// The file offset of the next byte to arrive.
    private(set) var position: Int
    private var pieceIndex = 0
    private var writer: PieceWriter?
    private(set) var outcomes: [StoreModelSource.PieceOutcome] = []

    init(plan: StoreModelSource.RangePlan, cache: TensorCache) {
        self.plan = plan
        self.cache = cache
        position = plan.range.lowerBound
    }

    /// Every piece has arrived.
    var isComplete: Bool { pieceIndex >= plan.pieces.count }

    /// Checks the response's status and ETag. A server that ignores Range answers 200 with
    /// the whole file from byte 0.
    mutating func begin(status: Int, etag: String?, expected: String, url: String) throws(StoreError) {
        guard status == 206 || status == 200 else { throw .http(url: url, status: status) }
        if let etag, etag != "\"\(expected)\"" {
            throw .badIndex("the model changed on the store during the pull (ETag \(etag), expected \"\(expected)\")")
        }
        if status == 200 { position = 0 }
    }

    mutating func consume(_ raw: UnsafeRawBufferPointer) throws(StoreError) {
        var at = 0
        while at < raw.count, pieceIndex < plan.pieces.count {
            let piece = plan.pieces[pieceIndex]
            let absolute = position + at
            if absolute < piece.range.lowerBound {
                at += min(raw.count - at, piece.range.lowerBound - absolute)
                continue
            }
            if writer == nil { writer = try PieceWriter(cache: cache, tensor: piece.tensor) }
            let n = min(raw.count - at, piece.range.upperBound - absolute)
            try writer?.write(UnsafeRawBufferPointer(rebasing: raw[at ..< at + n]))
            at += n
            if absolute + n == piece.range.upperBound {
                if let w = writer {
                    outcomes.append(try w.finish() ? .stored(piece.tensor) : .corrupt(piece.tensor))
                }
                writer = nil
                pieceIndex += 1
            }
        }
        position += raw.count
    }

    /// The outcomes, or the error of a response that ended early.
    func end(url: String) throws(StoreError) -> [StoreModelSource.PieceOutcome] {
        guard isComplete else {
            throw .unreachable(url: url, reason: "the response ended after \(position - plan.range.lowerBound) of \(plan.range.count) bytes")
        }
        return outcomes
    }

    /// Closes an unfinished piece's file, keeping what was written for the next attempt.
    mutating func abandon() {
        writer?.abandon()
        writer = nil
    }
}

/// Appends one tensor's bytes to its partial file while hashing them; `finish` checks the
/// SHA-256 and moves a good blob into the cache (a bad one is deleted, to be fetched again).
fileprivate struct PieceWriter {
    let cache: TensorCache
    let tensor: TensorIndex.Tensor
    var fd: Int32
    var sha = SHA256()
    var written: Int

    init(cache: TensorCache, tensor: TensorIndex.Tensor) throws(StoreError) {
        self.cache = cache
        self.tensor = tensor
        let path = cache.partialPath(tensor.sha256)
        let file = open(path, O_RDWR | O_CREAT, 0o644)
        guard file >= 0 else { throw .io("cannot open \(path) (errno \(errno))") }
        // Bytes held from an earlier attempt enter the hash first.
        let held = min(cache.partialBytes(tensor.sha256), tensor.size)
        var hasher = SHA256()
        var buffer = held > 0 ? [UInt8](repeating: 0, count: 1 << 20) : []
        var at = 0
        while at < held {
            let n = buffer.withUnsafeMutableBytes { b in pread(file, b.baseAddress, min(b.count, held - at), off_t(at)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0 ..< n])) }
            at += n
        }
        _ = ftruncate(file, off_t(at))
        _ = lseek(file, off_t(at), SEEK_SET)
        fd = file
        sha = hasher
        written = at
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        sha.update(bufferPointer: bytes)
        var done = 0
        while done < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let n = Glibc.write(fd, base + done, bytes.count - done)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .io("cannot write to the cache (errno \(errno))") }
            done += n
        }
        written += bytes.count
    }

    /// Closes the file; true when the bytes matched and are now a blob.
    func finish() throws(StoreError) -> Bool {
        close(fd)
        guard written == tensor.size, TensorIndex.hex(sha.finalize()) == tensor.sha256 else {
            unlink(cache.partialPath(tensor.sha256))
            return false
        }
        try cache.promote(tensor.sha256)
        return true
    }

    /// Closes the file, keeping what was written for the next attempt.
    func abandon() { close(fd) }
}

/// Pull progress: a redrawn line on a terminal, a log line every few seconds otherwise.
final class PullProgress: Sendable {
    private let total: Int
    private let terminal: Bool
    private let logger: Logger
    private let state = Mutex<(done: Int, start: Double, lastShown: Double)>((0, 0, 0))

    init(total: Int, terminal: Bool, logger: Logger) {
        self.total = total
        self.terminal = terminal
        self.logger = logger
        let now = Self.now()
        state.withLock { $0 = (0, now, now) }
        if total > 0 { logger.info("pulling \(Self.megabytes(total)) of tensors") }
    }

    func add(_ bytes: Int) {
        let now = Self.now()
        let line: String? = state.withLock { s in
            s.done += bytes
            guard now - s.lastShown >= (terminal ? 0.1 : 2) else { return nil }
            s.lastShown = now
            return describe(done: s.done, seconds: now - s.start)
        }
        guard let line else { return }
        if terminal {
            FileHandle.standardError.write(Data(("\r" + line + "   ").utf8))
        } else {
            logger.info("\(line)")
        }
    }

    func finish() {
        guard total > 0 else { return }
        let (done, start) = state.withLock { ($0.done, $0.start) }
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        logger.info("pulled \(Self.megabytes(done)) in \(String(format: "%.1f", Self.now() - start)) s")
    }

    private func describe(done: Int, seconds: Double) -> String {
        let rate = Double(done) / max(seconds, 1e-3)
        let eta = rate > 0 ? Double(max(0, total - done)) / rate : 0
        return "pulling \(Self.megabytes(done)) / \(Self.megabytes(total)), \(Self.megabytes(Int(rate)))/s, ETA \(Int(eta)) s"
    }

    static func megabytes(_ n: Int) -> String { String(format: "%.1f MB", Double(n) / 1e6) }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
