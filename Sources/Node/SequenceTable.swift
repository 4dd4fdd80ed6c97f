import Models
import Sampling
import StarStream

/// Where a sequence's answers (TOKEN, DONE, ERROR) go on node 0: the driver connection that
/// opened it. A protocol, so the scheduler can be tested without sockets.
package protocol SequenceOrigin: AnyObject, Sendable {
    func send(_ frame: StarStreamFrame)
}

/// Rows of one sequence waiting for a batch.
package enum PendingRows {
    /// One decode row: the token sampled for `start - 1`, now the input at `start`.
    case token(start: Int, Int32)
    /// Prompt tokens at `start ..< start + ids.count`.
    case tokens(start: Int, [Int32])
    /// Hidden states from the previous stage, `count` rows.
    case hidden(start: Int, count: Int, [Float])

    package var start: Int {
        switch self {
        case let .token(s, _), let .tokens(s, _), let .hidden(s, _, _): s
        }
    }

    package var count: Int {
        switch self {
        case .token: 1
        case let .tokens(_, t): t.count
        case let .hidden(_, n, _): n
        }
    }
}

/// One sequence as this node sees it.
package final class StageSequence {
    package let id: UInt64
    package let request: SequenceOpen
    package let capacity: Int
    /// Nil while the sequence waits at node 0 for a free slot.
    package var cache: KVCache?
    /// The next input position this node accepts.
    package var expected = 0
    package var pending: [PendingRows] = []
    /// Node 0: the driver connection that opened it.
    package let origin: SequenceOrigin?
    package var generated = 0
    /// Last node: the sampler, with the request's seed and penalty history.
    package var sampler: Sampler?
    /// Node 0: the decode group this sequence travels the ring with (nil until it decodes).
    package var group: Int?
    /// When a frame for it last arrived or it last ran (monotonic nanoseconds); a sequence that
    /// stays idle past the node's deadline is freed and reported.
    package var lastActivity: Int
    /// The batch builder's mark for "already in this batch".
    package var batchStamp = 0

    package init(id: UInt64, request: SequenceOpen, capacity: Int, origin: SequenceOrigin?, now: Int) {
        self.id = id
        self.request = request
        self.capacity = capacity
        self.origin = origin
        lastActivity = now
    }
}

/// The sequences a node holds, in arrival order: admitted ones (with a KV cache) and, on node 0,
/// those waiting for a free slot. Pure bookkeeping (the caller makes caches and sends frames),
/// so admission, waiting, release and idle expiry are tested without a model or sockets.
package struct SequenceTable {
    package let maxSequences: Int
    package private(set) var byID: [UInt64: StageSequence] = [:]
    /// Arrival order; batches rotate through it.
    package private(set) var order: [UInt64] = []
    /// Node 0: sequences waiting for a slot, first come first served.
    package private(set) var waiting: [UInt64] = []
    /// Sequences that hold a KV cache.
    package private(set) var activeCount = 0
    /// Bytes of the KV caches the admitted sequences hold.
    package private(set) var cacheBytes = 0

    package init(maxSequences: Int) {
        self.maxSequences = max(1, maxSequences)
        byID.reserveCapacity(self.maxSequences * 2)
        order.reserveCapacity(self.maxSequences * 2)
    }

    package subscript(id: UInt64) -> StageSequence? { byID[id] }
    package var isEmpty: Bool { order.isEmpty }
    package var count: Int { order.count }
    package var hasFreeSlot: Bool { activeCount < maxSequences }
    /// Every sequence, in arrival order.
    package var all: [StageSequence] { order.compactMap { byID[$0] } }

    /// Adds a new sequence without a cache; `admit` or `wait` decides what happens to it.
    package mutating func insert(_ sequence: StageSequence) {
        byID[sequence.id] = sequence
        order.append(sequence.id)
    }

    /// Gives the sequence its cache. The caller checked `hasFreeSlot`.
    package mutating func admit(_ sequence: StageSequence, cache: KVCache) {
        if let old = sequence.cache { cacheBytes -= old.byteCount } else { activeCount += 1 }
        cacheBytes += cache.byteCount
        sequence.cache = cache
    }

    /// Queues the sequence until a slot frees (node 0).
    package mutating func wait(_ sequence: StageSequence) {
        waiting.append(sequence.id)
    }

    /// Removes the sequence (its cache goes with it). Returns it, or nil when it was not here.
    @discardableResult
    package mutating func release(_ id: UInt64) -> StageSequence? {
        guard let s = byID.removeValue(forKey: id) else { return nil }
        if let i = order.firstIndex(of: id) { order.remove(at: i) }
        if let i = waiting.firstIndex(of: id) { waiting.remove(at: i) }
        if let cache = s.cache {
            activeCount -= 1
            cacheBytes -= cache.byteCount
        }
        s.cache = nil
        return s
    }

    /// The next waiting sequence, once a slot is free and its cache (`bytes(capacity)`) fits
    /// in `budget` beside those held; removes it from the queue. First come, first served: a
    /// head that does not fit yet holds the ones behind it.
    package mutating func nextToAdmit(budget: Int = .max, bytes: (Int) -> Int = { _ in 0 }) -> StageSequence? {
        while hasFreeSlot, let head = waiting.first {
            guard let s = byID[head] else {
                waiting.removeFirst()
                continue
            }
            guard cacheBytes + bytes(s.capacity) <= budget else { return nil }
            waiting.removeFirst()
            return s
        }
        return nil
    }

    /// Sequences (waiting or admitted) that `origin` opened.
    package func count(from origin: SequenceOrigin) -> Int {
        var n = 0
        for s in byID.values where s.origin === origin { n += 1 }
        return n
    }

    /// Admitted sequences that have been idle since before `cutoff`. Waiting sequences are not
    /// idle (they wait for a slot, and their driver's disconnect frees them).
    package func idle(before cutoff: Int) -> [StageSequence] {
        order.compactMap { id in
            guard let s = byID[id], s.cache != nil, s.lastActivity < cutoff else { return nil }
            return s
        }
    }

    /// The earliest time some admitted sequence becomes idle for `limit`, or nil when none is held.
    package func nextIdleDeadline(limit: Int) -> Int? {
        var earliest: Int?
        for id in order {
            guard let s = byID[id], s.cache != nil else { continue }
            let t = s.lastActivity + limit
            if let e = earliest, e <= t { continue }
            earliest = t
        }
        return earliest
    }
}
