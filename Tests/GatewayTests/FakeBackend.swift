import ControlPlane
import Dispatch
import Foundation
import Gateway
import GGUF
import PipelineClient
import StarStream
import Synchronization
import TestSupport
import Tokenizer

/// A cluster stand-in for the HTTP layer's tests: it "generates" a fixed script of tokens of the
/// tiny test model's vocabulary (rotated by the seed above temperature 0, so seeds and choices
/// differ as they would), from a background queue, and records what it was asked.
final class FakeBackend: InferenceBackend, @unchecked Sendable {
    final class Request: RunningRequest, @unchecked Sendable {
        let cancelled = Atomic<Bool>(false)
        func cancel() { cancelled.store(true, ordering: .relaxed) }
    }

    let served: ServedModel
    /// Token ids of "HELLOWORLD…", the script every request follows.
    let script: [Int32]
    let submitted = Mutex<[PipelineRequest]>([])
    let requests = Mutex<[Request]>([])
    /// Fail every request with this error after this many tokens.
    let failure = Mutex<(after: Int, error: PipelineError)?>(nil)
    let ready = Atomic<Bool>(true)
    /// Tokens come this far apart.
    let pace: Double
    /// While set, running requests produce nothing (a test holds a slot as long as it needs).
    let held = Atomic<Bool>(false)

    init(contextLength: Int = 64, pace: Double = 0) throws {
        var spec = TinyModelSpec()
        spec.vocabulary = 40
        let file = try GGUFFile(bytes: TinyModel.writer(spec).serialize().metadataOnly())
        let front = try TextFrontEnd(file: file)
        served = ServedModel(id: "tiny", front: front, contextLength: contextLength, digest: [UInt8](repeating: 1, count: 32), created: 1_700_000_000)
        script = front.tokenize("HELLOWORLDABCDEFGHIJKLMNOPQRSTUVWXYZ", addSpecial: false)
        self.pace = pace
    }

    func model() async throws(APIError) -> ServedModel { served }

    func submit(_ request: PipelineRequest, onEvent: @escaping @Sendable (PipelineEvent) -> Void) -> RunningRequest {
        let handle = Request()
        submitted.withLock { $0.append(request) }
        requests.withLock { $0.append(handle) }
        let rotation = request.sampling.temperature > 0 ? Int(request.sampling.seed % UInt64(script.count)) : 0
        let failure = self.failure.withLock { $0 }
        let (script, pace) = (self.script, self.pace)
        DispatchQueue.global().async { [self] in
            for i in 0 ..< request.maxNewTokens {
                while held.load(ordering: .relaxed), !handle.cancelled.load(ordering: .relaxed) { usleep(2000) }
                if handle.cancelled.load(ordering: .relaxed) { return onEvent(.done(.cancelled, generated: i)) }
                if let failure, i == failure.after { return onEvent(.failed(failure.error)) }
                if pace > 0 { usleep(UInt32(pace * 1e6)) }
                let id = script[(i + rotation) % script.count]
                let alternatives = (0 ..< request.topLogprobs).map { TokenAlternative(tokenID: script[($0 + i + rotation) % script.count], logprob: -Float($0) - 0.5) }
                onEvent(.token(TokenMessage(tokenID: id, logprob: request.logprobs ? -0.5 : nil, alternatives: alternatives)))
            }
            onEvent(.done(.length, generated: request.maxNewTokens))
        }
        return handle
    }

    func health() async -> BackendHealth {
        ready.load(ordering: .relaxed) ? BackendHealth(ready: true, reason: "ready") : BackendHealth(ready: false, reason: "the pipeline is starting")
    }

    func cluster() async -> Pangalactic_Control_V1_ClusterStatusReply? {
        var status = Pangalactic_Control_V1_ClusterStatusReply()
        var node = Pangalactic_Control_V1_NodeStatus()
        node.name = "n1"
        node.address = "127.0.0.1:1"
        node.state = "active"
        node.hasLayers_p = true
        node.firstLayer = 0
        node.endLayer = 4
        node.load.kvBytes = 1234
        node.load.hopP50Ms = 0.25
        status.nodes = [node]
        return status
    }
}

extension Array where Element == UInt8 {
    /// The GGUF's metadata as a file of its own (what the hub hands the gateway).
    func metadataOnly() throws -> [UInt8] { try GGUFFile(bytes: self).metadataOnlyBytes() }
}
