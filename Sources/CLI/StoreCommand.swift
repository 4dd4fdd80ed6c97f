import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import ControlPlane
import Foundation
import GGUF
import Logging
import ModelStore

/// `pangalactic store`: serves a folder of GGUF files to nodes, tensor by tensor.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Serve a folder of GGUF models over HTTP, with per-tensor SHA-256 indexes and byte ranges.",
        discussion: """
            Nodes fetch only the tensors of their layers, check them and cache them:
              pangalactic store --dir models --listen 0.0.0.0:8090
              pangalactic hub --store http://STORE:8090
              pangalactic node --join HUB:7000 --listen 0.0.0.0:7101        (no model file needed)
            Endpoints: GET /v1/store/models, /v1/store/models/ID/metadata, /v1/store/models/ID/tensors,
            /v1/store/models/ID/file (Range, ETag, If-None-Match).
            """)

    @Option(help: "Folder of .gguf files; each is served under its file name without .gguf.")
    var dir: String = "models"
    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: String = "127.0.0.1:8090"

    func run() throws {
        LogSetup.bootstrap()
        guard let (host, port) = ControlAddress.parse(listen) else { throw ValidationError("--listen takes HOST:PORT") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--dir \(dir) is not a folder")
        }
        let server = StoreServer(directory: dir, host: host, port: port, logger: Logger(label: "pangalactic.store"))
        let watcher = SignalWatcher([SIGTERM, SIGINT]) { _ in Glibc.exit(0) }
        _ = watcher
        try runBlocking {
            try await server.run { bound in
                Console.error("store: serving \(dir) on http://\(host):\(bound)/v1/store/models")
            }
        }
    }
}

/// `pangalactic pull URL`: what a node does at assignment, by hand: fetch a model's tensors
/// (all of them, or those of some layers) into the tensor cache, and say how fast.
struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Fetch a model's tensors from a store into the tensor cache (all, or some layers').")

    @Argument(help: "The model on a store: http://STORE/v1/store/models/ID (or http://STORE when it holds one model).")
    var url: String
    @Option(help: "Only the tensors of these layers (A..<B), as a node serving them would fetch.")
    var layers: String?
    @Option(name: .customLong("cache-dir"), help: "Tensor cache (default: ~/.cache/pangalactic/store).")
    var cacheDir: String?
    @Option(name: .customLong("cache-limit"), help: "Most bytes the cache may hold (suffixes K, M, G).")
    var cacheLimit: String?
    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        LogSetup.bootstrap()
        var limit: Int?
        if let cacheLimit {
            guard let b = parseByteCount(cacheLimit), b > 0 else { throw ValidationError("--cache-limit takes bytes, e.g. 2G") }
            limit = b
        }
        var range: Range<Int>?
        if let layers {
            guard let r = parseLayerRange(layers) else { throw ValidationError("--layers takes A..<B") }
            range = r
        }
        let logger = Logger(label: "pangalactic.pull")
        let cache = try TensorCache(directory: cacheDir ?? TensorCache.defaultDirectory, limitBytes: limit, logger: logger)
        let address = url
        let wantedLayers = range
        let data = try runBlocking { () async throws -> Data in
            let source = try StoreModelSource(url: try await StoreModelSource.resolve(address), cache: cache, logger: logger,
                                              showProgress: isatty(2) != 0)
            let index = try await source.index()
            _ = try await source.headerBytes(index)
            let chosen = index.tensors.filter { t in
                guard let range = wantedLayers else { return true }
                return GGUFTensorInfo.layerIndex(ofName: t.name).map { range.contains($0) } ?? false
            }
            let names = chosen.map(\.name)
            let wanted = chosen.reduce(0) { $0 + $1.size }
            let start = Date()
            try await source.prefetch(names, index: index)
            let seconds = Date().timeIntervalSince(start)
            let r = source.received
            let report: [String: Any] = [
                "url": source.url, "tensors": names.count, "tensor_bytes": wanted, "received_bytes": r.total,
                "received_tensor_bytes": r.tensorBytes, "requests": r.requests, "refetches": r.refetches,
                "seconds": seconds, "megabytes_per_second": Double(r.tensorBytes) / max(seconds, 1e-6) / 1e6,
            ]
            return try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        }
        let report = (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        if json {
            Console.write(String(decoding: data, as: UTF8.self) + "\n")
        } else {
            Console.write("""
                \(report["tensors"] ?? 0) tensors, \(report["tensor_bytes"] ?? 0) bytes; received \(report["received_bytes"] ?? 0) bytes \
                in \(String(format: "%.2f", report["seconds"] as? Double ?? 0)) s \
                (\(String(format: "%.0f", report["megabytes_per_second"] as? Double ?? 0)) MB/s), \(report["requests"] ?? 0) requests

                """)
        }
    }
}
