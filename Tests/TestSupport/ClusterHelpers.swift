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

/// Runs `requests` at once; `whenUnderway` runs once the first has `after` tokens.
public func runConcurrently(_ driver: ClusterDriver, _ requests: [PipelineRequest], after: Int = 10,
                     whenUnderway: @escaping @Sendable () async -> Void = {}) async -> [(tokens: [Int32], end: PipelineEvent?)] {
    final class Once: Sendable { let fired = Atomic<Bool>(false) }
    let once = Once()
    return await withTaskGroup(of: (Int, [Int32], PipelineEvent?).self) { group in
        for (i, request) in requests.enumerated() {
            group.addTask {
                var tokens: [Int32] = []
                var end: PipelineEvent?
                for await event in driver.events(request) {
                    switch event {
                    case let .token(t, _):
                        tokens.append(t)
                        if i == 0, tokens.count == after, !once.fired.exchange(true, ordering: .relaxed) { await whenUnderway() }
                    case .done, .failed: end = event
                    }
                }
                return (i, tokens, end)
            }
        }
        var out = [(tokens: [Int32], end: PipelineEvent?)](repeating: ([], nil), count: requests.count)
        for await (i, tokens, end) in group { out[i] = (tokens, end) }
        return out
    }
}

