/// An open-addressing hash table from byte strings to `Int32` values.
///
/// Token texts are compared byte for byte (Swift `String` equality would merge canonically
/// equivalent texts, which llama.cpp keeps apart), and lookups take a buffer pointer so that the
/// hot paths look up slices of a larger text without building a key.
struct ByteStringTable: Sendable {
    /// Concatenated key bytes.
    private var keyBytes: [UInt8] = []
    /// Start of each entry's key in `keyBytes`; entry `i` ends where entry `i + 1` starts.
    private var keyStarts: [Int32] = [0]
    private var entryHashes: [UInt32] = []
    private(set) var values: [Int32] = []
    /// Entry index + 1 per slot; 0 is an empty slot.
    private var slots: [Int32]
    private var mask: Int

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: 0, count: size)
        mask = size - 1
        keyBytes.reserveCapacity(capacity * 8)
        keyStarts.reserveCapacity(capacity + 1)
        entryHashes.reserveCapacity(capacity)
        values.reserveCapacity(capacity)
    }

    var count: Int { values.count }

    @inline(__always)
    static func hash(_ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 29
        h = h &* 0xbf58_476d_1ce4_e5b9
        h ^= h >> 32
        return h
    }

    /// The key bytes of entry `index`.
    func key(at index: Int) -> ArraySlice<UInt8> {
        keyBytes[Int(keyStarts[index])..<Int(keyStarts[index + 1])]
    }

    @inline(__always)
    private func probe(_ key: UnsafeBufferPointer<UInt8>, hash: UInt64) -> (slot: Int, entry: Int?) {
        let h32 = UInt32(truncatingIfNeeded: hash)
        var slot = Int(truncatingIfNeeded: hash >> 20) & mask
        return keyBytes.withUnsafeBufferPointer { stored in
            while true {
                let entryPlusOne = Int(slots[slot])
                if entryPlusOne == 0 { return (slot, nil) }
                let entry = entryPlusOne - 1
                if entryHashes[entry] == h32 {
                    let start = Int(keyStarts[entry])
                    let length = Int(keyStarts[entry + 1]) - start
                    if length == key.count {
                        var same = true
                        var i = 0
                        while i < length {
                            if stored[start + i] != key[i] { same = false; break }
                            i += 1
                        }
                        if same { return (slot, entry) }
                    }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    /// The value stored for `key`, if any.
    @inline(__always)
    func find(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        let (_, entry) = probe(key, hash: Self.hash(key))
        guard let entry else { return nil }
        return values[entry]
    }

    func find(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { find($0) }
    }

    func find(_ key: ArraySlice<UInt8>) -> Int32? {
        key.withUnsafeBufferPointer { find($0) }
    }

    /// Inserts `key` with `value` unless the key is present; returns the value already stored
    /// in that case.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32) -> Int32? {
        let hash = Self.hash(key)
        let (slot, entry) = probe(key, hash: hash)
        if let entry { return values[entry] }
        keyBytes.append(contentsOf: key)
        keyStarts.append(Int32(truncatingIfNeeded: keyBytes.count))
        entryHashes.append(UInt32(truncatingIfNeeded: hash))
        values.append(value)
        slots[slot] = Int32(truncatingIfNeeded: values.count)
        if values.count * 2 > slots.count { grow() }
        return nil
    }

    @discardableResult
    mutating func insert(_ key: [UInt8], value: Int32) -> Int32? {
        key.withUnsafeBufferPointer { insert($0, value: value) }
    }

    private mutating func grow() {
        let size = slots.count * 2
        var newSlots = [Int32](repeating: 0, count: size)
        let newMask = size - 1
        keyBytes.withUnsafeBufferPointer { stored in
            for entry in 0..<values.count {
                let start = Int(keyStarts[entry])
                let end = Int(keyStarts[entry + 1])
                let hash = Self.hash(UnsafeBufferPointer(rebasing: stored[start..<end]))
                var slot = Int(truncatingIfNeeded: hash >> 20) & newMask
                while newSlots[slot] != 0 { slot = (slot + 1) & newMask }
                newSlots[slot] = Int32(entry + 1)
            }
        }
        slots = newSlots
        mask = newMask
    }
}

/// An open-addressing hash table from a pair of symbol ids to a merge: its rank and the id of
/// the merged symbol.
struct MergeTable: Sendable {
    private var keys: [UInt64]
    private var entries: [UInt64]
    private var mask: Int
    private(set) var count = 0

    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: size)
        entries = [UInt64](repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    private static func pack(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private static func slot(_ key: UInt64, mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    /// Inserts the merge unless the pair is already present (the first rank wins, as in
    /// llama.cpp).
    mutating func insert(left: Int32, right: Int32, rank: Int32, result: Int32) {
        let key = Self.pack(left, right)
        var slot = Self.slot(key, mask: mask)
        while keys[slot] != Self.empty {
            if keys[slot] == key { return }
            slot = (slot + 1) & mask
        }
        keys[slot] = key
        entries[slot] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: result))
        count += 1
        if count * 2 > keys.count { grow() }
    }

    /// The rank and merged symbol of the pair, if the pair merges.
    @inline(__always)
    func find(left: Int32, right: Int32) -> (rank: Int32, result: Int32)? {
        let key = Self.pack(left, right)
        var slot = Self.slot(key, mask: mask)
        while true {
            let stored = keys[slot]
            if stored == key {
                let entry = entries[slot]
                return (Int32(bitPattern: UInt32(truncatingIfNeeded: entry >> 32)),
                        Int32(bitPattern: UInt32(truncatingIfNeeded: entry)))
            }
            if stored == Self.empty { return nil }
            slot = (slot + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldEntries = entries
        let size = keys.count * 2
        keys = [UInt64](repeating: Self.empty, count: size)
        entries = [UInt64](repeating: 0, count: size)
        mask = size - 1
        for i in 0..<oldKeys.count where oldKeys[i] != Self.empty {
            var slot = Self.slot(oldKeys[i], mask: mask)
            while keys[slot] != Self.empty { slot = (slot + 1) & mask }
            keys[slot] = oldKeys[i]
            entries[slot] = oldEntries[i]
        }
    }
}
