#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GGUF
import Kernels
import Models
import Node
import Sampling
import PipelineClient
import StarStream
import TestSupport

/// A ring of in-process nodes over loopback, serving a tiny random model written to a
/// temporary file: the same code paths as separate processes, in milliseconds.
final class TestRing: @unchecked Sendable {
    let path: String
    let nodes: [PipelineNode]
    let ports: [Int]
    let token = "test-token"
    let digest: [UInt8]

    static func spec(_ type: GGMLType = .q8_0) -> TinyModelSpec {
        var s = TinyModelSpec()
        s.layers = 6
        s.weightType = type
        s.seed = 42
        return s
    }

    init(split: [Range<Int>], wire: WireDType = .f32, spec: TinyModelSpec = TestRing.spec(), maxSequences: Int = 8,
         probeTimeout: Double = 1.0, contextLength: Int = 64, decodeGroups: Int? = nil,
         tune: (inout NodeConfiguration) -> Void = { _ in }) throws {
        let bytes = try TinyModel.writer(spec).serialize()
        path = NSTemporaryDirectory() + "pangalactic-ring-\(UInt64.random(in: 1 ... .max)).gguf"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        ports = try split.map { _ in try NodeAddress.freeLoopbackPort() }
        var started: [PipelineNode] = []
        for (i, layers) in split.enumerated() {
            var c = NodeConfiguration(modelPath: path, layers: layers,
                                      listen: NodeAddress(host: "127.0.0.1", port: ports[i]),
                                      next: NodeAddress(host: "127.0.0.1", port: ports[(i + 1) % split.count]))
            c.wire = wire
            c.clusterToken = token
            c.threads = 1
            c.maxSequences = maxSequences
            c.contextLength = contextLength
            c.maxBatchTokens = 16
            c.decodeGroups = decodeGroups
            c.probeIntervalSeconds = 0.1
            c.probeTimeoutSeconds = probeTimeout
            tune(&c)
            let node = try PipelineNode(configuration: c, logger: quietLogger)
            try node.start()
            started.append(node)
        }
        nodes = started
        digest = started[0].modelDigest
    }

    func stop() {
        for n in nodes { n.stop() }
        unlink(path)
    }

    func driver(token: String? = nil) async throws -> PipelineDriver {
        let d = try await PipelineDriver.connect(host: "127.0.0.1", port: ports[0], clusterToken: token ?? self.token,
                                                 modelDigest: digest, stallTimeoutSeconds: 10)
        try await d.waitUntilReady(seconds: 10)
        return d
    }

    /// Every token's log-probability after `prompt`, from one in-process model.
    func localLogprobs(prompt: [Int32]) throws -> [Float] {
        let model = try TransformerModel(file: GGUFFile(path: path))
        let state = ForwardState(config: model.config, maxTokens: 64, contextCapacity: 64, logitRows: 1, pool: ComputePool(threadCount: 1))
        let logits = try prompt.withUnsafeBufferPointer {
            Array(try model.forward(.tokens($0), start: 0, cache: model.makeCache(capacity: 64), state: state))
        }
        let top = logits.max() ?? 0
        let logSum = top + log(logits.reduce(0) { $0 + exp($1 - top) })
        return logits.map { $0 - logSum }
    }

    /// The greedy first token after `prompt` and its log-probability, from one in-process model.
    func localLogprob(prompt: [Int32]) throws -> (token: Int32, logprob: Float) {
        let model = try TransformerModel(file: GGUFFile(path: path))
        let state = ForwardState(config: model.config, maxTokens: 64, contextCapacity: 64, logitRows: 1, pool: ComputePool(threadCount: 1))
        let logits = try prompt.withUnsafeBufferPointer {
            Array(try model.forward(.tokens($0), start: 0, cache: model.makeCache(capacity: 64), state: state))
        }
        let top = logits.max() ?? 0
        let logSum = top + log(logits.reduce(0) { $0 + exp($1 - top) })
        let token = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
        return (token, logits[Int(token)] - logSum)
    }

    /// Greedy tokens from one in-process model, the reference the ring must reproduce.
    func localGreedy(prompt: [Int32], count: Int) throws -> [Int32] {
        let model = try TransformerModel(file: GGUFFile(path: path))
        let pool = ComputePool(threadCount: 1)
        let capacity = max(64, prompt.count + count)
        let state = ForwardState(config: model.config, maxTokens: 64, contextCapacity: capacity, logitRows: 1, pool: pool)
        let cache = model.makeCache(capacity: capacity)
        var out: [Int32] = []
        var logits = try prompt.withUnsafeBufferPointer { try model.forward(.tokens($0), start: 0, cache: cache, state: state) }
        for i in 0 ..< count {
            let t = Sampler.argmax(UnsafeBufferPointer(logits))
            out.append(t)
            if i + 1 < count {
                logits = try [t].withUnsafeBufferPointer { try model.forward(.tokens($0), start: prompt.count + i, cache: cache, state: state) }
            }
        }
        return out
    }
}

let greedyWire = WireSampling.greedy

/// Runs a request to the end and returns its tokens and how it ended.
func collect(_ driver: PipelineDriver, _ request: PipelineRequest) async -> (tokens: [Int32], end: PipelineEvent?) {
    var tokens: [Int32] = []
    var end: PipelineEvent?
    for await event in driver.events(request) {
        switch event {
        case let .token(t): tokens.append(t.tokenID)
        case .done, .failed: end = event
        }
    }
    return (tokens, end)
}
