#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import Crypto
import Foundation
import GGUF
import ModelStore
import Synchronization
import Testing
import TestSupport

/// A store serving one tiny model from a temporary folder, on a free loopback port.
final class StoreFixture: @unchecked Sendable {
    let folder: String
    let modelPath: String
    let bytes: [UInt8]
    let server: StoreServer
    private var task: Task<Void, Error>?
    private(set) var port = 0
    static let id = "tiny"

    static var spec: TinyModelSpec {
        var s = TinyModelSpec()
        s.layers = 6
        s.embedding = 128
        s.feedForward = 256
        s.vocabulary = 96
        s.weightType = .q8_0
        s.seed = 9
        return s
    }

    init() async throws {
        folder = NSTemporaryDirectory() + "pangalactic-store-\(UInt64.random(in: 1 ... .max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        modelPath = folder + "/\(Self.id).gguf"
        bytes = try TinyModel.writer(Self.spec).serialize()
        FileManager.default.createFile(atPath: modelPath, contents: Data(bytes))
        server = StoreServer(directory: folder, host: "127.0.0.1", port: 0, logger: quietLogger)
        let bound = Mutex<Int?>(nil)
        let server = self.server
        task = Task { try await server.run { p in bound.withLock { $0 = p } } }
        try await waitFor("the store to listen", seconds: 20) { bound.withLock { $0 } != nil }
        port = bound.withLock { $0 } ?? 0
    }

    var url: String { "http://127.0.0.1:\(port)/v1/store/models/\(Self.id)" }

    func cache(limit: Int? = nil, folder name: String = "cache") throws -> TensorCache {
        try TensorCache(directory: folder + "/" + name, limitBytes: limit, logger: quietLogger)
    }

    func source(_ cache: TensorCache, transport: StoreModelSource.Transport = .automatic) throws -> StoreModelSource {
        try StoreModelSource(url: url, cache: cache, logger: quietLogger, transport: transport)
    }

    /// The tensors of `layers` (blocks only) in the index.
    func layerTensors(_ index: TensorIndex, _ layers: Range<Int>) -> [TensorIndex.Tensor] {
        index.tensors.filter { t in
            guard t.name.hasPrefix("blk."), let n = Int(t.name.dropFirst(4).prefix { $0 != "." }) else { return false }
            return layers.contains(n)
        }
    }

    /// Bytes of the distinct contents among `tensors` (the cache stores equal tensors once).
    static func distinctBytes(_ tensors: [TensorIndex.Tensor]) -> Int {
        Dictionary(tensors.map { ($0.sha256, $0.size) }, uniquingKeysWith: { a, _ in a }).values.reduce(0, +)
    }

    func stop() {
        task?.cancel()
        try? FileManager.default.removeItem(atPath: folder)
    }
}

func hex(_ d: some Sequence<UInt8>) -> String { d.map { String(format: "%02x", $0) }.joined() }

@Suite(.serialized) struct ModelStoreTests {
    @Test func rangeHeadersAreReadAsRFC9110Says() {
        #expect(ByteRangeRequest.parse("bytes=0-99", size: 1000) == .single(0 ..< 100))
        #expect(ByteRangeRequest.parse("bytes=990-", size: 1000) == .single(990 ..< 1000))
        #expect(ByteRangeRequest.parse("bytes=-10", size: 1000) == .single(990 ..< 1000))
        #expect(ByteRangeRequest.parse("bytes=-5000", size: 1000) == .single(0 ..< 1000))
        #expect(ByteRangeRequest.parse("bytes=500-5000", size: 1000) == .single(500 ..< 1000))
        #expect(ByteRangeRequest.parse("bytes=1000-", size: 1000) == .unsatisfiable)
        #expect(ByteRangeRequest.parse("bytes=-0", size: 1000) == .unsatisfiable)
        #expect(ByteRangeRequest.parse("bytes=5-2", size: 1000) == .ignored)
        #expect(ByteRangeRequest.parse("bytes=0-1,5-9", size: 1000) == .ignored)
        #expect(ByteRangeRequest.parse("items=0-1", size: 1000) == .ignored)
        #expect(ByteRangeRequest.parse("bytes=99999999999999999999-", size: 1000) == .ignored)
        #expect(ByteRangeRequest.parse("bytes=x-y", size: 1000) == .ignored)
    }

