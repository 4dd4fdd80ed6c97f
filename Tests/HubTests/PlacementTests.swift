import Hub
import Testing

/// Placement: tables of node sets with the plan worked out by hand, the edges of the budgets,
/// and a brute-force enumeration of every ordered subset and every cut to check the search.
struct PlacementTests {
    /// 6 layers of 100 bytes, embedding 50, output 60; no KV reserve, no overhead unless given.
    static let model = ModelFootprint(layerBytes: [100, 100, 100, 100, 100, 100], embeddingBytes: 50, outputBytes: 60,
                                      tiedEmbeddings: false, kvBytesPerLayerPosition: 0)

    static func planner(hop: Double = 0, overhead: Int = 0, kvPositions: Int = 0) -> PlacementPlanner {
        PlacementPlanner(kvReservePositions: kvPositions, overheadBytes: overhead, hopSeconds: hop)
    }

    static func ranges(_ plan: PlacementPlan) -> [String] {
        plan.stages.map { "\($0.nodeID):\($0.layers.lowerBound)..<\($0.layers.upperBound)" }
    }

    @Test func theFastestNodeThatHoldsEverythingServesAloneAndTheRestStandBy() throws {
        let nodes = [PlacementCandidate(id: "a", budgetBytes: 1000, bytesPerSecond: 100),
                     PlacementCandidate(id: "b", budgetBytes: 1000, bytesPerSecond: 200)]
        let plan = try Self.planner(hop: 0.01).plan(model: Self.model, nodes: nodes)
        #expect(Self.ranges(plan) == ["b:0..<6"])
        // 600 layer bytes + 60 output bytes (the embedding lookup reads one row) at 200 B/s, plus one hop.
        #expect(abs(plan.predictedStepSeconds - (660.0 / 200 + 0.01)) < 1e-12)
        #expect(plan.stages[0].reservedBytes == 710)
    }

    @Test func hopsDecideBetweenFewerStagesAndBalance() throws {
        // Each node holds at most three layers (first: 50 + 300 = 350; last: 300 + 60 = 360).
        let nodes = ["a", "b", "c"].map { PlacementCandidate(id: $0, budgetBytes: 400, bytesPerSecond: 100) }
        // Free hops: every cut streams the same bytes, so the tie goes to the most even split.
        let balanced = try Self.planner(hop: 0).plan(model: Self.model, nodes: nodes)
        #expect(Self.ranges(balanced) == ["a:0..<2", "b:2..<4", "c:4..<6"])
        #expect(abs(balanced.bottleneckSeconds - 2.6) < 1e-12)
        // Costly hops: two stages beat three.
        let fewer = try Self.planner(hop: 0.5).plan(model: Self.model, nodes: nodes)
        #expect(fewer.stages.count == 2)
        #expect(Self.ranges(fewer) == ["a:0..<3", "b:3..<6"])
        #expect(abs(fewer.predictedStepSeconds - (3.0 + 3.6 + 1.0)) < 1e-12)
    }

    @Test func aSmallFastNodeTakesWhatItCanHoldWhereItFits() throws {
        // b is ten times faster but holds only 350 bytes: the first three layers with the
        // embedding (350), not the last two with the output (260 would fit, but the first
        // position saves more).
        let nodes = [PlacementCandidate(id: "a", budgetBytes: 1000, bytesPerSecond: 100),
                     PlacementCandidate(id: "b", budgetBytes: 350, bytesPerSecond: 1000)]
        let plan = try Self.planner().plan(model: Self.model, nodes: nodes)
        #expect(Self.ranges(plan) == ["b:0..<3", "a:3..<6"])
        #expect(abs(plan.predictedStepSeconds - (0.3 + 3.6)) < 1e-12)
    }

    @Test func identicalNodesTieToTheEarlierOne() throws {
        let nodes = ["x", "y", "z"].map { PlacementCandidate(id: $0, budgetBytes: 5000, bytesPerSecond: 100) }
        for hop in [0.0, 0.001] {
            let plan = try Self.planner(hop: hop).plan(model: Self.model, nodes: nodes)
            #expect(Self.ranges(plan) == (hop == 0 ? ["x:0..<2", "y:2..<4", "z:4..<6"] : ["x:0..<6"]))
        }
        // The order of the candidates decides, not their names.
        let reversed = try Self.planner(hop: 0.001).plan(model: Self.model, nodes: nodes.reversed())
        #expect(Self.ranges(reversed) == ["z:0..<6"])
    }

