import ClusterTrust
import ControlPlane
import Foundation
import GGUF
import Logging
import PipelineClient
import StarStream
import Synchronization
import Tokenizer

/// The model a gateway serves: its text side (from the GGUF metadata alone), the id clients
/// name it by, and the context each sequence has.
public struct ServedModel: Sendable {
    public var id: String
    public var front: TextFrontEnd
    public var contextLength: Int
    public var digest: [UInt8]
    public var created: Int

    public init(id: String, front: TextFrontEnd, contextLength: Int, digest: [UInt8], created: Int = Int(Date().timeIntervalSince1970)) {
        self.id = id
        self.front = front
        self.contextLength = contextLength
        self.digest = digest
        self.created = created
    }
}

/// Whether a full pipeline is ready, and why not.
public struct BackendHealth: Sendable, Equatable {
    public var ready: Bool
    public var reason: String

    public init(ready: Bool, reason: String) {
        self.ready = ready
        self.reason = reason
    }
}

/// A stoppable request.
public protocol RunningRequest: Sendable {
    func cancel()
}

extension ClusterRequest: RunningRequest {}

/// What the gateway needs from a cluster. The hub's implementation is `HubBackend`; tests use
/// a fake that needs no nodes.
public protocol InferenceBackend: Sendable {
    /// The served model; fetched once and kept until the cluster's model changes.
    func model() async throws(APIError) -> ServedModel
    /// Starts a request; `onEvent` gets its tokens, then one `done` or `failed`.
    func submit(_ request: PipelineRequest, onEvent: @escaping @Sendable (PipelineEvent) -> Void) -> RunningRequest
    func health() async -> BackendHealth
    /// The hub's view of the nodes, for `/metrics`.
    func cluster() async -> Pangalactic_Control_V1_ClusterStatusReply?
}

/// The cluster behind a hub: route plans and failover through a `ClusterDriver`, the model's
/// metadata from `GetModelInfo`. The gateway keeps no cluster state of its own: two gateways
/// can serve one hub side by side.
public final class HubBackend: InferenceBackend {
    private let connection: HubConnection
    private let driver: ClusterDriver
    private let modelID: String?
    private let cached = Mutex<(model: ServedModel, checked: Double)?>(nil)
    /// How long the served model is trusted before the hub's plan is asked again (a cluster
    /// rarely changes models; a request should not cost an RPC).
    private let recheckSeconds = 5.0
    private let logger: Logger

    /// `modelID` names the model for clients (default: from the GGUF's `general.name`).
    /// `security` is the gateway's own: its certificate (role gateway) on both planes.
    public init(hub: String, clusterToken: String, security: TransportSecurity = .insecure, modelID: String? = nil, logger: Logger) throws {
        connection = try HubConnection(address: hub, security: security)
        driver = ClusterDriver(source: HubRoutePlans(connection: connection), clusterToken: clusterToken, security: security, logger: logger)
        self.modelID = modelID
        self.logger = logger
    }

    public func model() async throws(APIError) -> ServedModel {
        let now = Date().timeIntervalSince1970
        if let c = cached.withLock({ $0 }), now - c.checked < recheckSeconds { return c.model }
        let plan: Pangalactic_Control_V1_RoutePlan
        do {
            plan = try await connection.control.getRoutePlan(.init(), options: HubConnection.deadline(seconds: 5))
        } catch {
            throw APIError.unavailable("the hub does not answer: \(error)")
        }
        if let c = cached.withLock({ $0 }), plan.modelDigest.isEmpty || Array(plan.modelDigest) == c.model.digest {
            cached.withLock { $0?.checked = now }
            return c.model
        }
        guard !plan.modelDigest.isEmpty else { throw APIError.unavailable(plan.problem.isEmpty ? "no model is deployed yet" : plan.problem) }
        do {
            let info = try await connection.modelInfo()
            let file = try GGUFFile(bytes: info.bytes)
            let front = try TextFrontEnd(file: file)
            if let warning = front.templateWarning { logger.warning("\(warning)") }
            let name = modelID ?? Self.slug(file.metadata.string("general.name") ?? "model")
            let model = ServedModel(id: name, front: front, contextLength: Int(plan.contextLength), digest: info.digest)
            cached.withLock { $0 = (model, now) }
            logger.info("serving model", metadata: ["model": "\(name)", "context": "\(plan.contextLength)"])
            return model
        } catch {
            throw APIError.unavailable("cannot load the model's metadata from the hub: \(error)")
        }
    }

    /// `SmolLM2 135M Instruct` → `smollm2-135m-instruct`.
    static func slug(_ name: String) -> String {
        let lowered = name.lowercased().map { $0.isLetter || $0.isNumber || $0 == "." ? $0 : "-" }
        return String(lowered).split(separator: "-").joined(separator: "-")
    }

    public func submit(_ request: PipelineRequest, onEvent: @escaping @Sendable (PipelineEvent) -> Void) -> RunningRequest {
        driver.submit(request, onEvent: onEvent)
    }

    public func health() async -> BackendHealth {
        do {
            let plan = try await connection.control.getRoutePlan(.init(), options: HubConnection.deadline(seconds: 2))
            if plan.ready { return BackendHealth(ready: true, reason: "ready: \(plan.stages.count) stages, epoch \(plan.epoch)") }
            return BackendHealth(ready: false, reason: plan.problem.isEmpty ? "the pipeline of epoch \(plan.epoch) is starting" : plan.problem)
        } catch {
            return BackendHealth(ready: false, reason: "the hub does not answer: \(error)")
        }
    }

    public func cluster() async -> Pangalactic_Control_V1_ClusterStatusReply? {
        try? await connection.control.clusterStatus(.init(), options: HubConnection.deadline(seconds: 2))
    }

    public func close() async {
        await driver.close()
        connection.close()
    }
}
