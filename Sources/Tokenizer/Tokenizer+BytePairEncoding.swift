/// Byte-level BPE (`tokenizer.ggml.model = gpt2`): pre-tokenized words merged by rank.
extension Tokenizer {
    struct BPEWork {
        var codePoints: [UInt32] = []
        var offsets: [Int32] = []
        var classes: [CharClass] = []
        var ends: [Int32] = []
        var scratch: [Int32] = []
        var encoded: [UInt8] = []
        var symbols: [Int32] = []
        var previous: [Int32] = []
        var following: [Int32] = []
        var heap = PriorityHeap<MergeCandidate>()
    }

    func encodeBPE(_ text: UnsafeBufferPointer<UInt8>, work: inout BPEWork, into output: inout [Int32]) {
        UTF8Support.decode(text, codePoints: &work.codePoints, offsets: &work.offsets)
        preTokenizer.splitCodePoints(
            work.codePoints, classes: &work.classes, ends: &work.ends, scratch: &work.scratch)
        var start = 0
        for end in work.ends {
            let from = Int(work.offsets[start])
            let to = Int(work.offsets[Int(end)])
            start = Int(end)
            let word = UnsafeBufferPointer(rebasing: text[from..<to])
            if ignoreMerges {
                work.encoded.removeAll(keepingCapacity: true)
                for byte in word { work.encoded.append(contentsOf: ByteLevel.byteToUTF8[Int(byte)]) }
                if let id = tokenTable.find(work.encoded) {
                    output.append(id)
                    continue
                }
            }
            mergeWord(word, work: &work, into: &output)
        }
    }

    /// Merges the byte-level symbols of one word by rank (lowest first, leftmost on ties), as
    /// llama.cpp's priority queue does, and appends the resulting tokens.
    func mergeWord(_ word: UnsafeBufferPointer<UInt8>, work: inout BPEWork, into output: inout [Int32]) {
        let count = word.count
        guard count > 0 else { return }
        work.symbols.removeAll(keepingCapacity: true)
        work.previous.removeAll(keepingCapacity: true)
        work.following.removeAll(keepingCapacity: true)
        for (i, byte) in word.enumerated() {
            work.symbols.append(byteSymbols[Int(byte)])
            work.previous.append(Int32(i - 1))
            work.following.append(i + 1 < count ? Int32(i + 1) : -1)
        }
        if count > 1 {
            work.heap.removeAll()
            for i in 0..<(count - 1) {
                pushPair(left: Int32(i), right: Int32(i + 1), work: &work)
            }
            while let entry = work.heap.pop() {
                let left = Int(entry.left), right = Int(entry.right)
                guard work.symbols[left] == entry.leftSymbol,
                      work.symbols[right] == entry.rightSymbol,
                      work.following[left] == entry.right
                else { continue }
                work.symbols[left] = entry.result
                work.symbols[right] = -1
                let after = work.following[right]
                work.following[left] = after
                if after >= 0 { work.previous[Int(after)] = Int32(left) }
                let before = work.previous[left]
                if before >= 0 { pushPair(left: before, right: Int32(left), work: &work) }
                if after >= 0 { pushPair(left: Int32(left), right: after, work: &work) }
            }
        }
        var i: Int32 = 0
        while i >= 0 {
            let symbol = work.symbols[Int(i)]
            if Int(symbol) < tokenCount {
                output.append(symbol)
            } else {
                // Not a token: llama.cpp emits the tokens of the single bytes it can find.
                for byte in syntheticSymbolTexts[Int(symbol) - tokenCount] {
                    let id = singleByteTokens[Int(byte)]
                    if id >= 0 { output.append(id) }
                }
            }
            i = work.following[Int(i)]
        }
    }

    @inline(__always)
    private func pushPair(left: Int32, right: Int32, work: inout BPEWork) {
        let l = work.symbols[Int(left)], r = work.symbols[Int(right)]
        guard let merge = merges.find(left: l, right: r) else { return }
        work.heap.push(MergeCandidate(
            key: UInt64(UInt32(bitPattern: merge.rank)) << 32 | UInt64(UInt32(bitPattern: left)),
            right: right, leftSymbol: l, rightSymbol: r, result: merge.result))
    }
}

/// A candidate BPE merge, served by (rank, left position), both packed into `key`.
struct MergeCandidate: HeapOrdered {
    var key: UInt64
    var right: Int32
    var leftSymbol: Int32
    var rightSymbol: Int32
    var result: Int32
    var left: Int32 { Int32(truncatingIfNeeded: key & 0xFFFF_FFFF) }

    @inline(__always) static func servedBefore(_ a: Self, _ b: Self) -> Bool { a.key < b.key }
}