    @Test func aBudgetExactlyAtTheEdgeFitsAndOneByteLessDoesNot() throws {
        let planner = Self.planner(overhead: 7, kvPositions: 10)
        let model = ModelFootprint(layerBytes: [100, 100, 100, 100, 100, 100], embeddingBytes: 50, outputBytes: 60,
                                   tiedEmbeddings: false, kvBytesPerLayerPosition: 3)
        // 600 weights + 50 + 60 + 7 overhead + 6 layers × 10 positions × 3 bytes.
        let exact = 600 + 50 + 60 + 7 + 180
        #expect(planner.reservedBytes(model, 0 ..< 6) == exact)
        let plan = try planner.plan(model: model, nodes: [PlacementCandidate(id: "n", budgetBytes: exact, bytesPerSecond: 1)])
        #expect(Self.ranges(plan) == ["n:0..<6"])
        #expect(plan.stages[0].reservedBytes == exact)
        #expect(throws: PlacementError.insufficientMemory(missingBytes: 1, neededBytes: exact, availableBytes: exact - 1)) {
            try planner.plan(model: model, nodes: [PlacementCandidate(id: "n", budgetBytes: exact - 1, bytesPerSecond: 1)])
        }
    }

    @Test func tiedEmbeddingsPutTheEmbeddingOnTheLastStageToo() throws {
        let model = ModelFootprint(layerBytes: [100, 100], embeddingBytes: 500, outputBytes: 4, tiedEmbeddings: true,
                                   kvBytesPerLayerPosition: 0)
        let planner = Self.planner()
        #expect(planner.reservedBytes(model, 0 ..< 2) == 200 + 500 + 4)
        #expect(planner.reservedBytes(model, 0 ..< 1) == 100 + 500)
        #expect(planner.reservedBytes(model, 1 ..< 2) == 100 + 500 + 4)
        let nodes = [PlacementCandidate(id: "a", budgetBytes: 610, bytesPerSecond: 100),
                     PlacementCandidate(id: "b", budgetBytes: 610, bytesPerSecond: 100)]
        let plan = try planner.plan(model: model, nodes: nodes)
        #expect(Self.ranges(plan) == ["a:0..<1", "b:1..<2"])
        // The last stage streams the output matrix, which is token_embd.
        #expect(abs(plan.stages[1].stepSeconds - 6.04) < 1e-12)
    }

    @Test func anInfeasibleSetNamesTheBytesMissing() throws {
        let planner = Self.planner(overhead: 10)
        let nodes = [PlacementCandidate(id: "a", budgetBytes: 300, bytesPerSecond: 1),
                     PlacementCandidate(id: "b", budgetBytes: 200, bytesPerSecond: 1)]
        do {
            _ = try planner.plan(model: Self.model, nodes: nodes)
            Issue.record("expected an error")
        } catch let error {
            guard case let .insufficientMemory(missing, needed, available) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(needed == 720 && available == 500)
            #expect(error.description.contains("\(missing) bytes missing"))
            // The figure is exact: that much more on the largest node fits, one byte less does not.
            var grown = nodes
            grown[0].budgetBytes += missing
            #expect((try? planner.plan(model: Self.model, nodes: grown)) != nil)
            grown[0].budgetBytes -= 1
            #expect((try? planner.plan(model: Self.model, nodes: grown)) == nil)
        }
        #expect(throws: PlacementError.noNodes) { try planner.plan(model: Self.model, nodes: []) }
    }

    @Test func aLayerTooLargeForEveryNodeIsMissingBytesEvenWhenTheSumWouldDo() throws {
        let model = ModelFootprint(layerBytes: [10, 500, 10], embeddingBytes: 0, outputBytes: 0, tiedEmbeddings: false,
                                   kvBytesPerLayerPosition: 0)
        let nodes = (0 ..< 4).map { PlacementCandidate(id: "n\($0)", budgetBytes: 300, bytesPerSecond: 1) }
        #expect(throws: PlacementError.insufficientMemory(missingBytes: 200, neededBytes: 520, availableBytes: 1200)) {
            try Self.planner().plan(model: model, nodes: nodes)
        }
    }

    /// Every way to put the model on the nodes: each ordered subset, each cut into that many
    /// non-empty contiguous ranges.
    static func bruteForce(_ planner: PlacementPlanner, _ model: ModelFootprint, _ nodes: [PlacementCandidate]) -> Double? {
        let L = model.layerCount
        var best: Double?
        func orderedSubsets(_ chosen: [Int], _ visit: ([Int]) -> Void) {
            if !chosen.isEmpty { visit(chosen) }
            for j in nodes.indices where !chosen.contains(j) { orderedSubsets(chosen + [j], visit) }
        }
        func cuts(_ parts: Int, _ start: Int, _ prefix: [Range<Int>], _ visit: ([Range<Int>]) -> Void) {
            if parts == 1 { return visit(prefix + [start ..< L]) }
            guard start < L else { return }
            for end in (start + 1) ..< L { cuts(parts - 1, end, prefix + [start ..< end], visit) }
        }
        orderedSubsets([]) { order in
            guard order.count <= L else { return }
            cuts(order.count, 0, []) { ranges in
                let stages = zip(order, ranges).map { (nodeID: nodes[$0].id, layers: $1) }
                guard zip(order, ranges).allSatisfy({ planner.reservedBytes(model, $1) <= nodes[$0].budgetBytes }) else { return }
                let speeds = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.bytesPerSecond) })
                guard let plan = planner.evaluate(model: model, stages: stages, speeds: speeds) else { return }
                if best.map({ plan.predictedStepSeconds < $0 }) ?? true { best = plan.predictedStepSeconds }
            }
        }
        return best
    }

    @Test func theSearchFindsTheOptimumOfEveryRandomSmallCluster() throws {
        var rng = SplitMix(seed: 11)
        for round in 0 ..< 300 {
            let L = 1 + Int(rng.next() % 6)
            let model = ModelFootprint(layerBytes: (0 ..< L).map { _ in 50 + Int(rng.next() % 200) },
                                       embeddingBytes: Int(rng.next() % 120), outputBytes: Int(rng.next() % 120),
                                       tiedEmbeddings: rng.next() % 3 == 0, kvBytesPerLayerPosition: Int(rng.next() % 3))
            let nodes = (0 ..< 1 + Int(rng.next() % 4)).map {
                PlacementCandidate(id: "n\($0)", budgetBytes: 100 + Int(rng.next() % 900), bytesPerSecond: Double(1 + rng.next() % 50))
            }
            let planner = Self.planner(hop: Double(rng.next() % 3) * 0.7, overhead: Int(rng.next() % 40), kvPositions: Int(rng.next() % 4))
            let expected = Self.bruteForce(planner, model, nodes)
            let got = try? planner.plan(model: model, nodes: nodes)
            #expect((expected == nil) == (got == nil), "round \(round): feasibility")
            if let expected, let got {
                #expect(abs(got.predictedStepSeconds - expected) <= 1e-9 * max(1, expected), "round \(round)")
                // A plan covers every layer once, in order, and fits every budget.
                #expect(got.stages.first?.layers.lowerBound == 0 && got.stages.last?.layers.upperBound == L)
                for (a, b) in zip(got.stages, got.stages.dropFirst()) { #expect(a.layers.upperBound == b.layers.lowerBound) }
                for stage in got.stages {
                    let budget = nodes.first { $0.id == stage.nodeID }?.budgetBytes ?? 0
                    #expect(stage.reservedBytes <= budget)
                }
                #expect(Set(got.nodeIDs).count == got.stages.count)
            }
        }
    }

    @Test func largeClustersUseTheOrderedSearchAndStillFit() throws {
        var planner = Self.planner(hop: 0.001)
        planner.exactSearchLimit = 2
        let model = ModelFootprint(layerBytes: [Int](repeating: 100, count: 24), embeddingBytes: 50, outputBytes: 60,
                                   tiedEmbeddings: false, kvBytesPerLayerPosition: 0)
        let nodes = (0 ..< 12).map { PlacementCandidate(id: "n\($0)", budgetBytes: 450, bytesPerSecond: Double(100 + $0)) }
        let plan = try planner.plan(model: model, nodes: nodes)
        #expect(plan.stages.first?.layers.lowerBound == 0 && plan.stages.last?.layers.upperBound == 24)
        for stage in plan.stages { #expect(stage.reservedBytes <= 450) }
        // The fastest nodes are used first.
        #expect(plan.nodeIDs.first == "n11")
    }
}

/// A tiny deterministic generator for the random tables.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
