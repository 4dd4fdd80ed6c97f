/// What placement needs to know about a model: exact bytes from its GGUF index.
public struct ModelFootprint: Sendable, Equatable {
    /// Weight bytes of each layer (`blk.i.*`).
    public var layerBytes: [Int]
    /// `token_embd`: the first stage holds it (and the last too when the embeddings are tied).
    public var embeddingBytes: Int
    /// `output_norm` and `output`: the last stage holds them.
    public var outputBytes: Int
    /// The output matrix is `token_embd` (no `output` tensor).
    public var tiedEmbeddings: Bool
    /// KV cache bytes one layer needs for one position of one sequence.
    public var kvBytesPerLayerPosition: Int

    public init(layerBytes: [Int], embeddingBytes: Int, outputBytes: Int, tiedEmbeddings: Bool, kvBytesPerLayerPosition: Int) {
        self.layerBytes = layerBytes
        self.embeddingBytes = embeddingBytes
        self.outputBytes = outputBytes
        self.tiedEmbeddings = tiedEmbeddings
        self.kvBytesPerLayerPosition = kvBytesPerLayerPosition
    }

    public var layerCount: Int { layerBytes.count }
}

/// A node as placement sees it.
public struct PlacementCandidate: Sendable, Equatable {
    public var id: String
    public var budgetBytes: Int
    /// Weight bytes per second the node streams through a decode step.
    public var bytesPerSecond: Double

    public init(id: String, budgetBytes: Int, bytesPerSecond: Double) {
        self.id = id
        self.budgetBytes = budgetBytes
        self.bytesPerSecond = bytesPerSecond
    }
}

/// One stage of a plan: a node and the contiguous layers it serves.
public struct PlacementStage: Sendable, Equatable {
    public var nodeID: String
    public var layers: Range<Int>
    /// Bytes the stage reserves on its node: weights, KV reserve and the fixed overhead.
    public var reservedBytes: Int
    /// Predicted compute time of one decode step on this stage.
    public var stepSeconds: Double
}

/// A placement: stages in ring order, covering every layer once.
public struct PlacementPlan: Sendable, Equatable {
    public var stages: [PlacementStage]
    /// One decode step of one sequence through every stage, plus one hop per stage.
    public var predictedStepSeconds: Double
    /// The slowest stage: what bounds throughput when many sequences keep every stage busy.
    public var bottleneckSeconds: Double

    public var nodeIDs: [String] { stages.map(\.nodeID) }
}

/// Why no plan fits.
public enum PlacementError: Error, Equatable, CustomStringConvertible {
    case noNodes
    /// The nodes cannot hold the model: `missingBytes` more on the largest node would let it
    /// deploy. `neededBytes` is the whole model on one node (weights, KV reserve, overhead);
    /// `availableBytes` the sum of the budgets.
    case insufficientMemory(missingBytes: Int, neededBytes: Int, availableBytes: Int)

    public var description: String {
        switch self {
        case .noNodes:
            "no live nodes to place the model on"
        case let .insufficientMemory(missing, needed, available):
            "the cluster cannot hold the model: \(missing) bytes missing (the whole model with its KV reserve takes " +
                "\(needed) bytes on one node; the nodes offer \(available) in all)"
        }
    }

    public var missingBytes: Int {
        switch self {
        case .noNodes: 0
        case let .insufficientMemory(missing, _, _): missing
        }
    }
}

/// Cuts a model into contiguous layer ranges over a set of nodes.
///
/// Each stage must fit its node's budget: its weights (plus the embedding on the first stage and
/// the output head on the last), a KV reserve for its layers (`kvReservePositions` positions of
/// every layer: context × sequences), and a fixed overhead for scratch and the process itself.
/// Among the plans that fit, it picks the one with the lowest predicted decode step: the sum of
/// the stages' compute times (weight bytes over each node's measured speed) plus one hop per
/// stage. Ties go to the plan whose slowest stage is fastest (balance), then to the earlier nodes
/// in the given order. Nodes a plan does not use are standbys.
///
/// Up to `exactSearchLimit` nodes, the search is exact: dynamic programming over (layers
/// covered, set of nodes used). Above that it keeps the nodes in order of speed and lets each
/// take a range or stand by, which is exact for any fixed ring order.
public struct PlacementPlanner: Sendable {
    public var kvReservePositions: Int
    public var overheadBytes: Int
    public var hopSeconds: Double
    public var exactSearchLimit = 10

