import ControlPlane
import Foundation
import Hub
import Synchronization
import Testing
import TestSupport

/// The hub's rules through `HubCore` with a hand-driven clock: registration and refusals,
/// deployment, liveness, failover, drain, join and snapshots.
struct HubCoreTests {
    final class Clock: Sendable {
        let now = Mutex<Double>(1000)
        func advance(_ s: Double) { now.withLock { $0 += s } }
        func read() -> Double { now.withLock { $0 } }
    }

    /// 10 layers of 1 MB, embedding 0.5 MB, output 0.6 MB; KV 100 bytes per layer and position.
    static func layout(digest: UInt8 = 7) -> Pangalactic_Control_V1_ModelLayout {
        var m = Pangalactic_Control_V1_ModelLayout()
        m.digest = Data(repeating: digest, count: 32)
        m.name = "test-model"
        m.architecture = "llama"
        m.layerCount = 10
        m.layerBytes = [UInt64](repeating: 1_000_000, count: 10)
        m.embeddingBytes = 500_000
        m.outputBytes = 600_000
        m.kvBytesPerLayerPosition = 100
        return m
    }

    static var settings: HubSettings {
        var s = HubSettings()
        s.contextLength = 100
        s.maxSequences = 10 // KV reserve: 1000 positions × 100 bytes = 0.1 MB per layer
        s.overheadBytes = 1_000_000
        s.hopSeconds = 0.0001
        s.clusterToken = "secret"
        return s
    }

    static func core(_ clock: Clock, store: ClusterStore = MemoryClusterStore(), settings: HubSettings = settings) throws -> HubCore {
        try HubCore(settings: settings, store: store, logger: quietLogger, clock: { clock.read() })
    }

    static func request(_ id: String, budget: Int, speed: Double = 1e9, digest: UInt8 = 7, token: String = "secret") -> Pangalactic_Control_V1_RegisterRequest {
        var r = Pangalactic_Control_V1_RegisterRequest()
        r.nodeID = id
        r.name = id
        r.address = "127.0.0.1:\(7000 + (Int(id.dropFirst()) ?? 0))"
        r.memoryBudgetBytes = UInt64(budget)
        r.speedBytesPerSecond = speed
        r.version = "test"
        r.model = layout(digest: digest)
        r.clusterToken = token
        return r
    }

    /// A heartbeat from `id` serving `epoch`; returns the assignment the hub answers with.
    @discardableResult
    static func beat(_ core: HubCore, _ id: String, epoch: UInt64, serving: Bool = true, active: UInt32 = 0) throws -> Pangalactic_Control_V1_Assignment? {
        var h = Pangalactic_Control_V1_NodeHeartbeat()
        h.nodeID = id
        h.epoch = epoch
        h.serving = serving
        h.load.activeSequences = active
        return try core.heartbeat(h)
    }

    /// Every node heartbeats with the epoch of the assignment it is handed, as a live node does.
    static func settle(_ core: HubCore, _ ids: [String]) throws {
        for id in ids {
            let a = try beat(core, id, epoch: 0, serving: false)
            try beat(core, id, epoch: a?.epoch ?? core.epoch)
        }
    }

    static func layers(_ core: HubCore) -> [String] {
        core.routePlan.stages.map { "\($0.nodeID):\($0.firstLayer)..<\($0.endLayer)" }
    }

    @Test func registrationChecksTokenModelAndFields() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        #expect(throws: HubError.unauthorized) { try core.register(Self.request("n1", budget: 1 << 30, token: "wrong")) }
        var bad = Self.request("n1", budget: 1 << 30)
        bad.address = "no-port"
        #expect(throws: HubError.self) { try core.register(bad) }
        bad = Self.request("n1", budget: 0)
        #expect(throws: HubError.self) { try core.register(bad) }
        bad = Self.request("n1", budget: 1 << 30)
        bad.model.layerBytes.removeLast()
        #expect(throws: HubError.self) { try core.register(bad) }
        bad = Self.request("n1", budget: 1 << 30)
        bad.speedBytesPerSecond = .nan
        #expect(throws: HubError.self) { try core.register(bad) }

