#if canImport(Glibc)
import Glibc
#endif
import ControlPlane
import Dispatch
import Foundation
import Gateway
import GGUF
import Hub
import Hummingbird
import HummingbirdTesting
import NIOCore
import Kernels
import Models
import ModelStore
import Node
import PipelineClient
import Sampling
import StarStream
import Synchronization
import Testing
import TestSupport
import Tokenizer

/// A hub and joined nodes in one process over loopback, on a tiny model: placement, failover
/// by replay, drain and hub restarts through the same code paths as separate processes.
final class TestCluster: @unchecked Sendable {
    let path: String
    let token = "cluster-test"
    let store = MemoryClusterStore()
    var settings: HubSettings
    private(set) var hubPort = 0
    private var hubTask: Task<Void, Error>?
    private var hubServer: HubServer?
    private let members = Mutex<[ClusterMember]>([])
    private let memberTasks = Mutex<[Task<Void, Never>]>([])
    let layout: Pangalactic_Control_V1_ModelLayout

    static var spec: TinyModelSpec {
        var s = TinyModelSpec()
        s.layers = 6
        s.embedding = 128
        s.feedForward = 256
        s.vocabulary = 96
        s.weightType = .q8_0
        s.seed = 5
        return s
    }

    init(contextLength: Int = 256) throws {
        let bytes = try TinyModel.writer(Self.spec).serialize()
        path = NSTemporaryDirectory() + "pangalactic-cluster-\(UInt64.random(in: 1 ... .max)).gguf"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let file = try GGUFFile(path: path)
        layout = try ModelProfile.layout(file: file, digest: file.modelDigest())
        var s = HubSettings()
        s.contextLength = contextLength
        s.maxSequences = 8
        s.overheadBytes = 0
        s.clusterToken = token
        s.joinGain = 10 // tests decide placement by budget: a joiner never takes over by speed
        // The hub and the nodes share this test process with other suites, whose synchronous
        // work can hold the cooperative threads for seconds: only deaths the tests cause count.
        s.missedHeartbeats = 15
        s.recoveryGraceSeconds = 30
        settings = s
    }

    /// The budget of a node that can hold `layers` of the model's middle layers (and no more).
    func budget(layers: Int) -> Int {
        let footprint = ModelFootprint(layerBytes: layout.layerBytes.map { Int($0) }, embeddingBytes: Int(layout.embeddingBytes),
                                       outputBytes: Int(layout.outputBytes), tiedEmbeddings: layout.tiedEmbeddings,
                                       kvBytesPerLayerPosition: Int(layout.kvBytesPerLayerPosition))
        let planner = PlacementPlanner(kvReservePositions: settings.contextLength * settings.maxSequences, overheadBytes: 0)
        // Room for the embedding or the output head on top, but not one more layer.
        return planner.reservedBytes(footprint, 0 ..< layers) + Int(layout.outputBytes) + 16
    }

    func startHub(port: Int = 0) async throws {
        let server = try HubServer(settings: settings, store: store, logger: quietLogger)
        hubServer = server
        let bound = Mutex<Int?>(nil)
        hubTask = Task { try await server.run(host: "127.0.0.1", port: port) { p in bound.withLock { $0 = p } } }
        try await waitFor("the hub to listen", seconds: 10) { bound.withLock { $0 } != nil }
        hubPort = bound.withLock { $0 } ?? 0
    }

    func stopHub() async {
        hubServer?.prepareToStop()
        hubTask?.cancel()
        _ = await hubTask?.result
        hubTask = nil
    }

    /// A joining node's configuration on a free loopback port, small and quick to start.
    func memberConfiguration(budget: Int, name: String, modelPath: String) throws -> MemberConfiguration {
        var c = MemberConfiguration(hub: "127.0.0.1:\(hubPort)", listen: NodeAddress(host: "127.0.0.1", port: try NodeAddress.freeLoopbackPort()),
                                    modelPath: modelPath)
        c.memoryBudgetBytes = budget
        c.name = name
        c.clusterToken = token
        c.threads = 1
        c.maxBatchTokens = 32
        c.speedProbeSeconds = 0.02
        return c
    }