    @Test func theIndexHashesEveryTensorAndIsCachedBesideTheFile() async throws {
        let f = try await StoreFixture()
        defer { f.stop() }
        let entry = try await f.server.catalog.entry(StoreFixture.id)
        let file = try GGUFFile(bytes: f.bytes)
        #expect(entry.index.tensors.count == file.tensors.count)
        #expect(entry.index.etag == hex(SHA256.hash(data: f.bytes)))
        #expect(entry.index.headerSHA256 == hex(SHA256.hash(data: f.bytes[..<file.dataOffset])))
        #expect(entry.index.modelDigest == hex(try file.modelDigest()))
        for t in entry.index.tensors {
            let info = try #require(file.tensor(named: t.name))
            #expect(t.offset == info.fileOffset && t.size == info.byteCount)
            #expect(t.sha256 == hex(SHA256.hash(data: f.bytes[info.fileOffset ..< info.fileOffset + info.byteCount])), "\(t.name)")
        }
        #expect(FileManager.default.fileExists(atPath: f.modelPath + ".tensors.json"))
        // A changed file is indexed again.
        var other = StoreFixture.spec
        other.seed = 10
        let changed = try TinyModel.writer(other).serialize()
        FileManager.default.createFile(atPath: f.modelPath, contents: Data(changed))
        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, f.modelPath, &times, 0)
        let again = try await f.server.catalog.entry(StoreFixture.id)
        #expect(again.index.etag == hex(SHA256.hash(data: changed)))
    }

    @Test func theHTTPAPIServesRangesTagsAndIndexes() async throws {
        let f = try await StoreFixture()
        defer { f.stop() }
        let client = HTTPClient.shared
        func get(_ path: String, _ headers: [(String, String)] = []) async throws -> (status: UInt, headers: [String: String], body: [UInt8]) {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(f.port)" + path)
            for (k, v) in headers { request.headers.add(name: k, value: v) }
            let response = try await client.execute(request, timeout: .seconds(10))
            var h: [String: String] = [:]
            for (k, v) in response.headers { h[k.lowercased()] = v }
            return (response.status.code, h, Array(buffer: try await response.body.collect(upTo: 1 << 26)))
        }
        let list = try await get("/v1/store/models")
        #expect(list.status == 200)
        let models = try #require((try JSONSerialization.jsonObject(with: Data(list.body)) as? [String: Any])?["data"] as? [[String: Any]])
        #expect(models.count == 1)
        #expect(models[0]["id"] as? String == StoreFixture.id)
        #expect(models[0]["layers"] as? Int == 6)
        #expect(models[0]["size"] as? Int == f.bytes.count)
        #expect(models[0]["architecture"] as? String == "llama")

        let meta = try await get("/v1/store/models/tiny/metadata")
        let metaJSON = try #require(try JSONSerialization.jsonObject(with: Data(meta.body)) as? [String: Any])
        #expect((metaJSON["metadata"] as? [String: Any])?["llama.block_count"] as? Int == 6)

        let tensors = try await get("/v1/store/models/tiny/tensors")
        #expect(tensors.status == 200)
        let tag = try #require(tensors.headers["etag"])
        #expect(try await get("/v1/store/models/tiny/tensors", [("If-None-Match", tag)]).status == 304)

        let part = try await get("/v1/store/models/tiny/file", [("Range", "bytes=100-199")])
        #expect(part.status == 206)
        #expect(part.body == Array(f.bytes[100 ..< 200]))
        #expect(part.headers["content-range"] == "bytes 100-199/\(f.bytes.count)")
        #expect(part.headers["etag"] == tag)
        let tail = try await get("/v1/store/models/tiny/file", [("Range", "bytes=-16")])
        #expect(tail.body == Array(f.bytes.suffix(16)))
        let whole = try await get("/v1/store/models/tiny/file")
        #expect(whole.status == 200 && whole.body == f.bytes)
        let beyond = try await get("/v1/store/models/tiny/file", [("Range", "bytes=\(f.bytes.count)-")])
        #expect(beyond.status == 416)
        #expect(beyond.headers["content-range"] == "bytes */\(f.bytes.count)")
        #expect(try await get("/v1/store/models/tiny/file", [("If-None-Match", tag)]).status == 304)
        #expect(try await get("/v1/store/models/nothing/file").status == 404)
        #expect(try await get("/v1/store/models/..%2Ftiny/tensors").status == 404)
    }

    @Test func aNodePullsOnlyItsLayersAndRunsFromTheVerifiedCache() async throws {
        let f = try await StoreFixture()
        defer { f.stop() }
        let source = try f.source(f.cache())
        let index = try await source.index()
        let header = try await source.header(index)
        let wanted = f.layerTensors(index, 2 ..< 4)
        let file = try await source.load(wanted.map(\.name), base: header, index: index)
        // Exactly the wanted tensors' bytes travelled (they are adjacent in the file).
        #expect(source.received.tensorBytes == StoreFixture.distinctBytes(wanted))
        #expect(source.received.headerBytes == header.dataOffset)
        let local = try GGUFFile(bytes: f.bytes)
        for t in wanted {
            let info = try #require(file.tensor(named: t.name))
            #expect(file.hasData(info))
            let got = Array(UnsafeRawBufferPointer(start: file.data(of: info), count: info.byteCount))
            #expect(got == Array(f.bytes[info.fileOffset ..< info.fileOffset + info.byteCount]))
        }
        let outside = try #require(file.tensor(named: "blk.0.attn_q.weight"))
        #expect(!file.hasData(outside))
        #expect(try file.modelDigest() == local.modelDigest())
    }

    /// Both transports: the event-loop download (plain HTTP) and the HTTP client (HTTPS).
    static let transports: [StoreModelSource.Transport] = [.automatic, .httpClient]

    @Test(arguments: transports) func aCorruptedByteIsDetectedAndFetchedAgain(transport: StoreModelSource.Transport) async throws {
        let f = try await StoreFixture()
        defer { f.stop() }
        let source = try f.source(f.cache(), transport: transport)
        let index = try await source.index()
        let header = try await source.header(index)
        let wanted = f.layerTensors(index, 0 ..< 2)
        f.server.faults.corruptNext(1)
        let file = try await source.load(wanted.map(\.name), base: header, index: index)
        #expect(source.received.refetches == 1)
        for t in wanted {
            let info = try #require(file.tensor(named: t.name))
            #expect(Array(UnsafeRawBufferPointer(start: file.data(of: info), count: info.byteCount))
                == Array(f.bytes[info.fileOffset ..< info.fileOffset + info.byteCount]))
        }
        // Corrupted every time: the pull stops with a clear error after three attempts.
        let other = try f.source(f.cache(folder: "cache2"), transport: transport)
        f.server.faults.corruptNext(100)
        await #expect(throws: StoreError.self) { try await other.load(wanted.map(\.name), base: header, index: index) }
        #expect(other.received.refetches == StoreModelSource.maximumAttempts)
        f.server.faults.corruptNext(0)
    }

    @Test(arguments: transports) func aKilledPullResumesWithoutFetchingWhatItHas(transport: StoreModelSource.Transport) async throws {
        let f = try await StoreFixture()
        defer { f.stop() }
        let first = try f.source(f.cache(), transport: transport)
        let index = try await first.index()
        let header = try await first.header(index)
        let wanted = f.layerTensors(index, 0 ..< 6)
        let total = StoreFixture.distinctBytes(wanted)
        // The first response breaks after 40,000 bytes, the next ones at once: the pull gives up.
        f.server.faults.cutNext([40_000, 0, 0, 0, 0, 0])
        await #expect(throws: StoreError.self) { try await first.load(wanted.map(\.name), base: header, index: index) }
        let had = first.received.tensorBytes
        #expect(had > 0 && had < total)
        f.server.faults.cutNext([])
        // A new process on the same cache fetches only the rest.
        let second = try f.source(f.cache(), transport: transport)
        _ = try await second.load(wanted.map(\.name), base: second.header(second.index()), index: index)
        #expect(second.received.tensorBytes == total - had)
        // A third start receives nothing at all: the index is revalidated (304), the header and
        // every tensor are in the cache.
        let third = try f.source(f.cache())
        let again = try await third.index()
        _ = try await third.load(wanted.map(\.name), base: third.header(again), index: again)
        #expect(third.received.total == 0)
    }

    @Test func aReplanPullsOnlyTheMissingTensorsAndTheCacheStaysUnderItsLimit() async throws {
        let f = try await StoreFixture()
        defer { f.stop() }
        let probe = try f.source(f.cache(folder: "probe"))
        let index = try await probe.index()
        let twoLayers = StoreFixture.distinctBytes(f.layerTensors(index, 0 ..< 2))
        let limit = twoLayers + twoLayers / 4
        let cache = try f.cache(limit: limit)
        let source = try f.source(cache)
        let header = try await source.header(index)
        _ = try await source.load(f.layerTensors(index, 0 ..< 2).map(\.name), base: header, index: index)
        let before = source.received.tensorBytes
        // Moved to layers 1..<3: only layer 2 travels.
        let moved = f.layerTensors(index, 1 ..< 3)
        _ = try await source.load(moved.map(\.name), base: header, index: index)
        let held = Set(f.layerTensors(index, 0 ..< 2).map(\.sha256))
        let expected = StoreFixture.distinctBytes(f.layerTensors(index, 2 ..< 3).filter { !held.contains($0.sha256) })
        #expect(source.received.tensorBytes - before == expected)
        #expect(cache.heldBytes <= limit)
        // Then to layers 4..<6: layers 0 and 1 are evicted to stay under the limit.
        _ = try await source.load(f.layerTensors(index, 4 ..< 6).map(\.name), base: header, index: index)
        #expect(cache.heldBytes <= limit)
        let blobs = try FileManager.default.contentsOfDirectory(atPath: cache.directory + "/blobs")
        for t in f.layerTensors(index, 4 ..< 6) { #expect(blobs.contains(t.sha256)) }
    }
}
