#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import Node
import PipelineClient
import StarStream
import Synchronization
import Testing
import TestSupport

@Suite(.serialized) struct RingTests {
    /// F32 on the wire is exact, so the ring must reproduce one process token for token. F16
    /// and Q8 round the hidden states; on a random tiny model that can flip a near-tie, so
    /// here they must only complete (tests/PipelineProcessTests compare them on real models).
    @Test(arguments: [WireDType.f32, .f16, .q8])
    func threeNodesGiveTheSameGreedyTokensAsOneProcess(_ wire: WireDType) async throws {
        let ring = try TestRing(split: [0 ..< 2, 2 ..< 4, 4 ..< 6], wire: wire)
        defer { ring.stop() }
        let driver = try await ring.driver()
        for prompt: [Int32] in [[1, 5, 9], [3], [7, 7, 7, 7, 12, 40, 2, 9, 11, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]] {
            let expected = try ring.localGreedy(prompt: prompt, count: 12)
            let (tokens, end) = await collect(driver, PipelineRequest(prompt: prompt, maxNewTokens: 12, sampling: greedyWire, stopTokens: []))
            if wire == .f32 { #expect(tokens == expected, "prompt \(prompt)") } else { #expect(tokens.count == 12) }
            guard case let .done(cause, generated) = end else { Issue.record("ended with \(String(describing: end))"); continue }
            #expect(cause == .length && generated == 12)
        }
        await driver.close()
    }

    @Test func concurrentSequencesAreBatchedWithoutMixingUp() async throws {
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6])
        defer { ring.stop() }
        let driver = try await ring.driver()
        var prompts: [[Int32]] = []
        for i in 0 ..< 6 {
            var p: [Int32] = []
            for j in 0 ... i { p.append(Int32((j * 13 + i * 7) % 60 + 1)) }
            prompts.append(p)
        }
        let expected = try prompts.map { try ring.localGreedy(prompt: $0, count: 10) }
        let results = await withTaskGroup(of: (Int, [Int32]).self) { group in
            for (i, p) in prompts.enumerated() {
                group.addTask {
                    (i, await collect(driver, PipelineRequest(prompt: p, maxNewTokens: 10, sampling: greedyWire, stopTokens: [])).tokens)
                }
            }
            var out = [[Int32]](repeating: [], count: prompts.count)
            for await (i, tokens) in group { out[i] = tokens }
            return out
        }
        #expect(results == expected)
        // The caches went back: every node ends with no sequences.
        try await waitFor("every node to end with no sequences", seconds: 5) {
            ring.nodes.allSatisfy { $0.counters.activeSequences.load(ordering: .relaxed) == 0 }
        }
        var rowsAlone = 0
        for p in prompts { rowsAlone += p.count + 9 }
        #expect(ring.nodes[1].counters.rows.load(ordering: .relaxed) == rowsAlone)
        await driver.close()
    }

    /// Node 0 releases decode rows a group at a time (DecodeGroupPlannerTests test the rule),
    /// so sequences that start later merge into the groups already running and each group
    /// crosses every stage as one batch per step, with every sequence's tokens intact.
    @Test(arguments: [1, 2])
    func lateSequencesJoinTheRunningDecodeGroups(_ groups: Int) async throws {
        let ring = try TestRing(split: [0 ..< 2, 2 ..< 4, 4 ..< 6], contextLength: 96, decodeGroups: groups)
        defer { ring.stop() }
        let driver = try await ring.driver()
        let streams = 6, steps = 48
        let prompts = (0 ..< streams).map { i in [Int32(i * 5 + 1)] }
        let expected = try prompts.map { try ring.localGreedy(prompt: $0, count: steps) }
        let first = ring.nodes[0].counters
        // Node 0's batch count when the last late sequence had its first token: from then on
        // every sequence is decoding.
        let allDecoding = Counter()
        let results = await withTaskGroup(of: (Int, [Int32]).self) { group in
            for (i, p) in prompts.enumerated() {
                if i == streams / 2 {
                    // The first half is decoding by now.
                    do {
                        try await waitFor("the first half to decode", seconds: 30) { first.rows.load(ordering: .relaxed) >= 8 * streams / 2 }
                    } catch {
                        Issue.record("\(error)")
                    }
                }
                let late = i >= streams / 2
                group.addTask {
                    var tokens: [Int32] = []
                    for await event in driver.events(PipelineRequest(prompt: p, maxNewTokens: steps, sampling: greedyWire, stopTokens: [])) {
                        guard case let .token(token) = event else { continue }
                        let id = token.tokenID
                        if late && tokens.isEmpty { allDecoding.raise(to: first.batches.load(ordering: .relaxed)) }
                        tokens.append(id)
                    }
                    return (i, tokens)
                }
            }
            var out = [[Int32]](repeating: [], count: prompts.count)
            for await (i, tokens) in group { out[i] = tokens }
            return out
        }
        #expect(results == expected)
        #expect(first.rows.load(ordering: .relaxed) == streams * steps)
        // Once all are decoding, one batch per group per step for at most `steps` steps. With
        // one group, late sequences that never merged would add a batch for every step the two
        // halves overlap (however the timing falls on a loaded machine, this bound holds).
        let batches = first.batches.load(ordering: .relaxed)
        let before = allDecoding.value
        #expect(batches <= before + groups * steps + 8, "\(batches) batches at node 0, \(before) before all were decoding")
        await driver.close()
    }

    @Test func stopTokenEndsTheSequenceAndSecondNodeWaitsForSlots() async throws {
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6], maxSequences: 1)
        defer { ring.stop() }
        let driver = try await ring.driver()
        let expected = try ring.localGreedy(prompt: [4, 8], count: 8)
        let stop = expected[3]
        let cut = expected.firstIndex(of: stop)!
        // Two requests, one slot: the second waits for the first instead of failing.
        async let a = collect(driver, PipelineRequest(prompt: [4, 8], maxNewTokens: 8, sampling: greedyWire, stopTokens: [stop]))
        async let b = collect(driver, PipelineRequest(prompt: [4, 8], maxNewTokens: 8, sampling: greedyWire, stopTokens: []))
        let (ra, rb) = await (a, b)
        #expect(ra.tokens == Array(expected[...cut]))
        if case let .done(cause, _) = ra.end { #expect(cause == .stop) } else { Issue.record("a: \(String(describing: ra.end))") }
        #expect(rb.tokens == expected)
        await driver.close()
    }

    @Test func cancelFreesTheSequenceOnEveryNode() async throws {
        let ring = try TestRing(split: [0 ..< 2, 2 ..< 4, 4 ..< 6])
        defer { ring.stop() }
        let driver = try await ring.driver()
        let seen = Counter()
        let finished = Counter()
        // The CANCEL goes out from the driver's callback at the third token, on the connection's
        // event loop, so it lands mid-generation however slowly this test's task is scheduled.
        let cancel = CancelAfter(driver, tokens: 3)
        let id = try driver.submit(PipelineRequest(prompt: [1, 2, 3], maxNewTokens: 60, sampling: greedyWire, stopTokens: [])) { event in
            switch event {
            case .token:
                seen.increment()
                cancel.tokenArrived()
            case let .done(cause, _): if cause == .cancelled { finished.increment() }
            case .failed: break
            }
        }
        cancel.submitted(id)
        try await waitFor("DONE(cancelled)", seconds: 10) { finished.value == 1 }
        try await waitFor("every node to free the sequence", seconds: 5) {
            ring.nodes.allSatisfy { $0.counters.activeSequences.load(ordering: .relaxed) == 0 }
        }
        #expect(seen.value < 60)
        await driver.close()
    }

    @Test func badRequestsGetTypedErrors() async throws {
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6])
        defer { ring.stop() }
        let driver = try await ring.driver()
        // Token outside the vocabulary, a prompt longer than the context, NaN temperature.
        var r = await collect(driver, PipelineRequest(prompt: [1, 999], maxNewTokens: 4, sampling: greedyWire, stopTokens: []))
        guard case let .failed(.remote(code, _)) = r.end else { Issue.record("\(String(describing: r.end))"); return }
        #expect(code == StarStreamErrorCode.tokenOutOfRange)
        r = await collect(driver, PipelineRequest(prompt: [Int32](repeating: 1, count: 65), maxNewTokens: 4, sampling: greedyWire, stopTokens: []))
        if case let .failed(.remote(code, _)) = r.end { #expect(code == StarStreamErrorCode.badRequest) } else { Issue.record("long prompt") }
        // A prompt far beyond the context (several PROMPT frames) is refused the same way, and
        // the connection stays usable.
        r = await collect(driver, PipelineRequest(prompt: [Int32](repeating: 1, count: 5000), maxNewTokens: 4, sampling: greedyWire, stopTokens: []))
        if case let .failed(.remote(code, _)) = r.end { #expect(code == StarStreamErrorCode.badRequest) } else { Issue.record("huge prompt: \(String(describing: r.end))") }
        var nan = greedyWire
        nan.temperature = .nan
        r = await collect(driver, PipelineRequest(prompt: [1], maxNewTokens: 4, sampling: nan, stopTokens: []))
        if case let .failed(.remote(code, _)) = r.end { #expect(code == StarStreamErrorCode.badRequest) } else { Issue.record("nan") }
        // The ring still serves.
        r = await collect(driver, PipelineRequest(prompt: [1, 2], maxNewTokens: 3, sampling: greedyWire, stopTokens: []))
        #expect(r.tokens.count == 3)
        await driver.close()
    }

    @Test func logprobsAreTheModelsLogSoftmax() async throws {
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6])
        defer { ring.stop() }
        let driver = try await ring.driver()
        let prompt: [Int32] = [2, 9, 4]
        let expected = try ring.localLogprob(prompt: prompt)
        var request = PipelineRequest(prompt: prompt, maxNewTokens: 1, sampling: greedyWire, stopTokens: [])
        request.logprobs = true
        var got: (Int32, Float?)?
        for await event in driver.events(request) {
            if case let .token(t) = event { got = (t.tokenID, t.logprob) }
        }
        #expect(got?.0 == expected.token)
        let logprob = try #require(got?.1)
        #expect(abs(logprob - expected.logprob) < 1e-4, "\(logprob) vs \(expected.logprob)")
        // With top_logprobs, the TOKEN carries the most likely tokens of the same distribution.
        request.topLogprobs = 5
        var alternatives: [TokenAlternative] = []
        for await event in driver.events(request) {
            if case let .token(t) = event { alternatives = t.alternatives }
        }
        let all = try ring.localLogprobs(prompt: prompt)
        let best = all.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }.prefix(5)
        #expect(alternatives.map(\.tokenID) == best.map { Int32($0.offset) })
        for (a, b) in zip(alternatives, best) { #expect(abs(a.logprob - b.element) < 1e-4) }
        #expect(alternatives.first?.tokenID == expected.token)
        await driver.close()
    }

    @Test func wrongClusterTokenIsRefused() async throws {
        let ring = try TestRing(split: [0 ..< 6])
        defer { ring.stop() }
        await #expect(throws: PipelineError.self) {
            _ = try await PipelineDriver.connect(host: "127.0.0.1", port: ring.ports[0], clusterToken: "wrong", modelDigest: ring.digest)
        }
        await #expect(throws: PipelineError.self) {
            _ = try await PipelineDriver.connect(host: "127.0.0.1", port: ring.ports[0], clusterToken: ring.token,
                                                 modelDigest: [UInt8](repeating: 7, count: 32))
        }
    }

    @Test func garbageHTTPAndHalfFramesLeaveTheNodeServing() async throws {
        let ring = try TestRing(split: [0 ..< 3, 3 ..< 6])
        defer { ring.stop() }
        let driver = try await ring.driver()
        let baseline = await collect(driver, PipelineRequest(prompt: [5, 6], maxNewTokens: 6, sampling: greedyWire, stopTokens: []))
        for port in ring.ports {
            // Garbage and an HTTP request get an ERROR frame and a close.
            for junk in [Array("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n".utf8), (0 ..< 300).map { UInt8(truncatingIfNeeded: $0 &* 37) }] {
                let reply = try RawPeer.exchange(port: port, send: junk)
                #expect(reply.count >= 32 && Array(reply.prefix(4)) == Array("PGSS".utf8), "port \(port): \(reply.count) bytes")
            }
            // Half a frame, then the peer goes away; and a peer that never says anything.
            var hello = ByteBuffer()
            try StarStreamCodec.encode(StarStreamFrame(payload: .hello(Hello(role: .driver, clusterToken: ring.token, modelDigest: ring.digest))), into: &hello)
            _ = try RawPeer.exchange(port: port, send: Array(hello.readableBytesView.prefix(20)), wait: 0.05)
            // A node peer must present the right layers.
            var wrong = ByteBuffer()
            try StarStreamCodec.encode(StarStreamFrame(payload: .hello(Hello(role: .node, clusterToken: ring.token, modelDigest: ring.digest,
                                                                               firstLayer: 1, endLayer: 2))), into: &wrong)
            let refused = try RawPeer.exchange(port: port, send: Array(wrong.readableBytesView))
            #expect(refused.count >= 32)
        }
        let after = await collect(driver, PipelineRequest(prompt: [5, 6], maxNewTokens: 6, sampling: greedyWire, stopTokens: []))
        #expect(after.tokens == baseline.tokens && after.tokens.count == 6)
        await driver.close()
    }

    @Test func killingANodeFailsTheRequestWithinFiveSeconds() async throws {
        var spec = TestRing.spec()
        spec.contextLength = 4096
        let ring = try TestRing(split: [0 ..< 2, 2 ..< 4, 4 ..< 6], spec: spec, probeTimeout: 1.0, contextLength: 4096)
        defer { ring.stop() }
        let driver = try await ring.driver()
        let seen = Counter()
        let killedAt = Mutex<Date?>(nil)
        let failedAt = Mutex<Date?>(nil)
        // Node 1 is stopped from a thread started at the third token, so the kill lands
        // mid-generation even when this test's task is starved by the tests running beside it.
        _ = try driver.submit(PipelineRequest(prompt: [1, 2, 3], maxNewTokens: 4000, sampling: greedyWire, stopTokens: [])) { event in
            switch event {
            case .token:
                seen.increment()
                if seen.value == 3 {
                    killedAt.withLock { $0 = Date() }
                    Thread.detachNewThread { ring.nodes[1].stop() }
                }
            case .failed: failedAt.withLock { $0 = Date() }
            case .done: break
            }
        }
        try await waitFor("an error to reach the driver after the kill", seconds: 15) { failedAt.withLock { $0 != nil } }
        let killed = try #require(killedAt.withLock { $0 })
        let failed = try #require(failedAt.withLock { $0 })
        #expect(seen.value < 4000, "the kill did not land mid-generation")
        #expect(failed.timeIntervalSince(killed) < 5, "the error came \(failed.timeIntervalSince(killed)) s after the kill")
        await driver.close()
    }
}