    private func run(_ member: ClusterMember) -> ClusterMember {
        members.withLock { $0.append(member) }
        memberTasks.withLock { $0.append(Task { await member.run() }) }
        return member
    }

    @discardableResult
    func addNode(budget: Int, name: String) throws -> ClusterMember {
        run(try ClusterMember(configuration: memberConfiguration(budget: budget, name: name, modelPath: path), logger: quietLogger))
    }

    /// A node with no model file: it asks the hub for its store and pulls its layers into
    /// `cacheDirectory` (its own, as on a machine of its own).
    @discardableResult
    func addStoreNode(budget: Int, name: String, cacheDirectory: String) async throws -> ClusterMember {
        var c = try memberConfiguration(budget: budget, name: name, modelPath: "")
        c.cacheDirectory = cacheDirectory
        return run(try await ClusterMember.open(configuration: c, logger: quietLogger))
    }

    var nodes: [ClusterMember] { members.withLock { $0 } }

    func hub() throws -> HubConnection { try HubConnection(host: "127.0.0.1", port: hubPort) }

    /// A driver on the hub's route plans, with the connection it uses (close it when done).
    func driver() throws -> (ClusterDriver, HubConnection) {
        let connection = try hub()
        return (ClusterDriver(source: HubRoutePlans(connection: connection), clusterToken: token, logger: quietLogger), connection)
    }

