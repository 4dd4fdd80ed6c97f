/// SentencePiece BPE (`tokenizer.ggml.model = llama`): merges by score, byte fallback.
extension Tokenizer {
    struct SPMWork {
        var text: [UInt8] = []
        var starts: [Int32] = []
        var lengths: [Int32] = []
        var previous: [Int32] = []
        var following: [Int32] = []
        var heap = PriorityHeap<ScoreCandidate>()
    }

    /// llama.cpp's llm_tokenizer_spm: merge the adjacent pair whose concatenation is the
    /// highest-scoring token (leftmost on ties) until none is left, then emit each symbol, or
    /// its bytes through the byte tokens when it is not a token.
    func encodeSPM(work: inout SPMWork, into output: inout [Int32]) {
        work.starts.removeAll(keepingCapacity: true)
        work.lengths.removeAll(keepingCapacity: true)
        work.previous.removeAll(keepingCapacity: true)
        work.following.removeAll(keepingCapacity: true)
        work.heap.removeAll()
        let total = work.text.count
        guard total > 0 else { return }
        var offset = 0
        var index: Int32 = 0
        while offset < total {
            let length = min(UTF8Support.sequenceLength(lead: work.text[offset]), total - offset)
            work.starts.append(Int32(offset))
            work.lengths.append(Int32(length))
            work.previous.append(index - 1)
            offset += length
            work.following.append(offset == total ? -1 : index + 1)
            index += 1
        }
        work.text.withUnsafeBufferPointer { text in
            func tryAdd(_ left: Int32, _ right: Int32, _ work: inout SPMWork) {
                guard left >= 0 && right >= 0 else { return }
                let start = Int(work.starts[Int(left)])
                let size = Int(work.lengths[Int(left)] + work.lengths[Int(right)])
                guard let id = tokenTable.find(UnsafeBufferPointer(rebasing: text[start..<(start + size)]))
                else { return }
                work.heap.push(ScoreCandidate(
                    score: scores[Int(id)], left: left, right: right, size: Int32(size)))
            }
            for i in 1..<Int32(work.starts.count) { tryAdd(i - 1, i, &work) }
            while let entry = work.heap.pop() {
                let left = Int(entry.left), right = Int(entry.right)
                let leftLength = work.lengths[left], rightLength = work.lengths[right]
                if leftLength == 0 || rightLength == 0 || leftLength + rightLength != entry.size { continue }
                work.lengths[left] = leftLength + rightLength
                work.lengths[right] = 0
                let after = work.following[right]
                work.following[left] = after
                if after >= 0 { work.previous[Int(after)] = entry.left }
                tryAdd(work.previous[left], entry.left, &work)
                tryAdd(entry.left, work.following[left], &work)
            }
            var i: Int32 = 0
            while i >= 0 {
                let start = Int(work.starts[Int(i)])
                let length = Int(work.lengths[Int(i)])
                let piece = UnsafeBufferPointer(rebasing: text[start..<(start + length)])
                if let id = tokenTable.find(piece) {
                    output.append(id)
                } else {
                    for byte in piece {
                        let id = byteFallbackTokens[Int(byte)]
                        if id >= 0 { output.append(id) }
                    }
                }
                i = work.following[Int(i)]
            }
        }
    }
}

/// A candidate SPM merge, served by highest score, then leftmost position.
struct ScoreCandidate: HeapOrdered {
    var score: Float
    var left: Int32
    var right: Int32
    var size: Int32

    @inline(__always) static func servedBefore(_ a: Self, _ b: Self) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }
}
