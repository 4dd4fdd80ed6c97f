/// Ordering for `PriorityHeap`: `a` is served before `b`.
protocol HeapOrdered {
    static func servedBefore(_ a: Self, _ b: Self) -> Bool
}

/// A binary heap that serves entries in their `HeapOrdered` order; its storage is kept
/// across `removeAll()` so reusing one heap per word allocates nothing.
struct PriorityHeap<Entry: HeapOrdered> {
    private var items: [Entry] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ entry: Entry) {
        items.append(entry)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if !Entry.servedBefore(items[child], items[parent]) { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            let count = items.count
            while true {
                let left = 2 * parent + 1
                if left >= count { break }
                var first = left
                if left + 1 < count && Entry.servedBefore(items[left + 1], items[left]) { first = left + 1 }
                if !Entry.servedBefore(items[first], items[parent]) { break }
                items.swapAt(parent, first)
                parent = first
            }
        }
        return top
    }
}
