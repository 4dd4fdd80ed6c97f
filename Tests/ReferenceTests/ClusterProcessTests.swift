#if canImport(Glibc)
import Glibc
#endif
import ClusterTrust
import ControlPlane
import Dispatch
import Foundation
import GGUF
import Models
import NIOCore
import NIOPosix
import NIOSSL
import Node
import PipelineClient
import StarStream
import Synchronization
import Testing
import TestSupport

/// A hub and `pangalactic node --join` processes on loopback, serving SmolLM2: the hub issue's
/// acceptance checks. Every fault (kill -9 of the first, a middle or the last node, a join, a
/// SIGTERM drain, a hub restart) happens while four requests generate, greedy and seeded at
/// temperature 0.8, and each request must end with the text of an uninterrupted run.
@Suite(.serialized, .enabled(if: ReferenceData.available && NodeBinary.available))
struct ClusterProcessTests {
    static let model = ReferenceData.modelsDirectory.appendingPathComponent(ReferenceData.models[0].modelFile).path
    static let token = "cluster-process-test"
    /// Each node can hold about a third of SmolLM2 with the hub's KV reserve (ctx 512 × 4
    /// sequences) and its 64 MiB overhead, so three must serve together.
    static let budget = 150 << 20

    /// The processes of one cluster.
    final class Processes: @unchecked Sendable {
        let hubPort: Int
        let statePath: String
        private(set) var hub: Process?
        private(set) var nodes: [String: Process] = [:]
        private(set) var addresses: [String: String] = [:]

        /// Every process runs mutual TLS with credentials from this test's own authority, as a
        /// cluster of machines does.
        let authority: ClusterAuthority
        let trustDirectory: String
        /// The test's own driver and `generate`: gateway credentials.
        let gateway: MemberCredentials

        init() throws {
            hubPort = try NodeAddress.freeLoopbackPort()
            let unique = UInt64.random(in: 1 ... .max)
            statePath = NSTemporaryDirectory() + "pangalactic-hub-\(unique).state"
            trustDirectory = NSTemporaryDirectory() + "pangalactic-trust-\(unique)"
            authority = try ClusterAuthority.create(clusterName: "test")
            gateway = try authority.makeMember(name: "test-gateway", role: .gateway)
            try gateway.save(to: trustDirectory + "/gateway")
        }

        /// A folder with credentials for member `name` in `role`.
        func credentials(_ name: String, role: ClusterRole) throws -> String {
            let directory = trustDirectory + "/" + name
            if !MemberCredentials.exist(in: directory) { try authority.makeMember(name: name, role: role).save(to: directory) }
            return directory
        }