        let reply = try core.register(Self.request("n1", budget: 1 << 30))
        #expect(reply.needsModelInfo)
        // A node with another model is refused with both digests named.
        do {
            _ = try core.register(Self.request("n2", budget: 1 << 30, digest: 9))
            Issue.record("a different model was accepted")
        } catch {
            let message = "\(error)"
            #expect(message.contains(String(repeating: "09", count: 32)))
            #expect(message.contains(String(repeating: "07", count: 32)))
        }
        #expect(core.status.nodes.count == 1)
    }

    @Test func budgetsDecideTheRangesAndTheModelDeploysOnlyWhenItFits() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        // Each stage: 1 MB overhead + 1.1 MB per layer (weights + KV), + 0.5 MB embedding on the
        // first, + 0.6 MB output on the last. 4.5 MB holds at most 3 layers, 2.7 MB 1, 6 MB 4,
        // 3.4 MB 2: the first three together hold 8 of the 10 layers.
        try core.register(Self.request("n1", budget: 4_500_000))
        try core.register(Self.request("n2", budget: 2_700_000))
        #expect(core.routePlan.stages.isEmpty)
        #expect(core.routePlan.problem.contains("bytes missing"))
        try core.register(Self.request("n3", budget: 6_000_000))
        #expect(core.routePlan.stages.isEmpty, "10 layers need more than 3 + 1 + 4")
        try core.register(Self.request("n4", budget: 3_400_000))
        let plan = core.routePlan
        #expect(plan.problem.isEmpty)
        #expect(plan.stages.count == 4)
        let status = core.status
        for n in status.nodes where n.hasLayers_p {
            #expect(n.memoryBytes <= n.budgetBytes, "\(n.name) reserves \(n.memoryBytes) of \(n.budgetBytes)")
        }
        // Contiguous and complete.
        #expect(plan.stages.first?.firstLayer == 0 && plan.stages.last?.endLayer == 10)
        for (a, b) in zip(plan.stages, plan.stages.dropFirst()) { #expect(a.endLayer == b.firstLayer) }
        // Not ready until every stage serves the epoch.
        #expect(!plan.ready)
        try Self.settle(core, ["n1", "n2", "n3", "n4"])
        #expect(core.routePlan.ready)
    }

    @Test func assignmentsChainTheRingAndStandbysGetInactiveOnes() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        try core.register(Self.request("n1", budget: 8_000_000))
        try core.register(Self.request("n2", budget: 8_000_000))
        // Two stages of up to 8 MB each hold the 10 layers; a third node adds nothing.
        let ids = Self.layers(core).map { String($0.prefix(2)) }
        #expect(ids.count == 2)
        let a = try #require(try Self.beat(core, ids[0], epoch: 0))
        let b = try #require(try Self.beat(core, ids[1], epoch: 0))
        #expect(a.active && b.active)
        #expect(a.firstLayer == 0 && a.endLayer == b.firstLayer && b.endLayer == 10)
        #expect(a.nextAddress == core.status.nodes.first { $0.nodeID == ids[1] }?.address)
        #expect(b.nextAddress == core.status.nodes.first { $0.nodeID == ids[0] }?.address)
        #expect(a.contextLength == 100 && a.maxSequences == 10 && a.wire == .wireF32)
        // A node serving the current epoch gets no assignment back.
        #expect(try Self.beat(core, ids[0], epoch: a.epoch) == nil)
        try core.register(Self.request("n3", budget: 8_000_000, speed: 1e9))
        let c = try #require(try Self.beat(core, "n3", epoch: 0))
        #expect(!c.active)
        #expect(core.status.nodes.first { $0.nodeID == "n3" }?.state == "standby")
    }

    @Test func aNodeThatMissesThreeHeartbeatsIsDeadAndItsLayersMoveToTheStandby() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        for id in ["n1", "n2", "n3"] { try core.register(Self.request(id, budget: 8_000_000)) }
        try Self.settle(core, ["n1", "n2", "n3"])
        let before = core.routePlan
        #expect(before.ready && before.stages.count == 2)
        let serving = Set(before.stages.map(\.nodeID))
        let standby = try #require(["n1", "n2", "n3"].first { !serving.contains($0) })
        let victim = before.stages[1].nodeID
        let survivor = before.stages[0].nodeID
        // Two seconds of silence from the victim: still alive. Others keep beating.
        for _ in 0 ..< 2 {
            clock.advance(1)
            try Self.beat(core, survivor, epoch: before.epoch)
            try Self.beat(core, standby, epoch: before.epoch)
            core.checkLiveness()
        }
        #expect(core.epoch == before.epoch)
        clock.advance(1.5)
        try Self.beat(core, survivor, epoch: before.epoch)
        try Self.beat(core, standby, epoch: before.epoch)
        core.checkLiveness()
        #expect(core.epoch == before.epoch + 1)
        #expect(core.status.nodes.first { $0.nodeID == victim }?.state == "dead")
        let after = core.routePlan
        #expect(Set(after.stages.map(\.nodeID)) == [survivor, standby])
        #expect(!after.ready)
        try Self.settle(core, [survivor, standby])
        #expect(core.routePlan.ready)
    }

    @Test func aBrokenHeartbeatStreamKillsTheNodeAtOnceUnlessItReconnected() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        for id in ["n1", "n2", "n3"] { try core.register(Self.request(id, budget: 8_000_000)) }
        try Self.settle(core, ["n1", "n2", "n3"])
        let epoch = core.epoch
        let victim = core.routePlan.stages[0].nodeID
        let (first, _, _) = core.openStream(for: victim)
        let (second, _, _) = core.openStream(for: victim)
        core.closeStream(for: victim, serial: first)
        #expect(core.epoch == epoch, "the node reconnected; the old stream ending is not a death")
        core.closeStream(for: victim, serial: second)
        #expect(core.epoch == epoch + 1)
        #expect(core.status.nodes.first { $0.nodeID == victim }?.state == "dead")
    }

    @Test func whenTheSurvivorsCannotHoldTheModelThePlanNamesTheMissingBytes() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        try core.register(Self.request("n1", budget: 8_000_000))
        try core.register(Self.request("n2", budget: 8_000_000))
        try Self.settle(core, ["n1", "n2"])
        let (serial, _, _) = core.openStream(for: "n2")
        core.closeStream(for: "n2", serial: serial)
        let plan = core.routePlan
        #expect(plan.stages.isEmpty)
        #expect(plan.problem.contains("bytes missing"))
        #expect(!plan.ready)
    }

    @Test func drainingReplansWithoutTheNodeOrSaysTheRestCannotHoldTheModel() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        for id in ["n1", "n2", "n3"] { try core.register(Self.request(id, budget: 8_000_000)) }
        try Self.settle(core, ["n1", "n2", "n3"])
        let active = core.routePlan.stages.map(\.nodeID)
        let reply = try core.drain(active[0])
        #expect(reply.replanned)
        #expect(reply.epoch == core.epoch)
        #expect(!core.routePlan.stages.map(\.nodeID).contains(active[0]))
        #expect(core.status.nodes.first { $0.nodeID == active[0] }?.state == "draining")
        // A drained standby changes nothing.
        let epoch = core.epoch
        let next = core.routePlan.stages.map(\.nodeID)
        let drainAgain = try core.drain(next[0])
        #expect(!drainAgain.replanned)
        #expect(core.epoch == epoch + 1)
        #expect(core.routePlan.problem.contains("bytes missing"))
        #expect(throws: HubError.unknownNode("nope")) { try core.drain("nope") }
    }

    @Test func aFasterJoinerReplansAndASlowerOneStandsBy() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        try core.register(Self.request("n1", budget: 20_000_000, speed: 1e9))
        #expect(Self.layers(core) == ["n1:0..<10"])
        let epoch = core.epoch
        try core.register(Self.request("n2", budget: 20_000_000, speed: 1.02e9))
        #expect(core.epoch == epoch, "2% faster is within the noise of the speed probes")
        #expect(core.status.nodes.first { $0.nodeID == "n2" }?.state == "standby")
        try core.register(Self.request("n3", budget: 20_000_000, speed: 2e9))
        #expect(core.epoch == epoch + 1)
        #expect(Self.layers(core) == ["n3:0..<10"])
    }

    @Test func aRestartedHubRecoversThePlanFromItsSnapshotAndTheHeartbeats() throws {
        let clock = Clock()
        let store = MemoryClusterStore()
        let core = try Self.core(clock, store: store)
        for id in ["n1", "n2", "n3"] { try core.register(Self.request(id, budget: 8_000_000)) }
        try Self.settle(core, ["n1", "n2", "n3"])
        let plan = core.routePlan
        #expect(plan.ready)
        core.waitForSaves()

        let restarted = try Self.core(clock, store: store)
        #expect(restarted.epoch == plan.epoch)
        #expect(restarted.routePlan.stages == plan.stages)
        #expect(restarted.status.nodes.map(\.state).allSatisfy { $0 == "recovering" })
        #expect(!restarted.routePlan.ready)
        // Nodes come back with their ids, keep their layers and the epoch stays.
        for id in ["n1", "n2", "n3"] {
            try restarted.register(Self.request(id, budget: 8_000_000))
            #expect(try Self.beat(restarted, id, epoch: plan.epoch) == nil)
        }
        #expect(restarted.routePlan.ready)
        #expect(restarted.epoch == plan.epoch)
        restarted.waitForSaves()

        // A node that does not come back within the grace is dead, and the plan moves.
        let again = try Self.core(clock, store: store)
        let missing = plan.stages[0].nodeID
        var waited = 0.0
        while waited < Self.settings.recoveryGraceSeconds - 0.5 {
            for id in ["n1", "n2", "n3"] where id != missing { try Self.beat(again, id, epoch: plan.epoch) }
            again.checkLiveness()
            #expect(again.epoch == plan.epoch, "still within the grace after \(waited) s")
            clock.advance(0.5)
            waited += 0.5
        }
        clock.advance(1)
        for id in ["n1", "n2", "n3"] where id != missing { try Self.beat(again, id, epoch: plan.epoch) }
        again.checkLiveness()
        #expect(again.epoch == plan.epoch + 1)
        #expect(!again.routePlan.stages.map(\.nodeID).contains(missing))
    }

    @Test func aHubThatLostItsStateNumbersItsEpochsAboveTheNodes() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        var returning = Self.request("n1", budget: 20_000_000)
        returning.servingEpoch = 41
        try core.register(returning)
        let a = try #require(try Self.beat(core, "n1", epoch: 41, serving: true))
        #expect(a.epoch > 41 && a.active)
    }

    @Test func unknownNodesAreToldToRegisterAndDeadOnesAreForgottenLater() throws {
        let clock = Clock()
        var settings = Self.settings
        settings.deadRetentionSeconds = 10
        let core = try Self.core(clock, settings: settings)
        #expect(throws: HubError.unknownNode("ghost")) { try Self.beat(core, "ghost", epoch: 0) }
        try core.register(Self.request("n1", budget: 20_000_000))
        clock.advance(4)
        core.checkLiveness()
        #expect(core.status.nodes.first?.state == "dead")
        clock.advance(11)
        core.checkLiveness()
        #expect(core.status.nodes.isEmpty)
    }

    @Test func aDeadNodeThatHeartbeatsAgainComesBackAsAJoiner() throws {
        let clock = Clock()
        let core = try Self.core(clock)
        try core.register(Self.request("n1", budget: 8_000_000))
        try core.register(Self.request("n2", budget: 8_000_000))
        try core.register(Self.request("n3", budget: 8_000_000))
        try Self.settle(core, ["n1", "n2", "n3"])
        let (serial, _, _) = core.openStream(for: "n3")
        core.closeStream(for: "n3", serial: serial)
        #expect(core.status.nodes.first { $0.nodeID == "n3" }?.state == "dead")
        try Self.beat(core, "n3", epoch: core.epoch, serving: false)
        #expect(core.status.nodes.first { $0.nodeID == "n3" }?.state != "dead")
    }
}
