import Foundation
import PipelineClient
import StarStream
import Synchronization

/// A wait that ran out.
public struct WaitTimeout: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass, then fails naming `what`.
public func waitFor(_ what: String, seconds: Double, _ condition: @Sendable () async -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !(await condition()) {
        guard Date() < deadline else { throw WaitTimeout(message: "timed out after \(seconds) s waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// Runs `requests` at once. `whenUnderway` runs once request 0 has `after` tokens, right in
/// the driver's callback on the connection's event loop: it fires while the cluster is really
/// mid-run, however busy this process's async threads are (so it must not block).
public func runConcurrently(_ driver: ClusterDriver, _ requests: [PipelineRequest], after: Int = 10,
                            whenUnderway: @escaping @Sendable () -> Void = {}) async -> [(tokens: [Int32], end: PipelineEvent?)] {
    final class Collected: Sendable {
        let results: Mutex<[(tokens: [Int32], end: PipelineEvent?)]>
        let fired = Atomic<Bool>(false)
        init(_ count: Int) { results = Mutex(Array(repeating: ([], nil), count: count)) }
    }
    let collected = Collected(requests.count)
    await withTaskGroup(of: Void.self) { group in
        for (i, request) in requests.enumerated() {
            group.addTask {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    driver.submit(request) { event in
                        switch event {
                        case let .token(token):
                            let t = token.tokenID
                            let count = collected.results.withLock { r in
                                r[i].tokens.append(t)
                                return r[i].tokens.count
                            }
                            if i == 0, count == after, !collected.fired.exchange(true, ordering: .relaxed) { whenUnderway() }
                        case .done, .failed:
                            collected.results.withLock { $0[i].end = event }
                            done.resume()
                        }
                    }
                }
            }
        }
    }
    return collected.results.withLock { $0 }
}