/// Cancels a request from its own callback once `tokens` have arrived, whichever comes first:
/// the sequence id (known when `submit` returns) or the tokens.
final class CancelAfter: @unchecked Sendable {
    private let lock = NSLock()
    private let driver: PipelineDriver
    private let tokens: Int
    private var id: UInt64?
    private var seen = 0
    private var sent = false

    init(_ driver: PipelineDriver, tokens: Int) {
        self.driver = driver
        self.tokens = tokens
    }

    func submitted(_ id: UInt64) {
        lock.withLock { self.id = id }
        fireIfDue()
    }

    func tokenArrived() {
        lock.withLock { seen += 1 }
        fireIfDue()
    }

    private func fireIfDue() {
        let due: UInt64? = lock.withLock {
            guard !sent, seen >= tokens, let id else { return nil }
            sent = true
            return id
        }
        if let due { driver.cancel(due) }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
    func set(_ v: Int) { lock.withLock { count = v } }
    func raise(to v: Int) { lock.withLock { count = max(count, v) } }
}

/// A plain TCP client that sends bytes and reads whatever comes back until the peer closes.
enum RawPeer {
    static func exchange(port: Int, send bytes: [UInt8], wait: Double = 2) throws -> [UInt8] {
        try RawConnection(port: port).sendAndReadUntilClosed(bytes, seconds: wait)
    }
}
