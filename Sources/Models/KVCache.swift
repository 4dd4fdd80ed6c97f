/// The keys and values of one sequence for a contiguous range of layers, preallocated for a
/// fixed number of positions so decoding never allocates.
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    public let capacity: Int
    public let width: Int
    /// Positions written so far; the next token goes at this position.
    public private(set) var length: Int = 0
    private let storage: UnsafeMutablePointer<Float>

    /// A cache for `layerCount` layers of `width` (kv_heads·head_dim) floats per position.
    public init(layerCount: Int, capacity: Int, width: Int) {
        self.layerCount = layerCount
        self.capacity = max(1, capacity)
        self.width = width
        storage = .allocate(capacity: max(1, 2 * layerCount * self.capacity * width))
    }

    deinit { storage.deallocate() }

    public var byteCount: Int { 2 * layerCount * capacity * width * MemoryLayout<Float>.size }

    /// Keys of local layer `layer`: [capacity × width].
    @inline(__always) func keys(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage + (2 * layer) * capacity * width
    }

    @inline(__always) func values(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage + (2 * layer + 1) * capacity * width
    }

    /// Forgets positions from `position` on (a new prompt, or a rewind).
    public func truncate(to position: Int) { length = max(0, min(length, position)) }

    public func reset() { length = 0 }

    func commit(upTo position: Int) { length = max(length, position) }
}
