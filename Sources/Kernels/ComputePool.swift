#if canImport(Glibc)
import Glibc
#endif
import CKernels
import Synchronization

/// A persistent pool of worker threads for the many small parallel loops of a forward pass.
///
/// A decode step issues a few hundred mat-vecs, each only microseconds long, so waking threads
/// through a dispatch queue per call would cost more than the work. Workers here spin on a
/// generation counter for a short while, then park on a condition variable; the calling thread
/// takes part as worker 0, so `threadCount` includes it.
public final class ComputePool: @unchecked Sendable {
    public let threadCount: Int
    private let generation = Atomic<UInt64>(0)
    private let remaining = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let resting = Atomic<Bool>(false)
    private let wakeups = Atomic<UInt64>(0)
    private var job: ((Int) -> Void)?
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    /// Serializes callers: one job runs at a time, so concurrent callers queue instead of
    /// corrupting each other's job.
    private var runLock = pthread_mutex_t()
    private var threads: [pthread_t] = []
    private static let spinLimit = 200_000

    /// A pool of `threadCount` threads in all (at least 1), counting the caller.
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        pthread_mutex_init(&runLock, nil)
        for index in 1 ..< self.threadCount {
            let box = Unmanaged.passRetained(WorkerContext(pool: self, index: index))
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                guard let raw else { return nil }
                let context = Unmanaged<WorkerContext>.fromOpaque(raw).takeRetainedValue()
                context.pool.workerLoop(index: context.index)
                return nil
            }, box.toOpaque())
            if rc == 0 { threads.append(thread) } else { box.release() }
        }
    }

    deinit {
        stopping.store(true, ordering: .releasing)
        generation.add(1, ordering: .releasing)
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        for t in threads { pthread_join(t, nil) }
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
        pthread_mutex_destroy(&runLock)
    }

    /// Number of threads actually running jobs (threads that failed to start are left out).
    public var activeThreads: Int { threads.count + 1 }

    /// Runs `body(worker)` once on every thread, worker 0 on the caller, and returns when all
    /// have finished. Concurrent callers take turns; `body` must not call `run` itself.
    public func run(_ body: (Int) -> Void) {
        let workers = threads.count
        if workers == 0 { body(0); return }
        pthread_mutex_lock(&runLock)
        defer { pthread_mutex_unlock(&runLock) }
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            resting.store(false, ordering: .relaxed)
            remaining.store(workers, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            wakeSleepers()
            escapable(0)
            var spins = 0
            while remaining.load(ordering: .acquiring) > 0 {
                spins += 1
                // A worker that is not running (its core taken by another process) would keep
                // us spinning for a whole time slice: give the core up now and then.
                if spins & 255 == 0 { sched_yield() } else { spinPause() }
            }
            job = nil
        }
    }

    /// Asks idle workers to park now instead of spinning. A process that shares its cores with
    /// others (pipeline nodes on one machine) calls this when it runs out of work, so the
    /// spinning does not steal the core the next stage needs. The next `run` wakes them.
    public func rest() {
        resting.store(true, ordering: .releasing)
    }

    /// Gets parked workers spinning again ahead of the next `run`, so that their wake-up
    /// overlaps the caller's own preparation instead of delaying the first parallel loop.
    public func wake() {
        resting.store(false, ordering: .relaxed)
        wakeups.add(1, ordering: .sequentiallyConsistent)
        wakeSleepers()
    }

    /// Wakes parked workers, after the caller bumped `generation` or `wakeups` (sequentially
    /// consistent, so a worker about to park either sees the bump or is counted in `sleepers`).
    private func wakeSleepers() {
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(&mutex)
            pthread_cond_broadcast(&cond)
            pthread_mutex_unlock(&mutex)
        }
    }

    /// Splits `0..<count` into one contiguous range per thread, in multiples of `granule`.
    public func parallelFor(_ count: Int, granule: Int = 1, _ body: (Range<Int>) -> Void) {
        let n = activeThreads
        if n == 1 || count <= granule { body(0 ..< count); return }
        let units = (count + granule - 1) / granule
        run { worker in
            let lo = units * worker / n * granule
            let hi = min(count, units * (worker + 1) / n * granule)
            if lo < hi { body(lo ..< hi) }
        }
    }

    private func workerLoop(index: Int) {
        var seen: UInt64 = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins < Self.spinLimit && !resting.load(ordering: .relaxed) {
                    if spins & 255 == 0 { sched_yield() } else { spinPause() }
                } else {
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    let woken = wakeups.load(ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen,
                          wakeups.load(ordering: .sequentiallyConsistent) == woken {
                        pthread_cond_wait(&cond, &mutex)
                    }
                    sleepers.subtract(1, ordering: .relaxed)
                    pthread_mutex_unlock(&mutex)
                    spins = 0
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if stopping.load(ordering: .acquiring) { return }
            job?(index)
            remaining.subtract(1, ordering: .releasing)
        }
    }

    @inline(__always) private func spinPause() { pg_cpu_relax() }
}

private final class WorkerContext {
    let pool: ComputePool
    let index: Int
    init(pool: ComputePool, index: Int) {
        self.pool = pool
        self.index = index
    }
}
