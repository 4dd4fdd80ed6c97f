import Models

/// Gathers one batch from the ready rows of a node's sequences into input buffers allocated
/// once, so a decode step allocates nothing here.
///
/// Order: node 0's released decode group first, then one decode row per other sequence, then
/// prompt chunks, up to `maxRows` rows. A long prompt therefore never holds up the tokens of
/// running sequences, and the starting point rotates so that no sequence always waits. On the
/// last node at most `logitCapacity` rows ask for logits (one per sequence that samples).
package final class BatchBuilder {
    /// One sequence's rows in the batch: positions `start ..< start + count`.
    package struct Member {
        package let sequence: StageSequence
        package let start: Int
        package let count: Int
        /// Its last row's logits are sampled (last node, past the prompt's end).
        package let wantsLogits: Bool
    }

    package let maxRows: Int
    package let width: Int
    package let logitCapacity: Int
    /// Node 0: inputs are token ids; else hidden states.
    package let embedsTokens: Bool
    /// Last node: rows at the end of a prompt (or decode rows) want logits.
    package let samples: Bool
    /// Token ids of the batch (node 0), `maxRows`.
    package let tokenInput: UnsafeMutablePointer<Int32>
    /// Hidden states of the batch (other nodes), `maxRows × width`.
    package let hiddenInput: UnsafeMutablePointer<Float>
    package private(set) var members: [Member] = []
    package private(set) var slices: [SequenceSlice] = []
    package private(set) var rows = 0
    private var logitRows = 0
    private var rotation = 0
    /// Marks the sequences already in the current batch (`StageSequence.batchStamp`) without
    /// searching `members`.
    private var stamp = 0

    package init(maxRows: Int, width: Int, logitCapacity: Int, embedsTokens: Bool, samples: Bool) {
        self.maxRows = max(1, maxRows)
        self.width = width
        self.logitCapacity = max(1, logitCapacity)
        self.embedsTokens = embedsTokens
        self.samples = samples
        tokenInput = .allocate(capacity: embedsTokens ? self.maxRows : 1)
        hiddenInput = .allocate(capacity: embedsTokens ? 1 : self.maxRows * max(1, width))
        members.reserveCapacity(self.maxRows)
        slices.reserveCapacity(self.maxRows)
    }

    deinit {
        tokenInput.deallocate()
        hiddenInput.deallocate()
    }

    /// Fills a new batch. `decodeGroup` (node 0) is the group of decode rows released into the
    /// ring now; node 0's other decoding sequences wait for their group. Returns whether the
    /// batch has rows.
    package func build(decodeGroup: [StageSequence], table: SequenceTable) -> Bool {
        members.removeAll(keepingCapacity: true)
        slices.removeAll(keepingCapacity: true)
        rows = 0
        logitRows = 0
        stamp &+= 1
        let order = table.order
        let n = order.count
        guard n > 0 else { return false }
        rotation = (rotation + 1) % n
        for s in decodeGroup {
            guard rows < maxRows, let cache = s.cache, let chunk = s.pending.first else {
                s.group = nil
                continue
            }
            add(s, cache, chunk)
        }
        for pass in 0 ..< 2 {
            for k in 0 ..< n {
                guard rows < maxRows, let s = table[order[(rotation + k) % n]], let cache = s.cache,
                      let chunk = s.pending.first else { continue }
                if embedsTokens && s.generated > 0 { continue }
                if s.batchStamp == stamp { continue }
                if pass == 0 && chunk.count != 1 { continue }
                add(s, cache, chunk)
            }
        }
        return rows > 0
    }

    private func add(_ s: StageSequence, _ cache: KVCache, _ chunk: PendingRows) {
        let take = min(chunk.count, maxRows - rows)
        let wants = samples && chunk.start + take >= Int(s.request.promptLength)
        if wants && logitRows >= logitCapacity { return }
        switch chunk {
        case let .token(_, id):
            tokenInput[rows] = id
            s.pending.removeFirst()
        case let .tokens(start, ids):
            for i in 0 ..< take { tokenInput[rows + i] = ids[i] }
            if take < ids.count { s.pending[0] = .tokens(start: start + take, Array(ids[take...])) } else { s.pending.removeFirst() }
        case let .hidden(start, count, values):
            values.withUnsafeBufferPointer { buffer in
                if let base = buffer.baseAddress { (hiddenInput + rows * width).update(from: base, count: take * width) }
            }
            if take < count {
                s.pending[0] = .hidden(start: start + take, count: count - take, Array(values[(take * width)...]))
            } else {
                s.pending.removeFirst()
            }
        }
        s.batchStamp = stamp
        members.append(Member(sequence: s, start: chunk.start, count: take, wantsLogits: wants))
        slices.append(SequenceSlice(cache: cache, start: chunk.start, count: take, wantsLogits: wants))
        rows += take
        if wants { logitRows += 1 }
    }
}