    public init(kvReservePositions: Int, overheadBytes: Int = 64 << 20, hopSeconds: Double = 0.0005) {
        self.kvReservePositions = max(0, kvReservePositions)
        self.overheadBytes = max(0, overheadBytes)
        self.hopSeconds = max(0, hopSeconds)
    }

    /// Prefix sums of layer bytes, so a range's bytes cost O(1).
    private struct Prefix {
        let sums: [Int]
        init(_ bytes: [Int]) {
            var s = [0]
            s.reserveCapacity(bytes.count + 1)
            for b in bytes { s.append(s[s.count - 1] &+ b) }
            sums = s
        }

        func bytes(_ a: Int, _ b: Int) -> Int { sums[b] - sums[a] }
    }

    /// Bytes a stage serving `layers` reserves on its node.
    public func reservedBytes(_ model: ModelFootprint, _ layers: Range<Int>) -> Int {
        reserved(model, Prefix(model.layerBytes), layers.lowerBound, layers.upperBound)
    }

    private func reserved(_ model: ModelFootprint, _ prefix: Prefix, _ a: Int, _ b: Int) -> Int {
        let last = b == model.layerCount
        var bytes = prefix.bytes(a, b) + overheadBytes + (b - a) * model.kvBytesPerLayerPosition * kvReservePositions
        if a == 0 || (last && model.tiedEmbeddings) { bytes += model.embeddingBytes }
        if last { bytes += model.outputBytes }
        return bytes
    }

    /// Weight bytes one decode step streams through a stage: its layers, and the output matrix on
    /// the last stage (the embedding lookup reads a single row).
    private func computeBytes(_ model: ModelFootprint, _ prefix: Prefix, _ a: Int, _ b: Int) -> Int {
        var bytes = prefix.bytes(a, b)
        if b == model.layerCount { bytes += model.tiedEmbeddings ? model.embeddingBytes + model.outputBytes : model.outputBytes }
        return bytes
    }

    /// A given cut as a plan, with its reserved bytes and predicted times (a plan restored from
    /// a snapshot). Stages must cover `0 ..< layerCount` in order; nil otherwise.
    public func evaluate(model: ModelFootprint, stages: [(nodeID: String, layers: Range<Int>)], speeds: [String: Double]) -> PlacementPlan? {
        let prefix = Prefix(model.layerBytes)
        var next = 0
        var result: [PlacementStage] = []
        var step = 0.0, bottleneck = 0.0
        for (id, layers) in stages {
            guard layers.lowerBound == next, layers.upperBound > next, layers.upperBound <= model.layerCount,
                  let speed = speeds[id], speed > 0 else { return nil }
            let seconds = Double(computeBytes(model, prefix, layers.lowerBound, layers.upperBound)) / speed
            result.append(PlacementStage(nodeID: id, layers: layers, reservedBytes: reserved(model, prefix, layers.lowerBound, layers.upperBound),
                                         stepSeconds: seconds))
            step += seconds + hopSeconds
            bottleneck = max(bottleneck, seconds)
            next = layers.upperBound
        }
        guard next == model.layerCount else { return nil }
        return PlacementPlan(stages: result, predictedStepSeconds: step, bottleneckSeconds: bottleneck)
    }

    /// The best plan for `nodes` (in a stable order: it decides ties), or why none fits.
    public func plan(model: ModelFootprint, nodes: [PlacementCandidate]) throws(PlacementError) -> PlacementPlan {
        let usable = nodes.filter { $0.budgetBytes > 0 && $0.bytesPerSecond > 0 }
        guard !usable.isEmpty else { throw .noNodes }
        guard model.layerCount > 0 else { throw .noNodes }
        let prefix = Prefix(model.layerBytes)
        let found = usable.count <= exactSearchLimit
            ? exactSearch(model, prefix, usable)
            : orderedSearch(model, prefix, usable.enumerated().sorted {
                ($0.element.bytesPerSecond, $1.offset) > ($1.element.bytesPerSecond, $0.offset)
            }.map(\.element))
        guard let plan = found else { throw shortfall(model, prefix, usable) }
        return plan
    }