    /// The hub's status, retried for up to 30 s (a loaded machine, a restarting hub).
    func status() async throws -> Pangalactic_Control_V1_ClusterStatusReply {
        let connection = try hub()
        defer { connection.close() }
        let deadline = Date().addingTimeInterval(30)
        while true {
            do {
                return try await connection.control.clusterStatus(.init(), options: HubConnection.deadline(seconds: 10))
            } catch {
                guard Date() < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Waits until the plan is ready with `stages` stages.
    func waitUntilReady(stages: Int? = nil, seconds: Double = 30) async throws {
        try await waitFor("a ready plan", seconds: seconds) { [self] in
            guard let s = try? await status() else { return false }
            return s.plan.ready && (stages.map { s.plan.stages.count == $0 } ?? true)
        }
    }

    func member(at address: String) -> ClusterMember? {
        nodes.first { ($0.configuration.advertise ?? $0.configuration.listen).description == address }
    }

    func stop() {
        for m in nodes { m.stop() }
        hubTask?.cancel()
        unlink(path)
    }

    /// Tokens one process produces for `request` with the same sampler: the run to compare with.
    func reference(_ request: PipelineRequest) throws -> [Int32] {
        let model = try TransformerModel(file: GGUFFile(path: path))
        let state = ForwardState(config: model.config, maxTokens: 256, contextCapacity: 512, logitRows: 1, pool: ComputePool(threadCount: 1))
        let cache = model.makeCache(capacity: 512)
        let sampler = try Sampler(parameters: request.sampling.parameters, vocabularySize: model.config.vocabularySize)
        sampler.accept(contentsOf: request.history)
        var out: [Int32] = []
        var logits = try request.prompt.withUnsafeBufferPointer { try model.forward(.tokens($0), start: 0, cache: cache, state: state) }
        while out.count < request.maxNewTokens {
            let t = sampler.sample(logits: logits)
            sampler.accept(t)
            out.append(t)
            if request.stopTokens.contains(t) { break }
            logits = try [t].withUnsafeBufferPointer { try model.forward(.tokens($0), start: request.prompt.count + out.count - 1, cache: cache, state: state) }
        }
        return out
    }
}

/// Four requests, greedy and seeded at temperature 0.8, long enough to be cut mid-way.
func clusterRequests(tokens: Int = 160) -> [PipelineRequest] {
    (0 ..< 4).map { i in
        let prompt = (0 ... i + 2).map { Int32(($0 * 17 + i * 5) % 90 + 3) }
        let sampling = i % 2 == 0 ? WireSampling.greedy
            : WireSampling(temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.1, frequencyPenalty: 0,
                           presencePenalty: 0, penaltyLastN: 64, seed: UInt64(100 + i))
        return PipelineRequest(prompt: prompt, maxNewTokens: tokens, sampling: sampling, stopTokens: [],
                               history: Array(prompt.suffix(Int(sampling.penaltyLastN))))
    }
}

@Suite(.serialized) struct ClusterTests {
    /// Starts a hub and `nodes` nodes of which three must serve together (each holds at most
    /// half of the layers less one); waits for the plan.
    static func cluster(nodes: Int = 4) async throws -> TestCluster {
        let c = try TestCluster()
        try await c.startHub()
        for i in 0 ..< nodes { try c.addNode(budget: c.budget(layers: 2), name: "n\(i)") }
        try await c.waitUntilReady(stages: 3)
        return c
    }

    static func expectIdentical(_ got: [(tokens: [Int32], end: PipelineEvent?)], _ expected: [[Int32]]) {
        for (i, (result, want)) in zip(got, expected).enumerated() {
            #expect(result.tokens == want, "request \(i): \(result.tokens.count) tokens, ended \(String(describing: result.end))")
            guard case let .done(cause, generated) = result.end else {
                Issue.record("request \(i) ended with \(String(describing: result.end))")
                continue
            }
            #expect(cause == .length && generated == want.count)
        }
    }

    /// After a fault every surviving node's caches go back (the ring resets, the idle deadline).
    static func expectNoSequencesLeft(_ c: TestCluster) async throws {
        try await waitFor("every node to free its sequences", seconds: 10) {
            guard let s = try? await c.status() else { return false }
            return s.nodes.filter { $0.state != "dead" }.allSatisfy { $0.load.activeSequences == 0 && $0.load.waitingSequences == 0 }
                && c.nodes.allSatisfy { ($0.stage?.counters.activeSequences.load(ordering: .relaxed) ?? 0) == 0 }
        }
    }

    @Test func theHubPlacesTheModelByBudgetAndAClientGetsOneProcesssTokens() async throws {
        let c = try await Self.cluster(nodes: 3)
        defer { c.stop() }
        let status = try await c.status()
        #expect(status.plan.stages.count == 3)
        for n in status.nodes {
            #expect(n.state == "active" && n.hasLayers_p)
            #expect(n.memoryBytes <= n.budgetBytes)
        }
        let (driver, connection) = try c.driver()
        defer { connection.close() }
        let requests = clusterRequests(tokens: 40)
        let expected = try requests.map { try c.reference($0) }
        Self.expectIdentical(await runConcurrently(driver, requests), expected)
        #expect(driver.replays.load(ordering: .relaxed) == 0)
        await driver.close()
        // The driver tokenizes from the hub's copy of the model's metadata.
        let info = try await connection.modelInfo()
        let local = try GGUFFile(path: c.path)
        #expect(info.bytes == local.metadataOnlyBytes())
        #expect(try GGUFFile(bytes: info.bytes).tensors.isEmpty)
    }

    @Test func killingAMiddleNodeLosesNothing() async throws {
        let c = try await Self.cluster()
        defer { c.stop() }
        let (driver, connection) = try c.driver()
        defer { connection.close() }
        let requests = clusterRequests()
        let expected = try requests.map { try c.reference($0) }
        let plan = try await c.status().plan
        let victim = try #require(c.member(at: plan.stages[1].address))
        let results = await runConcurrently(driver, requests) { DispatchQueue.global().async { victim.stop() } }
        Self.expectIdentical(results, expected)
        #expect(driver.replays.load(ordering: .relaxed) >= 1, "the requests were replayed on the new plan")
        let after = try await c.status()
        #expect(after.plan.epoch > plan.epoch)
        #expect(after.nodes.first { $0.address == plan.stages[1].address }?.state == "dead")
        try await Self.expectNoSequencesLeft(c)
        await driver.close()
    }

    @Test func drainingANodeMovesItsRequestsWithoutDroppingOne() async throws {
        let c = try await Self.cluster()
        defer { c.stop() }
        let (driver, connection) = try c.driver()
        defer { connection.close() }
        let requests = clusterRequests()
        let expected = try requests.map { try c.reference($0) }
        let plan = try await c.status().plan
        let leaving = try #require(c.member(at: plan.stages[0].address))
        let results = await runConcurrently(driver, requests) { Task { await leaving.drain() } }
        Self.expectIdentical(results, expected)
        let after = try await c.status()
        #expect(!after.plan.stages.map(\.address).contains(plan.stages[0].address))
        #expect(["draining", "dead"].contains(after.nodes.first { $0.address == plan.stages[0].address }?.state ?? ""))
        try await Self.expectNoSequencesLeft(c)
        await driver.close()
    }

    @Test func aHubRestartDoesNotDisturbRequestsAndTheHubRecoversTheCluster() async throws {
        let c = try await Self.cluster()
        defer { c.stop() }
        let before = try await c.status()
        let (driver, connection) = try c.driver()
        defer { connection.close() }
        let requests = clusterRequests()
        let expected = try requests.map { try c.reference($0) }
        let port = c.hubPort
        let restart = Mutex<Task<Void, Never>?>(nil)
        let results = await runConcurrently(driver, requests) {
            restart.withLock { $0 = Task {
                await c.stopHub()
                try? await c.startHub(port: port)
            } }
        }
        await restart.withLock { $0 }?.value
        Self.expectIdentical(results, expected)
        #expect(driver.replays.load(ordering: .relaxed) == 0, "the data plane never noticed")
        try await c.waitUntilReady(stages: 3)
        let after = try await c.status()
        #expect(after.plan.epoch == before.plan.epoch)
        #expect(after.plan.stages == before.plan.stages)
        #expect(after.nodes.allSatisfy { $0.state == "active" || $0.state == "standby" })
        await driver.close()
    }

    @Test func aNodeThatJoinsMidRunIsAStandbyAndDropsNothing() async throws {
        let c = try await Self.cluster(nodes: 3)
        defer { c.stop() }
        let (driver, connection) = try c.driver()
        defer { connection.close() }
        let requests = clusterRequests()
        let expected = try requests.map { try c.reference($0) }
        let results = await runConcurrently(driver, requests) {
            DispatchQueue.global().async { _ = try? c.addNode(budget: c.budget(layers: 2), name: "late") }
        }
        Self.expectIdentical(results, expected)
        try await waitFor("the fourth node to register", seconds: 10) {
            (try? await c.status().nodes.count) == 4
        }
        #expect(try await c.status().nodes.first { $0.name == "late" }?.state == "standby")
        await driver.close()
    }

    /// The gateway keeps no cluster state: two of them serve one hub side by side, each the
    /// single process's text.
    @Test func twoGatewaysServeOneHubSideBySide() async throws {
        let c = try await Self.cluster(nodes: 3)
        defer { c.stop() }
        let request = PipelineRequest(prompt: [3, 4, 5], maxNewTokens: 12, sampling: .greedy, stopTokens: [2])
        let expected = try c.reference(request)
        let tokenizer = try TextFrontEnd(file: GGUFFile(path: c.path)).tokenizer
        let text = tokenizer.decode(expected, renderSpecial: false)
        for _ in 0 ..< 2 {
            let backend = try HubBackend(hub: "127.0.0.1:\(c.hubPort)", clusterToken: c.token, modelID: "tiny", logger: quietLogger)
            let gateway = Gateway(configuration: GatewayConfiguration(), backend: backend, logger: quietLogger)
            let app = Application(router: gateway.router())
            try await app.test(.router) { client in
                let body = #"{"model": "tiny", "prompt": [3, 4, 5], "max_tokens": 12, "temperature": 0}"#
                let reply = try await client.execute(uri: "/v1/completions", method: .post, headers: [.contentType: "application/json"],
                                                     body: ByteBuffer(string: body)) { String(buffer: $0.body) }
                let object = try JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any]
                #expect(((object?["choices"] as? [[String: Any]])?.first?["text"] as? String) == text, "\(reply)")
            }
            await backend.close()
        }
    }

    /// Three nodes without model files, fed by a store through the hub: each pulls only its
    /// own stage's tensors (and its bytes from the store are those tensors' bytes), and the
    /// cluster gives the tokens of one process reading the local file.
    @Test func aClusterFedByAStorePullsOnlyEachStagesTensorsAndGivesTheSameTokens() async throws {
        let c = try TestCluster()
        let folder = NSTemporaryDirectory() + "pangalactic-store-cluster-\(UInt64.random(in: 1 ... .max))"
        try FileManager.default.createDirectory(atPath: folder + "/models", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: c.path, toPath: folder + "/models/tiny.gguf")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = StoreServer(directory: folder + "/models", port: 0, logger: quietLogger)
        let bound = Mutex<Int?>(nil)
        let storeTask = Task { try await store.run { p in bound.withLock { $0 = p } } }
        defer { storeTask.cancel() }
        try await waitFor("the store to listen", seconds: 20) { bound.withLock { $0 } != nil }
        let url = "http://127.0.0.1:\(bound.withLock { $0 } ?? 0)/v1/store/models/tiny"
        let (index, header) = try await StoreModelSource.describe(url)
        c.settings.modelSource = url
        c.settings.storeModel = (try #require(index.modelDigestBytes), header.metadataOnlyBytes())
        try await c.startHub()
        defer { c.stop() }
        for i in 0 ..< 3 { try await c.addStoreNode(budget: c.budget(layers: 2), name: "s\(i)", cacheDirectory: folder + "/cache\(i)") }
        try await c.waitUntilReady(stages: 3)

        let (driver, connection) = try c.driver()
        defer { connection.close() }
        let requests = clusterRequests(tokens: 40)
        let expected = try requests.map { try c.reference($0) }
        Self.expectIdentical(await runConcurrently(driver, requests), expected)
        await driver.close()

        let local = try GGUFFile(path: c.path)
        for node in c.nodes {
            let layers = try #require(node.stage?.configuration.layers)
            let assigned = TransformerModel.tensorNames(file: local, layers: layers).compactMap { local.tensor(named: $0)?.byteCount }.reduce(0, +)
            let received = try #require(node.storeReceived)
            // Alignment padding between adjacent tensors is all that may travel besides them.
            #expect(received.tensorBytes >= assigned && Double(received.tensorBytes) <= Double(assigned) * 1.05,
                    "layers \(layers): pulled \(received.tensorBytes) for \(assigned) bytes of tensors")
            // The metadata came from the hub, not the store.
            #expect(received.headerBytes == 0)
        }
    }

    @Test func whenTheRestCannotHoldTheModelTheClientGetsAClearErrorAtOnce() async throws {
        let c = try await Self.cluster(nodes: 3)
        defer { c.stop() }
        let (driver, connection) = try c.driver()
        defer { connection.close() }
        let plan = try await c.status().plan
        let victim = try #require(c.member(at: plan.stages[2].address))
        let started = Date()
        let results = await runConcurrently(driver, [clusterRequests()[0]]) { DispatchQueue.global().async { victim.stop() } }
        guard case let .failed(error) = results[0].end else {
            Issue.record("expected a failure, got \(String(describing: results[0].end))")
            return
        }
        #expect("\(error)".contains("bytes missing"))
        #expect(Date().timeIntervalSince(started) < 10)
        await driver.close()
    }
}