        static func launch(_ arguments: [String], log: String? = nil) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: NodeBinary.path)
            p.arguments = arguments
            if let log {
                FileManager.default.createFile(atPath: log, contents: nil)
                p.standardError = FileHandle(forWritingAtPath: log)
            } else {
                p.standardError = ProcessInfo.processInfo.environment["PANGALACTIC_TEST_LOGS"] == "1" ? FileHandle.standardError : FileHandle.nullDevice
            }
            p.standardOutput = FileHandle.nullDevice
            var environment = ProcessInfo.processInfo.environment
            environment["PANGALACTIC_MODEL"] = nil
            environment["PANGALACTIC_CLUSTER_TOKEN"] = ClusterProcessTests.token
            p.environment = environment
            try p.run()
            return p
        }

        func startHub(store: String? = nil) throws {
            hub = try Self.launch(["hub", "--listen", "127.0.0.1:\(hubPort)", "--ctx", "512", "--max-sequences", "4", "--state", statePath,
                                   "--tls-dir", try credentials("hub", role: .hub)]
                + (store.map { ["--store", $0] } ?? []))
        }

        /// A node with the model file, or (with `cache`) one with none that pulls from the hub's store.
        func startNode(_ name: String, budget: Int = ClusterProcessTests.budget, cache: String? = nil, log: String? = nil) throws {
            let port = try NodeAddress.freeLoopbackPort()
            addresses[name] = "127.0.0.1:\(port)"
            let source = cache.map { ["--cache-dir", $0] } ?? ["-m", ClusterProcessTests.model]
            nodes[name] = try Self.launch(["node", "--join", "127.0.0.1:\(hubPort)", "--listen", "127.0.0.1:\(port)"] + source
                + ["--memory", "\(budget)", "--name", name, "--threads", "1", "--tls-dir", try credentials(name, role: .node)], log: log)
        }

        func signal(_ name: String, _ signal: Int32) {
            guard let p = nodes[name] else { return }
            kill(p.processIdentifier, signal)
        }

        func killHub() {
            guard let hub else { return }
            kill(hub.processIdentifier, SIGKILL)
            hub.waitUntilExit()
        }

        func name(at address: String) -> String? { addresses.first { $0.value == address }?.key }

        func stop() {
            statusConnection.withLock { $0 }?.close()
            for p in Array(nodes.values) + [hub].compactMap({ $0 }) where p.isRunning { kill(p.processIdentifier, SIGKILL) }
            for p in Array(nodes.values) + [hub].compactMap({ $0 }) { p.waitUntilExit() }
            unlink(statePath)
            try? FileManager.default.removeItem(atPath: trustDirectory)
        }

        func connection() throws -> HubConnection { try HubConnection(host: "127.0.0.1", port: hubPort, security: .mutualTLS(gateway)) }

        /// One connection for the test's own status calls, replaced after a failed call: a
        /// connection first tried before the hub listened can sit in gRPC's reconnect backoff
        /// for longer than the retries below.
        private let statusConnection = Mutex<HubConnection?>(nil)

        /// The hub's status, retried for up to 30 s (a loaded machine, a restarting hub).
        func status() async throws -> Pangalactic_Control_V1_ClusterStatusReply {
            let deadline = Date().addingTimeInterval(30)
            while true {
                do {
                    let c = try statusConnection.withLock { c in
                        if let c { return c }
                        let made = try connection()
                        c = made
                        return made
                    }
                    do {
                        return try await c.control.clusterStatus(.init(), options: HubConnection.deadline(seconds: 5))
                    } catch {
                        statusConnection.withLock { $0 = nil }
                        c.close()
                        throw error
                    }
                } catch {
                    guard Date() < deadline else { throw error }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }

        func waitUntilReady(stages: Int, seconds: Double = 60) async throws {
            try await waitFor("a ready plan of \(stages) stages", seconds: seconds) { [self] in
                guard let s = try? await status() else { return false }
                return s.plan.ready && s.plan.stages.count == stages
            }
        }

        /// `pangalactic status --json`, as an operator reads it.
        func statusJSON() throws -> [String: Any] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: NodeBinary.path)
            p.arguments = ["status", "--hub", "127.0.0.1:\(hubPort)", "--json", "--tls-dir", trustDirectory + "/gateway"]
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return object
        }

        /// After a fault, every node still alive ends with no active or waiting sequence.
        func expectNoSequencesLeft() async throws {
            try await waitFor("every live node to free its sequences (status --json)", seconds: 15) { [self] in
                guard let json = try? statusJSON(), let nodes = json["nodes"] as? [[String: Any]], !nodes.isEmpty else { return false }
                return nodes.filter { ($0["state"] as? String) != "dead" }.allSatisfy {
                    ($0["active"] as? Int) == 0 && ($0["waiting"] as? Int) == 0
                }
            }
        }
    }

    /// Starts a hub and `count` nodes and waits for a 3-stage plan.
    static func cluster(nodes count: Int) async throws -> Processes {
        let c = try Processes()
        try c.startHub()
        for i in 0 ..< count { try c.startNode("n\(i)") }
        try await c.waitUntilReady(stages: 3)
        return c
    }

    static func requests(_ stop: [Int32]) throws -> [PipelineRequest] {
        let reference = try ReferenceData.load(ReferenceData.Reference.self, ReferenceData.models[0].referenceFile)
        return (0 ..< 4).map { i in
            let prompt = reference.continuations[i].prompt_tokens
            let sampling = i % 2 == 0 ? WireSampling.greedy
                : WireSampling(temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1, frequencyPenalty: 0,
                               presencePenalty: 0, penaltyLastN: 0, seed: UInt64(42 + i))
            // No stop tokens: every request runs its full length, so a fault always lands mid-way.
            return PipelineRequest(prompt: prompt, maxNewTokens: 48, sampling: sampling, stopTokens: stop)
        }
    }

    static func driver(_ c: Processes) throws -> (ClusterDriver, HubConnection) {
        let connection = try c.connection()
        return (ClusterDriver(source: HubRoutePlans(connection: connection), clusterToken: token, security: .mutualTLS(c.gateway),
                              logger: quietLogger), connection)
    }

    /// The uninterrupted run, on a cluster of its own.
    static let uninterrupted: Mutex<[[Int32]]?> = Mutex(nil)

    static func expected() async throws -> [[Int32]] {
        if let cached = uninterrupted.withLock({ $0 }) { return cached }
        let c = try await cluster(nodes: 3)
        defer { c.stop() }
        let (driver, connection) = try driver(c)
        defer { connection.close() }
        let results = await runConcurrently(driver, try requests([]))
        await driver.close()
        let tokens = results.map(\.tokens)
        for (i, r) in results.enumerated() {
            guard case .done(.length, 48) = r.end else { throw NodeError.network("uninterrupted request \(i) ended with \(String(describing: r.end))") }
        }
        uninterrupted.withLock { $0 = tokens }
        return tokens
    }

    static func expectIdentical(_ got: [(tokens: [Int32], end: PipelineEvent?)], _ expected: [[Int32]], _ label: String) {
        for (i, (r, want)) in zip(got, expected).enumerated() {
            #expect(r.tokens == want, "\(label): request \(i) differs (\(r.tokens.count) tokens, ended \(String(describing: r.end)))")
            guard case .done(.length, 48) = r.end else {
                Issue.record("\(label): request \(i) ended with \(String(describing: r.end))")
                continue
            }
        }
    }

    @Test func budgetsPlaceTheModelAndTooLittleMemoryNamesTheMissingBytes() async throws {
        let c = try Processes()
        defer { c.stop() }
        try c.startHub()
        for (name, budget) in [("small", 130 << 20), ("medium", 140 << 20), ("large", 150 << 20)] { try c.startNode(name, budget: budget) }
        try await c.waitUntilReady(stages: 3)
        let status = try await c.status()
        let layers = status.plan.stages.map { ($0.firstLayer, $0.endLayer) }
        #expect(layers.first?.0 == 0 && layers.last?.1 == 30)
        for (a, b) in zip(layers, layers.dropFirst()) { #expect(a.1 == b.0) }
        for n in status.nodes {
            #expect(n.hasLayers_p, "\(n.name) serves")
            #expect(n.memoryBytes <= n.budgetBytes, "\(n.name): \(n.memoryBytes) reserved of \(n.budgetBytes)")
        }
        // No two of them could hold it: every budget is used (how the layers split between them
        // follows the measured speeds; PlacementTests check that rule).
        #expect(status.plan.stages.count == 3)

        // The driver needs no model file: `generate --hub` tokenizes from the hub's metadata and
        // prints the single process's greedy text.
        func generate(_ arguments: [String]) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: NodeBinary.path)
            p.arguments = ["generate", "--prompt", "The capital of France is", "--temp", "0", "-n", "16"] + arguments
            var environment = ProcessInfo.processInfo.environment
            environment["PANGALACTIC_CLUSTER_TOKEN"] = Self.token
            p.environment = environment
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            return String(decoding: data, as: UTF8.self)
        }
        let cluster = try generate(["--hub", "127.0.0.1:\(c.hubPort)", "--tls-dir", c.trustDirectory + "/gateway"])
        #expect(cluster == (try generate(["-m", Self.model])))
        #expect(cluster.count > 10)

        // Three nodes of 100 MiB cannot hold it: the plan names the missing bytes.
        let short = try Processes()
        defer { short.stop() }
        try short.startHub()
        for i in 0 ..< 3 { try short.startNode("s\(i)", budget: 100 << 20) }
        try await waitFor("three registered nodes", seconds: 60) { (try? await short.status().nodes.count) == 3 }
        let problem = try await short.status().plan.problem
        #expect(problem.contains("bytes missing"), "\(problem)")
        let json = try short.statusJSON()
        #expect((json["problem"] as? String)?.contains("bytes missing") == true)
        #expect((json["nodes"] as? [[String: Any]])?.allSatisfy { $0["layers"] is NSNull } == true)
    }

    /// The security issue's refusals against a live `pangalactic node` process (mutual TLS):
    /// a client without TLS, one with a certificate from another authority and one with a
    /// wrong cluster token each get no HELLO, each leaves a line in the node's log that names
    /// the peer and the reason, and the node goes on serving a good client.
    @Test func aNodeProcessRefusesImpostorsWithALogLineAndKeepsServing() async throws {
        let c = try Processes()
        defer { c.stop() }
        try c.startHub()
        let log = NSTemporaryDirectory() + "pangalactic-node-\(UInt64.random(in: 1 ... .max)).log"
        defer { unlink(log) }
        try c.startNode("solo", budget: 1 << 30, log: log)
        try await c.waitUntilReady(stages: 1)
        let address = try #require(c.addresses["solo"])
        let port = try #require(address.split(separator: ":").last.flatMap { Int($0) })
        let digest = try GGUFFile(path: Self.model).modelDigest()
        let stranger = try ClusterAuthority.create(clusterName: "other").makeMember(name: "intruder", role: .gateway)
        @Sendable func refusals() -> [Substring] {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").filter { $0.contains("peer refused") }
        }
        let attempts: [(what: String, security: TransportSecurity, token: String)] = [
            ("plain TCP", .insecure, Self.token),
            ("another authority's certificate", .mutualTLS(stranger), Self.token),
            ("a wrong cluster token", .mutualTLS(c.gateway), "wrong-token"),
        ]
        for (i, attempt) in attempts.enumerated() {
            do {
                let d = try await PipelineDriver.connect(host: "127.0.0.1", port: port, clusterToken: attempt.token, modelDigest: digest,
                                                         security: attempt.security)
                await d.close()
                Issue.record("node 0 let in a client with \(attempt.what)")
            } catch {}
            try await waitFor("a log line for \(attempt.what)", seconds: 10) { refusals().count > i }
        }
        // A stranger that trusts this cluster's authority (it is public) but presents its own:
        // the node itself must refuse the certificate, and no byte it sends gets through.
        let reply = try await Self.tlsExchange(port: port, certificate: stranger, trusting: c.gateway.authorityPEM,
                                               send: StarStreamCodec.encode(StarStreamFrame(payload: .hello(Hello(
                                                   role: .driver, clusterToken: Self.token, modelDigest: digest)))))
        #expect(reply.isEmpty, "the node answered a stranger with \(reply.count) bytes")
        try await waitFor("a log line for the stranger", seconds: 10) { refusals().count > attempts.count }
        let lines = refusals()
        #expect(lines.allSatisfy { $0.contains("peer=") && $0.contains("127.0.0.1") && $0.contains("reason=") }, "\(lines)")
        #expect(lines.contains { $0.contains("reason=HELLO refused: wrong cluster token") }, "\(lines)")
        #expect(lines.contains { $0.contains("TLS handshake failed") && $0.contains("CERTIFICATE_VERIFY_FAILED") }, "\(lines)")
        #expect(lines.contains { $0.contains("TLS handshake failed") && $0.contains("WRONG_VERSION_NUMBER") }, "the plaintext client: \(lines)")

        let driver = try await PipelineDriver.connect(host: "127.0.0.1", port: port, clusterToken: Self.token, modelDigest: digest,
                                                      security: .mutualTLS(c.gateway), stallTimeoutSeconds: 30)
        try await driver.waitUntilReady(seconds: 30)
        var tokens = 0
        var end: PipelineEvent?
        for await event in driver.events(PipelineRequest(prompt: [1, 504, 3458, 282], maxNewTokens: 8, sampling: .greedy, stopTokens: [])) {
            if case .token = event { tokens += 1 } else { end = event }
        }
        await driver.close()
        #expect(tokens == 8)
        if case .done = end {} else { Issue.record("the good client's request ended with \(String(describing: end))") }
    }

    /// A TLS client with `certificate`'s chain and key that trusts `trusting` (PEM): sends `send`
    /// and returns the plaintext it gets back before the connection closes (at most 10 s).
    static func tlsExchange(port: Int, certificate: MemberCredentials, trusting: String, send: ByteBuffer) async throws -> [UInt8] {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(certificate.certificatePEM.utf8), format: .pem))]
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(certificate.privateKeyPEM.utf8), format: .pem))
        configuration.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(trusting.utf8), format: .pem)])
        configuration.certificateVerification = .noHostnameVerification
        let context = try NIOSSLContext(configuration: configuration)
        let received = ReceivedBytes()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(received)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        channel.writeAndFlush(send, promise: nil)
        try await waitFor("the node to close the stranger's connection", seconds: 10) { !channel.isActive }
        return received.bytes.withLock { $0 }
    }

    final class ReceivedBytes: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = Mutex<[UInt8]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            bytes.withLock { $0 += buffer.readableBytesView }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }

    enum Victim: String, CaseIterable, Sendable { case first, middle, last }

    @Test(arguments: Victim.allCases)
    func killingANodeMidGenerationLosesNothing(_ victim: Victim) async throws {
        let expected = try await Self.expected()
        let c = try await Self.cluster(nodes: 4)
        defer { c.stop() }
        let plan = try await c.status().plan
        let stage = plan.stages[victim == .first ? 0 : victim == .middle ? 1 : 2]
        let name = try #require(c.name(at: stage.address))
        let (driver, connection) = try Self.driver(c)
        defer { connection.close() }
        let results = await runConcurrently(driver, try Self.requests([]), after: 8) { c.signal(name, SIGKILL) }
        Self.expectIdentical(results, expected, "kill -9 of the \(victim) node")
        #expect(driver.replays.load(ordering: .relaxed) >= 1)
        let after = try await c.status()
        #expect(after.plan.epoch > plan.epoch)
        #expect(after.nodes.first { $0.name == name }?.state == "dead")
        try await c.expectNoSequencesLeft()
        await driver.close()
    }

    @Test func aJoiningNodeAndADrainingNodeDropNoRequest() async throws {
        let expected = try await Self.expected()
        let c = try await Self.cluster(nodes: 3)
        defer { c.stop() }
        let (driver, connection) = try Self.driver(c)
        defer { connection.close() }
        // A fourth node joins mid-run: placed or kept as a standby, and nothing is dropped.
        let joined = await runConcurrently(driver, try Self.requests([]), after: 8) { DispatchQueue.global().async { try? c.startNode("late") } }
        Self.expectIdentical(joined, expected, "a node joining")
        try await waitFor("the fourth node to register", seconds: 30) { (try? await c.status().nodes.count) == 4 }
        try await c.waitUntilReady(stages: 3)
        // A serving node stopped with SIGTERM drains: the hub plans it out first.
        let plan = try await c.status().plan
        let leaving = try #require(c.name(at: plan.stages[1].address))
        let drained = await runConcurrently(driver, try Self.requests([]), after: 8) { c.signal(leaving, SIGTERM) }
        Self.expectIdentical(drained, expected, "a node draining")
        try await waitFor("the drained node to exit", seconds: 30) { c.nodes[leaving]?.isRunning == false }
        #expect(c.nodes[leaving]?.terminationStatus == 0)
        let after = try await c.status()
        #expect(!after.plan.stages.map(\.address).contains(plan.stages[1].address))
        try await c.expectNoSequencesLeft()
        await driver.close()
    }

    @Test func aHubRestartDoesNotDisturbRequestsAndTheHubRecoversTheCluster() async throws {
        let expected = try await Self.expected()
        let c = try await Self.cluster(nodes: 4)
        defer { c.stop() }
        let before = try await c.status()
        let (driver, connection) = try Self.driver(c)
        defer { connection.close() }
        let first = c.hub?.processIdentifier
        let results = await runConcurrently(driver, try Self.requests([]), after: 8) {
            DispatchQueue.global().async {
                c.killHub()
                try? c.startHub()
            }
        }
        try await waitFor("the hub to restart", seconds: 30) { c.hub?.processIdentifier != first && c.hub?.isRunning == true }
        Self.expectIdentical(results, expected, "a hub restart")
        #expect(driver.replays.load(ordering: .relaxed) == 0, "the data plane did not notice")
        // The restarted hub knows the cluster from its snapshot, and the heartbeats confirm it.
        try await c.waitUntilReady(stages: 3)
        let after = try await c.status()
        #expect(after.plan.epoch == before.plan.epoch)
        #expect(after.plan.stages == before.plan.stages)
        #expect(after.nodes.count == 4 && after.nodes.allSatisfy { $0.state == "active" || $0.state == "standby" })
        try await c.expectNoSequencesLeft()
        await driver.close()
    }

    /// The model store's acceptance check: a store, a hub that names it, and three nodes with
    /// no model file. Each node pulls only its stage's tensors (what it counted, index
    /// included, is within 5% of their bytes; the middle one pulls under 40% of the file), and
    /// the cluster gives the tokens of the local-file cluster.
    @Test func aStoreFedClusterPullsEachNodesShareAndGivesTheSameTokens() async throws {
        let expected = try await Self.expected()
        let folder = NSTemporaryDirectory() + "pangalactic-store-test-\(UInt64.random(in: 1 ... .max))"
        try FileManager.default.createDirectory(atPath: folder + "/models", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createSymbolicLink(atPath: folder + "/models/smollm2.gguf", withDestinationPath: Self.model)
        let storePort = try NodeAddress.freeLoopbackPort()
        let store = try Processes.launch(["store", "--dir", folder + "/models", "--listen", "127.0.0.1:\(storePort)"])
        defer { kill(store.processIdentifier, SIGKILL); store.waitUntilExit() }
        let c = try Processes()
        defer { c.stop() }
        // The store listens once it has indexed its folder; the hub reads that index at start.
        try await waitFor("the store to listen", seconds: 60) { Self.accepts(port: storePort) }
        try c.startHub(store: "http://127.0.0.1:\(storePort)")
        for i in 0 ..< 3 { try c.startNode("s\(i)", cache: folder + "/cache\(i)", log: folder + "/s\(i).log") }
        try await c.waitUntilReady(stages: 3, seconds: 120)
        let (driver, connection) = try Self.driver(c)
        defer { connection.close() }
        Self.expectIdentical(await runConcurrently(driver, try Self.requests([])), expected, "a store-fed cluster")
        await driver.close()

        let fileBytes = try #require(try FileManager.default.attributesOfItem(atPath: Self.model)[.size] as? Int)
        let plan = try await c.status().plan
        for (i, stage) in plan.stages.enumerated() {
            let name = try #require(c.name(at: stage.address))
            let log = try String(contentsOfFile: folder + "/\(name).log", encoding: .utf8)
            let line = try #require(log.split(separator: "\n").last { $0.contains("layers ready from the store") }, "\(name) logged no pull")
            func field(_ key: String) -> Int? {
                guard let r = line.range(of: key + "=") else { return nil }
                return Int(line[r.upperBound...].prefix { $0.isNumber })
            }
            let pulled = try #require(field("pulled_total")), assigned = try #require(field("tensor_bytes"))
            #expect(pulled >= assigned && Double(pulled) <= Double(assigned) * 1.05, "\(name): pulled \(pulled) for \(assigned) bytes of tensors")
            if i == 1 { #expect(Double(pulled) < 0.4 * Double(fileBytes), "the middle node pulled \(pulled) of \(fileBytes) bytes") }
        }
    }

    /// Whether something accepts TCP connections on the loopback port.
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