    /// Cost of a partial plan, compared as (step time, slowest stage) with a small tolerance, so
    /// equal plans fall through to the deterministic order of the search.
    private struct Cost {
        var step: Double
        var bottleneck: Double

        func better(than other: Cost) -> Bool {
            let scale = max(abs(step), abs(other.step), 1e-12)
            if abs(step - other.step) > 1e-9 * scale { return step < other.step }
            let bScale = max(abs(bottleneck), abs(other.bottleneck), 1e-12)
            if abs(bottleneck - other.bottleneck) > 1e-9 * bScale { return bottleneck < other.bottleneck }
            return false
        }

        func adding(_ stage: Double, hop: Double) -> Cost {
            Cost(step: step + stage + hop, bottleneck: max(bottleneck, stage))
        }
    }

    private struct Choice {
        var cost: Cost
        var previousLayer: Int
        var previousMask: Int
        var node: Int
    }

    /// Exact search: best[i][mask] = the cheapest way to serve layers 0 ..< i with the nodes in
    /// `mask`, each on one contiguous range.
    private func exactSearch(_ model: ModelFootprint, _ prefix: Prefix, _ nodes: [PlacementCandidate]) -> PlacementPlan? {
        let L = model.layerCount
        let n = nodes.count
        let masks = 1 << n
        var best = [[Choice?]](repeating: [Choice?](repeating: nil, count: masks), count: L + 1)
        best[0][0] = Choice(cost: Cost(step: 0, bottleneck: 0), previousLayer: -1, previousMask: -1, node: -1)
        for i in 0 ..< L {
            for mask in 0 ..< masks {
                guard let here = best[i][mask] else { continue }
                for j in 0 ..< n where mask & (1 << j) == 0 {
                    let node = nodes[j]
                    for k in (i + 1) ... L {
                        // A longer range never needs less, so the first that does not fit ends the scan.
                        guard reserved(model, prefix, i, k) <= node.budgetBytes else { break }
                        let stage = Double(computeBytes(model, prefix, i, k)) / node.bytesPerSecond
                        let cost = here.cost.adding(stage, hop: hopSeconds)
                        let next = mask | (1 << j)
                        if let current = best[k][next], !cost.better(than: current.cost) { continue }
                        best[k][next] = Choice(cost: cost, previousLayer: i, previousMask: mask, node: j)
                    }
                }
            }
        }
        var end: (mask: Int, choice: Choice)?
        for mask in 1 ..< masks {
            guard let c = best[L][mask] else { continue }
            if let e = end, !c.cost.better(than: e.choice.cost) { continue }
            end = (mask, c)
        }
        guard let finish = end else { return nil }
        var stages: [PlacementStage] = []
        var layer = L
        var mask = finish.mask
        while layer > 0, let c = best[layer][mask] {
            let node = nodes[c.node]
            let a = c.previousLayer
            stages.append(PlacementStage(nodeID: node.id, layers: a ..< layer, reservedBytes: reserved(model, prefix, a, layer),
                                         stepSeconds: Double(computeBytes(model, prefix, a, layer)) / node.bytesPerSecond))
            layer = a
            mask = c.previousMask
        }
        stages.reverse()
        return PlacementPlan(stages: stages, predictedStepSeconds: finish.choice.cost.step, bottleneckSeconds: finish.choice.cost.bottleneck)
    }

