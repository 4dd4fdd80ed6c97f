import ControlPlane
import Foundation
import GRPCCore
import Hub
import Synchronization
import Testing
import TestSupport

/// The snapshot file and the gRPC service end to end: a real `HubServer` on a loopback port and
/// the generated client, as a node and a driver use them.
struct HubServiceTests {
    static func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "pangalactic-\(name)-\(UInt64.random(in: 1 ... .max))"
    }

    @Test func theSnapshotFileRoundTripsAndIsReplacedWhole() throws {
        let path = Self.temporaryPath("state")
        defer { unlink(path) }
        let store = SnapshotFileStore(path: path)
        #expect(try store.load() == nil)
        var snapshot = Pangalactic_Control_V1_HubSnapshot()
        snapshot.epoch = 7
        snapshot.modelInfo = Data(repeating: 3, count: 100_000)
        var node = Pangalactic_Control_V1_NodeRecord()
        node.nodeID = "a"
        node.address = "127.0.0.1:1"
        snapshot.nodes = [node]
        try store.save(snapshot, version: 2)
        #expect(try store.load() == snapshot)
        // An older version that arrives late does not overwrite a newer one.
        var older = snapshot
        older.epoch = 6
        try store.save(older, version: 1)
        #expect(try store.load()?.epoch == 7)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        // A second store on the same file (a restarted hub) reads it.
        #expect(try SnapshotFileStore(path: path).load() == snapshot)
    }

    @Test func aCorruptSnapshotIsAnErrorNotACrash() throws {
        let path = Self.temporaryPath("corrupt")
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: Data([0xFF, 0xFF, 0xFF, 0x0F, 0x01]))
        #expect(throws: ClusterStoreError.self) { try SnapshotFileStore(path: path).load() }
    }

    /// A hub serving on a free loopback port for the length of `body`.
    static func withHub(_ settings: HubSettings = HubCoreTests.settings, store: ClusterStore = MemoryClusterStore(),
                        _ body: @escaping @Sendable (HubConnection, HubServer) async throws -> Void) async throws {
        let server = try HubServer(settings: settings, store: store, logger: quietLogger)
        let port = Mutex<Int?>(nil)
        let task = Task { try await server.run(host: "127.0.0.1", port: 0) { bound in port.withLock { $0 = bound } } }
        defer { task.cancel() }
        let deadline = Date().addingTimeInterval(10)
        while port.withLock({ $0 }) == nil {
            guard Date() < deadline else { throw RPCError(code: .unavailable, message: "the hub did not start within 10 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
        let connection = try HubConnection(host: "127.0.0.1", port: port.withLock { $0 } ?? 0)
        defer { connection.close() }
        try await body(connection, server)
    }

    @Test func aNodeRegistersPublishesItsModelAndGetsItsAssignmentOnTheHeartbeatStream() async throws {
        try await Self.withHub { hub, _ in
            let control = hub.control
            await #expect(throws: RPCError.self) {
                try await control.register(HubCoreTests.request("n1", budget: 20_000_000, token: "nope"))
            }
            let reply = try await control.register(HubCoreTests.request("n1", budget: 20_000_000))
            #expect(reply.needsModelInfo)
            #expect(reply.heartbeatIntervalSeconds == 1)
            let metadata = (0 ..< 2_500_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let digest = HubCoreTests.layout().digest
            _ = try await control.publishModelInfo { writer in
                var offset = 0
                while offset < metadata.count {
                    let end = min(metadata.count, offset + 1_000_000)
                    try await writer.write(.with {
                        $0.modelDigest = digest
                        $0.offset = UInt64(offset)
                        $0.totalBytes = UInt64(metadata.count)
                        $0.data = Data(metadata[offset ..< end])
                    })
                    offset = end
                }
            }
            let fetched = try await hub.modelInfo()
            #expect(fetched.bytes == metadata)
            #expect(fetched.digest == Array(digest))

            // The heartbeat stream answers with the assignment; the plan holds while it is open.
            let (assignment, plan) = try await control.heartbeat { writer in
                try await writer.write(.with { $0.nodeID = "n1"; $0.epoch = 0 })
                try await Task.sleep(for: .seconds(5))
            } onResponse: { response in
                for try await directive in response.messages {
                    if case let .assignment(a) = directive.kind { return (a, try await control.getRoutePlan(.init())) }
                }
                throw RPCError(code: .internalError, message: "no assignment")
            }
            #expect(assignment.active && assignment.firstLayer == 0 && assignment.endLayer == 10)
            #expect(plan.stages.map(\.nodeID) == ["n1"])
            #expect(plan.modelDigest == digest)
            // Closing the stream is the node's death: the model has nowhere to go.
            let deadline = Date().addingTimeInterval(5)
            while try await control.getRoutePlan(.init()).problem.isEmpty, Date() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let status = try await control.clusterStatus(.init())
            #expect(status.nodes.map(\.state) == ["dead"])
            #expect(status.plan.problem.contains("no live nodes"))
        }
    }

    @Test func unknownNodesAreToldToRegisterAgainOnTheStream() async throws {
        try await Self.withHub { hub, _ in
            let answer: String = try await hub.control.heartbeat { writer in
                try await writer.write(.with { $0.nodeID = "stranger" })
                try await Task.sleep(for: .seconds(5))
            } onResponse: { response in
                for try await directive in response.messages {
                    if case let .registerAgain(why) = directive.kind { return why }
                }
                return ""
            }
            #expect(answer.contains("register"))
        }
    }

    @Test func outOfOrderModelInfoIsRefused() async throws {
        try await Self.withHub { hub, _ in
            _ = try await hub.control.register(HubCoreTests.request("n1", budget: 20_000_000))
            await #expect(throws: RPCError.self) {
                _ = try await hub.control.publishModelInfo { writer in
                    try await writer.write(.with { $0.offset = 5; $0.totalBytes = 10; $0.data = Data([1]) })
                }
            }
            await #expect(throws: RPCError.self) {
                _ = try await hub.control.publishModelInfo { writer in
                    try await writer.write(.with { $0.offset = 0; $0.totalBytes = UInt64(HubService.maxModelInfoBytes + 1); $0.data = Data([1]) })
                }
            }
            await #expect(throws: RPCError.self) { _ = try await hub.modelInfo() }
        }
    }
}
