#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GGUF
import Models
import Node
import PipelineClient
import Sampling
import StarStream
import Synchronization
import Testing
import TestSupport

/// The scheduler's parts without sockets: the sequence table, the batch builder, and the whole
/// compute loop fed by hand with frames captured from its outputs.
struct SchedulerTests {
    static let request = SequenceOpen(promptLength: 3, maxNewTokens: 4, sampling: .greedy)

    static func sequence(_ id: UInt64, prompt: UInt32 = 3, now: Int = 0) -> StageSequence {
        StageSequence(id: id, request: SequenceOpen(promptLength: prompt, maxNewTokens: 4, sampling: .greedy), capacity: 16,
                      origin: nil, now: now)
    }

    static func tinyModel() throws -> TransformerModel {
        try TransformerModel(file: TinyModel.file(TinyModelSpec()))
    }

    @Test func theTableAdmitsUpToItsLimitQueuesTheRestAndAdmitsThemInOrder() throws {
        let model = try Self.tinyModel()
        var table = SequenceTable(maxSequences: 2)
        let cache = { model.makeCache(capacity: 16) }
        for id: UInt64 in 1 ... 4 {
            let s = Self.sequence(id)
            table.insert(s)
            if table.hasFreeSlot { table.admit(s, cache: cache()) } else { table.wait(s) }
        }
        #expect(table.activeCount == 2 && table.waiting == [3, 4] && table.count == 4)
        #expect(table.nextToAdmit() == nil, "no free slot yet")
        table.release(1)
        let next = table.nextToAdmit()
        #expect(next?.id == 3)
        if let next { table.admit(next, cache: cache()) }
        #expect(table.activeCount == 2 && table.waiting == [4])
        // Releasing a waiting sequence just removes it; releasing twice is harmless.
        table.release(4)
        #expect(table.release(4) == nil)
        #expect(table.waiting.isEmpty && table.order == [2, 3])
    }

    @Test func idleSequencesAreTheAdmittedOnesThatHeardNothingSinceTheCutoff() throws {
        let model = try Self.tinyModel()
        var table = SequenceTable(maxSequences: 1)
        let a = Self.sequence(1, now: 100)
        let b = Self.sequence(2, now: 50)
        table.insert(a)
        table.admit(a, cache: model.makeCache(capacity: 16))
        table.insert(b)
        table.wait(b)
        #expect(table.idle(before: 101).map(\.id) == [1])
        #expect(table.idle(before: 100).isEmpty)
        #expect(table.nextIdleDeadline(limit: 30) == 130, "the waiting sequence has no deadline")
        a.lastActivity = 200
        #expect(table.nextIdleDeadline(limit: 30) == 230)
    }

    @Test func batchesTakeDecodeRowsFirstThenSplitPromptsToTheBudget() throws {
        let model = try Self.tinyModel()
        var table = SequenceTable(maxSequences: 4)
        let builder = BatchBuilder(maxRows: 5, width: 8, logitCapacity: 4, embedsTokens: true, samples: true)
        let long = Self.sequence(1, prompt: 7)
        long.pending = [.tokens(start: 0, [1, 2, 3, 4, 5, 6, 7])]
        let decoding = Self.sequence(2)
        decoding.generated = 1
        decoding.pending = [.token(start: 3, 9)]
        for s in [long, decoding] {
            table.insert(s)
            table.admit(s, cache: model.makeCache(capacity: 16))
        }
        // Node 0 runs decode rows only in the group the planner released.
        #expect(builder.build(decodeGroup: [decoding], table: table))
        #expect(builder.members.map(\.sequence.id) == [2, 1])
        #expect(builder.members.map(\.count) == [1, 4])
        #expect(Array(UnsafeBufferPointer(start: builder.tokenInput, count: builder.rows)) == [9, 1, 2, 3, 4])
        // The decode row samples; the prompt chunk does not reach the prompt's end yet.
        #expect(builder.members.map(\.wantsLogits) == [true, false])
        // The rest of the prompt next, and it wants logits at its end.
        #expect(builder.build(decodeGroup: [], table: table))
        #expect(builder.members.map(\.sequence.id) == [1] && builder.members[0].start == 4 && builder.members[0].count == 3)
        #expect(builder.members[0].wantsLogits)
        #expect(!builder.build(decodeGroup: [], table: table))
    }

    @Test func theLogitRowsAreCappedPerBatch() throws {
        let model = try Self.tinyModel()
        var table = SequenceTable(maxSequences: 4)
        let builder = BatchBuilder(maxRows: 16, width: 8, logitCapacity: 2, embedsTokens: false, samples: true)
        for id: UInt64 in 1 ... 3 {
            let s = Self.sequence(id, prompt: 1)
            s.pending = [.hidden(start: 0, count: 1, [Float](repeating: Float(id), count: 8))]
            table.insert(s)
            table.admit(s, cache: model.makeCache(capacity: 16))
        }
        #expect(builder.build(decodeGroup: [], table: table))
        #expect(builder.members.count == 2 && builder.rows == 2)
        #expect(builder.build(decodeGroup: [], table: table))
        #expect(builder.members.count == 1)
    }

    // MARK: The compute loop without sockets

