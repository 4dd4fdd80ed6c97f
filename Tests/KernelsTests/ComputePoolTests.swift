#if canImport(Glibc)
import Glibc
#endif
import Kernels
import Synchronization
import Testing

@Suite struct ComputePoolTests {
    /// Every thread runs its share exactly once per job, whether the workers were spinning,
    /// parked by `rest()`, or woken early by `wake()` (which must not run anything by itself).
    @Test func jobsRunOnEveryThreadAcrossRestAndWake() {
        let pool = ComputePool(threadCount: 3)
        let hits = Atomic<Int>(0)
        for round in 0 ..< 200 {
            switch round % 4 {
            case 1: pool.rest()
            case 2:
                pool.rest()
                usleep(200)
                pool.wake()
                #expect(hits.load(ordering: .relaxed) == round * pool.activeThreads)
            case 3: pool.wake()
            default: break
            }
            pool.run { _ in hits.add(1, ordering: .relaxed) }
        }
        #expect(hits.load(ordering: .relaxed) == 200 * pool.activeThreads)
    }

    @Test func parallelForCoversTheRangeOnce() {
        let pool = ComputePool(threadCount: 2)
        let count = 1001
        let marks = UnsafeMutableBufferPointer<Int32>.allocate(capacity: count)
        defer { marks.deallocate() }
        marks.initialize(repeating: 0)
        pool.parallelFor(count, granule: 8) { range in
            for i in range { marks[i] += 1 }
        }
        #expect(marks.allSatisfy { $0 == 1 })
    }
}
