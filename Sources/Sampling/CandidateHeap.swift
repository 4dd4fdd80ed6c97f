/// One surviving token of the sampling chain: its (clamped, penalized) logit and its id.
/// Also reused with a probability in `value` by `Sampler.topProbabilities`.
struct Candidate {
    var value: Float
    var token: Int32
}

/// Total order used everywhere: larger value first, then lower token id.
/// `isWorse(a, b)` is true when `a` ranks after `b`.
@inline(__always)
func isWorse(_ a: Candidate, _ b: Candidate) -> Bool {
    a.value < b.value || (a.value == b.value && a.token > b.token)
}

/// In-place binary heap over a raw buffer whose root is the *worst* candidate. Used both as the
/// bounded top-k selector (replace the root when something better arrives) and, through
/// `heapSortBest`, to sort survivors best-first without allocating.
enum CandidateHeap {
    @inline(__always)
    static func siftUp(_ h: UnsafeMutablePointer<Candidate>, _ index: Int) {
        let item = h[index]
        var i = index
        while i > 0 {
            let parent = (i &- 1) >> 1
            guard isWorse(item, h[parent]) else { break }
            h[i] = h[parent]
            i = parent
        }
        h[i] = item
    }

    @inline(__always)
    static func siftDown(_ h: UnsafeMutablePointer<Candidate>, _ index: Int, _ count: Int) {
        let item = h[index]
        var i = index
        while true {
            var child = 2 &* i &+ 1
            if child >= count { break }
            if child &+ 1 < count && isWorse(h[child &+ 1], h[child]) { child &+= 1 }
            guard isWorse(h[child], item) else { break }
            h[i] = h[child]
            i = child
        }
        h[i] = item
    }

    static func heapify(_ h: UnsafeMutablePointer<Candidate>, _ count: Int) {
        var i = count / 2 - 1
        while i >= 0 {
            siftDown(h, i, count)
            i -= 1
        }
    }

    /// Sorts an array that already is a worst-rooted heap so that the best candidate comes first
    /// (value descending, ties by ascending token id). O(count log count), no allocation.
    static func sortHeapBest(_ h: UnsafeMutablePointer<Candidate>, _ count: Int) {
        var end = count - 1
        while end > 0 {
            let worst = h[0]
            h[0] = h[end]
            h[end] = worst
            siftDown(h, 0, end)
            end -= 1
        }
    }

    /// Sorts `h[0..<count]` best-first in place. Input that is already in order (such as a run
    /// of equal logits gathered in index order) is detected in one pass and left alone.
    static func sortBest(_ h: UnsafeMutablePointer<Candidate>, _ count: Int) {
        guard count > 1 else { return }
        var i = 1
        while i < count && !isWorse(h[i - 1], h[i]) { i += 1 }
        if i == count { return }
        heapify(h, count)
        sortHeapBest(h, count)
    }
}
