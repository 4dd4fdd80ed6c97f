import Synchronization

/// Admission for one model: at most `limit` sequences run at once (the cluster's KV slots),
/// up to `maxWaiting` requests wait their turn in arrival order, and beyond that a request is
/// refused at once (429 with Retry-After) instead of queueing without bound.
public final class RequestQueue: Sendable {
    private struct State {
        var inFlight = 0
        var waiting: [(id: UInt64, count: Int, wake: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }

    public let limit: Int
    public let maxWaiting: Int
    private let state = Mutex(State())

    public init(limit: Int, maxWaiting: Int) {
        self.limit = max(1, limit)
        self.maxWaiting = max(0, maxWaiting)
    }

    public var inFlight: Int { state.withLock { $0.inFlight } }
    public var waiting: Int { state.withLock { $0.waiting.count } }

    /// Takes `count` slots (a request's choices), waiting in line if they are taken. Throws a
    /// 429 when the line is full, and CancellationError when the caller is cancelled while waiting.
    public func acquire(_ count: Int) async throws {
        let count = min(max(1, count), limit)
        let id: UInt64? = try state.withLock { s throws(APIError) -> UInt64? in
            if s.waiting.isEmpty, s.inFlight + count <= limit {
                s.inFlight += count
                return nil
            }
            guard s.waiting.count < maxWaiting else {
                throw APIError.overloaded("the server is busy: \(s.inFlight) sequences run and \(s.waiting.count) requests wait; retry shortly")
            }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (wake: CheckedContinuation<Void, any Error>) in
                let admitted = state.withLock { s -> Bool in
                    if s.waiting.isEmpty, s.inFlight + count <= limit {
                        s.inFlight += count
                        return true
                    }
                    s.waiting.append((id, count, wake))
                    return false
                }
                if admitted { wake.resume() }
            }
        } onCancel: {
            let gone = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiting.remove(at: i).wake
            }
            gone?.resume(throwing: CancellationError())
        }
    }

    /// Gives back `count` slots and lets the next waiting requests in.
    public func release(_ count: Int) {
        let count = min(max(1, count), limit)
        let woken = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            s.inFlight = max(0, s.inFlight - count)
            var out: [CheckedContinuation<Void, any Error>] = []
            while let first = s.waiting.first, s.inFlight + first.count <= limit {
                s.inFlight += first.count
                out.append(s.waiting.removeFirst().wake)
            }
            return out
        }
        for w in woken { w.resume() }
    }
}