    /// Large clusters: nodes in the given order, each either standing by or taking the next
    /// range. best[j][i] = the cheapest way to serve layers 0 ..< i with nodes 0 ..< j.
    private func orderedSearch(_ model: ModelFootprint, _ prefix: Prefix, _ nodes: [PlacementCandidate]) -> PlacementPlan? {
        let L = model.layerCount
        let n = nodes.count
        var best = [[Choice?]](repeating: [Choice?](repeating: nil, count: L + 1), count: n + 1)
        best[0][0] = Choice(cost: Cost(step: 0, bottleneck: 0), previousLayer: -1, previousMask: -1, node: -1)
        for j in 0 ..< n {
            let node = nodes[j]
            for i in 0 ... L {
                guard let here = best[j][i] else { continue }
                // Stand by.
                let standby = Choice(cost: here.cost, previousLayer: i, previousMask: j, node: -1)
                if let current = best[j + 1][i] {
                    if here.cost.better(than: current.cost) { best[j + 1][i] = standby }
                } else {
                    best[j + 1][i] = standby
                }
                guard i < L else { continue }
                for k in (i + 1) ... L {
                    guard reserved(model, prefix, i, k) <= node.budgetBytes else { break }
                    let stage = Double(computeBytes(model, prefix, i, k)) / node.bytesPerSecond
                    let cost = here.cost.adding(stage, hop: hopSeconds)
                    if let current = best[j + 1][k], !cost.better(than: current.cost) { continue }
                    best[j + 1][k] = Choice(cost: cost, previousLayer: i, previousMask: j, node: j)
                }
            }
        }
        guard let finish = best[n][L] else { return nil }
        var stages: [PlacementStage] = []
        var j = n
        var layer = L
        while j > 0, let c = best[j][layer] {
            if c.node >= 0 {
                let node = nodes[c.node]
                stages.append(PlacementStage(nodeID: node.id, layers: c.previousLayer ..< layer,
                                             reservedBytes: reserved(model, prefix, c.previousLayer, layer),
                                             stepSeconds: Double(computeBytes(model, prefix, c.previousLayer, layer)) / node.bytesPerSecond))
            }
            layer = c.previousLayer
            j = c.previousMask
        }
        stages.reverse()
        return PlacementPlan(stages: stages, predictedStepSeconds: finish.cost.step, bottleneckSeconds: finish.cost.bottleneck)
    }

    /// Whether some contiguous cut fits the nodes' budgets. Taking as many layers as fit never
    /// hurts the stages after, so it is enough to know, for each set of nodes used, how far they
    /// can reach: reach[mask ∪ j] = max(reach, the furthest node j can extend from reach[mask]).
    /// Past `exactSearchLimit` + 6 nodes it tries them in order of budget, largest first.
    private func fits(_ model: ModelFootprint, _ prefix: Prefix, _ nodes: [PlacementCandidate]) -> Bool {
        let L = model.layerCount
        func extend(_ node: PlacementCandidate, from i: Int) -> Int {
            var k = i
            while k < L, reserved(model, prefix, i, k + 1) <= node.budgetBytes { k += 1 }
            return k
        }
        if nodes.count > exactSearchLimit + 6 {
            var i = 0
            for node in nodes.sorted(by: { $0.budgetBytes > $1.budgetBytes }) where i < L { i = extend(node, from: i) }
            return i == L
        }
        var reach = [Int](repeating: -1, count: 1 << nodes.count)
        reach[0] = 0
        for mask in 0 ..< reach.count where reach[mask] >= 0 {
            if reach[mask] == L { return true }
            for j in nodes.indices where mask & (1 << j) == 0 {
                let next = mask | (1 << j)
                reach[next] = max(reach[next], extend(nodes[j], from: reach[mask]))
            }
        }
        return false
    }

    /// How far the nodes fall short, as the fewest extra bytes that would let the largest node
    /// (and with it the cluster) hold the model: a binary search over that node's budget.
    private func shortfall(_ model: ModelFootprint, _ prefix: Prefix, _ nodes: [PlacementCandidate]) -> PlacementError {
        let L = model.layerCount
        let available = nodes.reduce(0) { $0 + $1.budgetBytes }
        let needed = reserved(model, prefix, 0, L)
        guard let largest = nodes.indices.max(by: { nodes[$0].budgetBytes < nodes[$1].budgetBytes }) else {
            return .insufficientMemory(missingBytes: needed, neededBytes: needed, availableBytes: available)
        }
        func fitsWith(_ extra: Int) -> Bool {
            var grown = nodes
            grown[largest].budgetBytes += extra
            return fits(model, prefix, grown)
        }
        // With `needed` more, the largest node alone holds everything.
        var lo = 0, hi = max(1, needed)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if fitsWith(mid) { hi = mid } else { lo = mid }
        }
        return .insufficientMemory(missingBytes: hi, neededBytes: needed, availableBytes: available)
    }
}
