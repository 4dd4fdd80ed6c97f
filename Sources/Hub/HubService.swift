import ClusterTrust
import ControlPlane
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging

/// The control plane's gRPC service: a thin shell over `HubCore` that checks sizes, maps
/// `HubError` to gRPC status codes and runs the heartbeat streams.
public struct HubService: Pangalactic_Control_V1_ClusterControl.SimpleServiceProtocol {
    let core: HubCore
    let logger: Logger
    /// Largest model metadata a node may upload (a GGUF without tensors: vocabulary, merges,
    /// template; a few MiB for today's models).
    public static let maxModelInfoBytes = 256 << 20
    /// Chunk size of `GetModelInfo`, under gRPC's default 4 MiB message cap.
    public static let modelInfoChunkBytes = 1 << 20

    /// Under mutual TLS every caller has a certificate of the cluster; the calls that change the
    /// registry also need it to name a node (a gateway's certificate cannot register a node).
    let requiresCertificates: Bool

    public init(core: HubCore, logger: Logger, requiresCertificates: Bool = false) {
        self.core = core
        self.logger = logger
        self.requiresCertificates = requiresCertificates
    }

    /// Throws unless the caller's certificate names a node (under mutual TLS).
    func requireNode(_ context: ServerContext, _ call: String) throws {
        guard requiresCertificates else { return }
        let member = (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate?.clusterMember
        guard let member, member.role == .node else {
            let who = member.map { "\($0.role.rawValue) \($0.name)" } ?? "a caller without a cluster certificate"
            logger.notice("control call refused", metadata: ["call": "\(call)", "peer": "\(context.remotePeer)", "who": "\(who)"])
            throw RPCError(code: .permissionDenied, message: "\(call) is for nodes; the certificate is for \(who)")
        }
    }

    static func rpcError(_ error: HubError) -> RPCError {
        switch error {
        case .unauthorized: RPCError(code: .permissionDenied, message: error.description)
        case .invalid: RPCError(code: .invalidArgument, message: error.description)
        case .differentModel: RPCError(code: .failedPrecondition, message: error.description)
        case .unknownNode: RPCError(code: .notFound, message: error.description)
        }
    }

    public func register(request: Pangalactic_Control_V1_RegisterRequest, context: ServerContext) async throws -> Pangalactic_Control_V1_RegisterReply {
        try requireNode(context, "Register")
        do { return try core.register(request) } catch { throw Self.rpcError(error) }
    }

    public func publishModelInfo(request: RPCAsyncSequence<Pangalactic_Control_V1_ModelInfoChunk, any Error>,
                                 context: ServerContext) async throws -> Pangalactic_Control_V1_PublishModelInfoReply {
        try requireNode(context, "PublishModelInfo")
        var bytes: [UInt8] = []
        var digest: [UInt8] = []
        var total: UInt64 = 0
        for try await chunk in request {
            if bytes.isEmpty {
                guard chunk.totalBytes > 0, chunk.totalBytes <= UInt64(Self.maxModelInfoBytes) else {
                    throw RPCError(code: .invalidArgument, message: "model info of \(chunk.totalBytes) bytes (cap \(Self.maxModelInfoBytes))")
                }
                total = chunk.totalBytes
                digest = Array(chunk.modelDigest)
                bytes.reserveCapacity(Int(total))
            }
            guard chunk.offset == UInt64(bytes.count), chunk.totalBytes == total,
                  UInt64(bytes.count) + UInt64(chunk.data.count) <= total else {
                throw RPCError(code: .invalidArgument, message: "model info chunks out of order or over the announced size")
            }
            bytes.append(contentsOf: chunk.data)
        }
        guard UInt64(bytes.count) == total, total > 0 else {
            throw RPCError(code: .invalidArgument, message: "model info ended at \(bytes.count) of \(total) bytes")
        }
        do { try core.setModelInfo(bytes, digest: digest) } catch { throw Self.rpcError(error) }
        var reply = Pangalactic_Control_V1_PublishModelInfoReply()
        reply.bytes = total
        return reply
    }

    public func heartbeat(request: RPCAsyncSequence<Pangalactic_Control_V1_NodeHeartbeat, any Error>,
                          response: RPCWriter<Pangalactic_Control_V1_HubDirective>, context: ServerContext) async throws {
        try requireNode(context, "Heartbeat")
        var iterator = request.makeAsyncIterator()
        guard let first = try await iterator.next() else { return }
        let id = first.nodeID
        let (serial, pushes, push) = core.openStream(for: id)
        defer { core.closeStream(for: id, serial: serial) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The only writer: assignments pushed when the epoch changes, and the answers to
            // heartbeats. It ends when the push channel finishes.
            group.addTask {
                for await directive in pushes { try await response.write(directive) }
            }
            // Heartbeats (read here), each answered with the assignment when the node is behind.
            defer { push.finish() }
            var next: Pangalactic_Control_V1_NodeHeartbeat? = first
            while let beat = next {
                guard beat.nodeID == id else {
                    throw RPCError(code: .invalidArgument, message: "one heartbeat stream per node")
                }
                do {
                    if let assignment = try core.heartbeat(beat) {
                        var directive = Pangalactic_Control_V1_HubDirective()
                        directive.assignment = assignment
                        push.yield(directive)
                    }
                } catch {
                    // The hub does not know this node (it restarted without a snapshot).
                    var directive = Pangalactic_Control_V1_HubDirective()
                    directive.registerAgain = "\(error)"
                    push.yield(directive)
                    break
                }
                next = try await iterator.next()
            }
            push.finish()
            try await group.waitForAll()
        }
    }

    public func drain(request: Pangalactic_Control_V1_DrainRequest, context: ServerContext) async throws -> Pangalactic_Control_V1_DrainReply {
        try requireNode(context, "Drain")
        do { return try core.drain(request.nodeID) } catch { throw Self.rpcError(error) }
    }

    public func getRoutePlan(request: Pangalactic_Control_V1_RoutePlanRequest, context: ServerContext) async throws -> Pangalactic_Control_V1_RoutePlan {
        core.routePlan
    }

    public func getModelInfo(request: Pangalactic_Control_V1_ModelInfoRequest, response: RPCWriter<Pangalactic_Control_V1_ModelInfoChunk>,
                             context: ServerContext) async throws {
        guard let (bytes, digest) = core.modelInfo else {
            throw RPCError(code: .unavailable, message: "no node has published the model's metadata yet")
        }
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + Self.modelInfoChunkBytes)
            var chunk = Pangalactic_Control_V1_ModelInfoChunk()
            chunk.modelDigest = Data(digest)
            chunk.offset = UInt64(offset)
            chunk.totalBytes = UInt64(bytes.count)
            chunk.data = Data(bytes[offset ..< end])
            try await response.write(chunk)
            offset = end
        } while offset < bytes.count
    }

    public func clusterStatus(request: Pangalactic_Control_V1_ClusterStatusRequest, context: ServerContext) async throws -> Pangalactic_Control_V1_ClusterStatusReply {
        core.status
    }
}