    /// Collects what a scheduler sends: to its next stage and to its drivers.
    final class Sink: SequenceOrigin, @unchecked Sendable {
        let frames = Mutex<[StarStreamFrame]>([])
        let linkUp = Atomic<Bool>(true)
        func send(_ frame: StarStreamFrame) { frames.withLock { $0.append(frame) } }

        /// Waits (up to 10 s) until a frame matches.
        func wait(for what: String, _ match: (StarStreamFrame) -> Bool) throws -> StarStreamFrame {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if let f = frames.withLock({ $0.first(where: match) }) { return f }
                usleep(2000)
            }
            throw NodeError.network("no \(what) within 10 s; got \(frames.withLock { $0.map(\.payload.frameType) })")
        }
    }

    static func scheduler(layers: Range<Int>, next: Sink, idle: Double = 30) throws -> StageScheduler {
        let file = try TinyModel.file(TinyModelSpec())
        let model = try TransformerModel(file: file, layers: layers)
        var c = NodeConfiguration(modelPath: "", layers: layers, listen: NodeAddress(host: "127.0.0.1", port: 1),
                                  next: NodeAddress(host: "127.0.0.1", port: 2))
        c.threads = 1
        c.maxSequences = 4
        c.contextLength = 32
        c.maxBatchTokens = 8
        c.sequenceIdleSeconds = idle
        let s = StageScheduler(model: model, configuration: c, sendNext: { frames in
            guard next.linkUp.load(ordering: .relaxed) else { return false }
            for f in frames { next.send(f) }
            return true
        }, ringReady: { true }, logger: quietLogger)
        s.start()
        return s
    }

    @Test func aWholeModelOnOneStageSamplesAndFinishes() throws {
        let next = Sink()
        let driver = Sink()
        let s = try Self.scheduler(layers: 0 ..< 4, next: next)
        defer { s.stop() }
        s.submit(.open(5, SequenceOpen(promptLength: 3, maxNewTokens: 2, sampling: .greedy), origin: driver))
        s.submit(.prompt(5, PromptChunk(firstPosition: 0, tokens: [3, 4, 5]), from: driver))
        // One stage is first and last: its TOKEN goes "around the ring" to itself.
        let token = try next.wait(for: "TOKEN") { if case .token = $0.payload { true } else { false } }
        #expect(token.sequenceID == 5 && token.position == 3)
        guard case let .token(message) = token.payload else { return }
        s.submit(.token(5, position: 3, message))
        _ = try driver.wait(for: "TOKEN to the driver") { if case .token = $0.payload { true } else { false } }
        #expect(s.counters.activeSequences.load(ordering: .relaxed) == 1)
    }

    @Test func aSequenceThatHearsNothingIsFreedAndReportedAlongTheRing() throws {
        let next = Sink()
        let s = try Self.scheduler(layers: 1 ..< 3, next: next, idle: 0.2)
        defer { s.stop() }
        s.submit(.open(9, Self.request, origin: nil))
        _ = try next.wait(for: "the forwarded OPEN") { if case .open = $0.payload { true } else { false } }
        let error = try next.wait(for: "ERROR 108") { if case .error(108, _) = $0.payload { true } else { false } }
        #expect(error.sequenceID == 9)
        #expect(s.counters.idleExpired.load(ordering: .relaxed) == 1)
        #expect(s.counters.activeSequences.load(ordering: .relaxed) == 0)
    }

    @Test func aFrameLostOnADownLinkFailsItsSequenceToTheDriverAtOnce() throws {
        let next = Sink()
        let driver = Sink()
        next.linkUp.store(false, ordering: .relaxed)
        let s = try Self.scheduler(layers: 0 ..< 2, next: next)
        defer { s.stop() }
        s.submit(.open(4, Self.request, origin: driver))
        let error = try driver.wait(for: "ERROR 106") { if case .error(106, _) = $0.payload { true } else { false } }
        #expect(error.sequenceID == 4)
        #expect(s.counters.activeSequences.load(ordering: .relaxed) == 0)
        #expect(s.counters.droppedFrames.load(ordering: .relaxed) >= 1)
    }

    @Test func aRingResetDropsEverySequenceAndTravelsOnWithItsOrigin() throws {
        let next = Sink()
        let s = try Self.scheduler(layers: 1 ..< 3, next: next)
        defer { s.stop() }
        s.submit(.open(1, Self.request, origin: nil))
        s.submit(.open(2, Self.request, origin: nil))
        _ = try next.wait(for: "both OPENs") { $0.sequenceID == 2 }
        #expect(s.counters.activeSequences.load(ordering: .relaxed) == 2)
        s.submit(.dropAll(code: StarStreamErrorCode.pipelineBroken, reason: "test", forwardFrom: 3))
        let reset = try next.wait(for: "the reset") { $0.sequenceID == 0 }
        #expect(reset.position == 3)
        if case let .error(code, _) = reset.payload { #expect(code == 106) } else { Issue.record("not an ERROR") }
        let deadline = Date().addingTimeInterval(5)
        while s.counters.activeSequences.load(ordering: .relaxed) != 0, Date() < deadline { usleep(2000) }
        #expect(s.counters.activeSequences.load(ordering: .relaxed) == 0)
    }
}
