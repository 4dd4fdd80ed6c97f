#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Kernels
import Logging
import Models
import PipelineClient
import Sampling
import StarStream
import Synchronization

/// Work handed from the network threads to the compute thread. Everything that touches a
/// sequence goes through this one queue, so sequence state lives on one thread without locks
/// and frames of one connection are handled in the order they arrived.
package enum StageWork: Sendable {
    case open(UInt64, SequenceOpen, origin: SequenceOrigin?)
    case prompt(UInt64, PromptChunk, from: SequenceOrigin)
    case activations(UInt64, Activations)
    case token(UInt64, position: UInt32, TokenMessage)
    case cancel(UInt64, from: SequenceOrigin?)
    case failed(UInt64, code: UInt16, message: String)
    case originClosed(SequenceOrigin)
    /// Every sequence is lost (the ring broke, a link reset, or a ring reset came around). With
    /// `forwardFrom`, the node also sends a ring reset on to the next stage, naming the first
    /// layer of the node where it started, so it stops when it gets back there.
    case dropAll(code: UInt16, reason: String, forwardFrom: UInt32?)
    /// Reports the sequence table, from the compute thread (diagnostics: `describeSequences`).
    case inspect(@Sendable ([String]) -> Void)
}

/// Counters a node reports (read from any thread).
public final class StageCounters: Sendable {
    public let batches = Atomic<Int>(0)
    public let rows = Atomic<Int>(0)
    public let activeSequences = Atomic<Int>(0)
    public let waitingSequences = Atomic<Int>(0)
    public let droppedFrames = Atomic<Int>(0)
    /// KV cache bytes the admitted sequences hold.
    public let kvBytes = Atomic<Int>(0)
    /// Sequences freed because they stayed idle past the deadline.
    public let idleExpired = Atomic<Int>(0)
    /// Tokens sampled (last node) or rows forwarded (other nodes).
    public let tokens = Atomic<Int>(0)
    /// Time spent in forward passes.
    public let computeNanoseconds = Atomic<Int>(0)
    init() {}
}

/// The compute side of a node: a dedicated thread that takes the work the network threads
/// queued, keeps the node's sequences (`SequenceTable`), forms one batch of every ready row
/// (`BatchBuilder`), runs this node's layers over it, and sends the results on (`StageEmitter`):
/// hidden states to the next stage, or on the last node a sampled token around the ring to
/// node 0. schedule → execute → emit, each part testable without sockets.
package final class StageScheduler: @unchecked Sendable {
    package let model: TransformerModel
    package let configuration: NodeConfiguration
    package let counters = StageCounters()
    private let pool: ComputePool
    private let state: ForwardState
    /// Sends frames to the next stage with one flush; false when the link is down (the frames
    /// are lost).
    private let sendFrames: @Sendable ([StarStreamFrame]) -> Bool
    private let ringReady: @Sendable () -> Bool
    private let logger: Logger

    private var queue: [StageWork] = []
    /// The queue's lock and wake-up, on the heap: a pointer to a Swift stored property is not
    /// guaranteed to stay the same address from one call to the next.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var stopping = false
    private var thread: pthread_t?

    // Compute-thread state.
    private var table: SequenceTable
    private let builder: BatchBuilder
    private let emitter: StageEmitter
    /// Node 0: which decode rows go into the ring when.
    private var planner: DecodeGroupPlanner
    /// When the compute thread must look again at a held group, though nothing arrived.
    private var holdDeadline: Int?
    private let idleLimit: Int
    /// Most bytes of KV cache the admitted sequences may hold together.
    package let kvBudget: Int
    /// Monotonic nanoseconds of the last "refusing OPENs" warning (one per 5 s at most).
    private var lastRefusalWarning = 0
    private let traceBatches = getenv("PANGALACTIC_TRACE") != nil

    package init(model: TransformerModel, configuration: NodeConfiguration, sendNext: @escaping @Sendable ([StarStreamFrame]) -> Bool,
         ringReady: @escaping @Sendable () -> Bool, logger: Logger) {
        self.model = model
        self.configuration = configuration
        sendFrames = sendNext
        self.ringReady = ringReady
        self.logger = logger
        pool = ComputePool(threadCount: configuration.threads)
        planner = DecodeGroupPlanner(groups: Self.decodeGroups(configuration, model), holdLimit: 500_000_000)
        let batch = max(1, configuration.maxBatchTokens)
        let logitRows = min(batch, max(1, configuration.maxSequences))
        state = ForwardState(config: model.config, maxTokens: batch, contextCapacity: configuration.contextLength,
                             logitRows: logitRows, pool: pool)
        table = SequenceTable(maxSequences: configuration.maxSequences)
        builder = BatchBuilder(maxRows: batch, width: model.config.embeddingLength, logitCapacity: logitRows,
                               embedsTokens: model.isFirst, samples: model.isLast)
        emitter = StageEmitter(wire: configuration.wire, width: model.config.embeddingLength,
                               vocabularySize: model.config.vocabularySize, samples: model.isLast)
        idleLimit = Int(max(0.001, configuration.sequenceIdleSeconds) * 1e9)
        kvBudget = max(0, configuration.kvBudgetBytes ?? Self.availableMemoryBytes().map { $0 / 4 } ?? Int.max)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// Decode groups: configured; 1 when the next stage shares this machine (loopback); else
    /// one per stage, estimated from this node's share of the layers.
    private static func decodeGroups(_ configuration: NodeConfiguration, _ model: TransformerModel) -> Int {
        if let k = configuration.decodeGroups { return max(1, k) }
        if configuration.next.isLoopback { return 1 }
        return max(1, Int((Double(model.config.layerCount) / Double(max(1, model.layers.count))).rounded()))
    }

    private var isFirst: Bool { model.isFirst }
    private var isLast: Bool { model.isLast }

    /// MemAvailable from /proc/meminfo, in bytes; nil where that cannot be read.
    static func availableMemoryBytes() -> Int? {
        guard let f = fopen("/proc/meminfo", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("MemAvailable:") else { continue }
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = Int(fields[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }

    /// Bytes of the KV cache of a sequence of `capacity` positions on this node's layers.
    private func cacheBytes(capacity: Int) -> Int {
        2 * model.layers.count * max(1, capacity) * model.config.kvWidth * MemoryLayout<Float>.size
    }

    private func fitsBudget(_ s: StageSequence) -> Bool {
        table.cacheBytes + cacheBytes(capacity: s.capacity) <= kvBudget
    }

    /// Logs why OPENs are being refused, at most once every 5 s (a flood is refused frame by
    /// frame; the log says so once).
    private func warnRefusing(_ reason: String) {
        let t = now()
        guard t - lastRefusalWarning > 5_000_000_000 || lastRefusalWarning == 0 else { return }
        lastRefusalWarning = t
        logger.warning("refusing OPENs", metadata: ["reason": "\(reason)"])
    }

    // MARK: Queue

    package func submit(_ work: StageWork) {
        pthread_mutex_lock(mutex)
        queue.append(work)
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Hands over several items at once, so the compute thread sees them together.
    package func submit(contentsOf work: [StageWork]) {
        pthread_mutex_lock(mutex)
        queue.append(contentsOf: work)
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    package func start() {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { raw in
            guard let raw else { return nil }
            let scheduler = Unmanaged<StageScheduler>.fromOpaque(raw).takeRetainedValue()
            scheduler.loop()
            return nil
        }, box.toOpaque())
        if rc == 0 { thread = t } else { box.release() }
    }

    package func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func loop() {
        var ranBatch = false
        while true {
            pthread_mutex_lock(mutex)
            if queue.isEmpty && !ranBatch && !stopping {
                // Idle: park the compute workers so they do not spin on a core another stage needs.
                pool.rest()
                let wake = [holdDeadline, table.nextIdleDeadline(limit: idleLimit)].compactMap { $0 }.min()
                if let wake {
                    var until = timespec(tv_sec: wake / 1_000_000_000, tv_nsec: wake % 1_000_000_000)
                    while queue.isEmpty && !stopping {
                        if pthread_cond_timedwait(cond, mutex, &until) == ETIMEDOUT { break }
                    }
                } else {
                    while queue.isEmpty && !stopping { pthread_cond_wait(cond, mutex) }
                }
            }
            if stopping {
                pthread_mutex_unlock(mutex)
                return
            }
            let work = queue
            queue.removeAll(keepingCapacity: true)
            pthread_mutex_unlock(mutex)
            if !ranBatch { pool.wake() }
            for item in work { handle(item) }
            expireIdle()
            ranBatch = runBatch()
        }
    }

    // MARK: Control

    private func handle(_ work: StageWork) {
        switch work {
        case let .open(id, request, origin): open(id, request, origin: origin)
        case let .prompt(id, chunk, origin): prompt(id, chunk, from: origin)
        case let .activations(id, activations): receive(id, activations)
        case let .token(id, position, token): tokenReturned(id, position: Int(position), token: token)
        case let .cancel(id, origin): cancel(id, from: origin)
        case let .failed(id, code, message): upstreamFailed(id, code: code, message: message)
        case let .originClosed(origin):
            // Waiting ones first, so freeing an admitted one does not admit another of the same
            // closed driver (a cache made and an OPEN sent only to be cancelled).
            let theirs = table.all.filter { $0.origin === origin }
            for s in theirs where s.cache == nil { release(s.id, cancelDownstream: false) }
            for s in theirs where s.cache != nil { release(s.id, cancelDownstream: true) }
        case let .inspect(report):
            report(describeTable())
        case let .dropAll(code, reason, forwardFrom):
            if !table.isEmpty { logger.warning("dropping sequences", metadata: ["count": "\(table.count)", "reason": "\(reason)"]) }
            for s in table.all {
                s.origin?.send(StarStreamFrame(sequenceID: s.id, payload: .error(code: code, message: reason)))
                release(s.id, cancelDownstream: false)
            }
            if let forwardFrom {
                _ = sendFrames([StarStreamFrame(position: forwardFrom, payload: .error(code: code, message: reason))])
            }
        }
    }

    private func now() -> Int { Self.nanoseconds() }

    /// One line per sequence: id, whether it holds a cache or waits, positions, pending rows,
    /// tokens generated, seconds since it last heard anything.
    private func describeTable() -> [String] {
        let t = now()
        return table.all.map { s in
            "sequence \(s.id): \(s.cache == nil ? "waiting" : "admitted") capacity \(s.capacity) expected \(s.expected)/\(s.request.promptLength) "
                + "pending \(s.pending.map { "\($0.start)+\($0.count)" }) generated \(s.generated) idle \(Double(t - s.lastActivity) / 1e9) s"
        }
    }

    /// The sequence table as the compute thread sees it once it has handled everything queued
    /// before this call (so it doubles as a barrier), one line per sequence; nil when that
    /// thread does not answer within `seconds`. Blocks the caller: not for the compute thread.
    package func describeSequences(seconds: Double = 10) -> [String]? {
        let answer = Mutex<[String]?>(nil)
        let answered = DispatchSemaphore(value: 0)
        submit(.inspect { lines in
            answer.withLock { $0 = lines }
            answered.signal()
        })
        guard answered.wait(timeout: .now() + seconds) == .success else { return nil }
        return answer.withLock { $0 }
    }

    private func open(_ id: UInt64, _ request: SequenceOpen, origin: SequenceOrigin?) {
        func refuse(_ code: UInt16, _ message: String) {
            if isFirst, let origin {
                origin.send(StarStreamFrame(sequenceID: id, payload: .error(code: code, message: message)))
            } else {
                sendNext(StarStreamFrame(sequenceID: id, payload: .error(code: code, message: message)))
            }
        }
        guard id != 0, table[id] == nil else { return refuse(StarStreamErrorCode.unexpectedFrame, "sequence \(id) is already open") }
        let sampling = request.sampling.parameters
        do { try sampling.validate() } catch { return refuse(StarStreamErrorCode.badRequest, "sampling: \(error)") }
        let prompt = Int(request.promptLength)
        guard prompt > 0, prompt <= configuration.contextLength else {
            return refuse(StarStreamErrorCode.badRequest, "prompt of \(prompt) tokens does not fit the context of \(configuration.contextLength)")
        }
        if isFirst && !ringReady() {
            return refuse(StarStreamErrorCode.pipelineBroken, "pipeline is not connected end to end")
        }
        let capacity = min(configuration.contextLength, prompt + Int(request.maxNewTokens))
        let need = cacheBytes(capacity: capacity)
        guard need <= kvBudget else {
            return refuse(StarStreamErrorCode.busy, "a sequence of \(capacity) positions needs \(need) bytes of KV cache; this node's budget is \(kvBudget)")
        }
        if isFirst, let origin {
            let held = table.count(from: origin)
            guard held < max(1, configuration.maxSequencesPerDriver) else {
                warnRefusing("a driver holds \(held) sequences (limit \(configuration.maxSequencesPerDriver))")
                return refuse(StarStreamErrorCode.busy, "this connection already holds \(held) sequences (limit \(configuration.maxSequencesPerDriver))")
            }
        }
        let sequence = StageSequence(id: id, request: request, capacity: capacity, origin: origin, now: now())
        let mustWait = !table.hasFreeSlot || !table.waiting.isEmpty || !fitsBudget(sequence)
        if isFirst && mustWait && table.waiting.count >= max(0, configuration.maxWaitingSequences) {
            warnRefusing("\(table.waiting.count) sequences already wait for a slot")
            return refuse(StarStreamErrorCode.busy, "node 0 is full: \(table.waiting.count) sequences already wait for a slot")
        }
        if isLast {
            do {
                let sampler = try Sampler(parameters: sampling, vocabularySize: model.config.vocabularySize)
                sampler.accept(contentsOf: request.history)
                sampler.skipRandomDraws(request.randomDraws)
                sequence.sampler = sampler
            } catch {
                return refuse(StarStreamErrorCode.badRequest, "sampling: \(error)")
            }
        }
        table.insert(sequence)
        if isFirst && request.maxNewTokens == 0 {
            finish(sequence, .length)
            return
        }
        if mustWait {
            guard isFirst else {
                release(id, cancelDownstream: false)
                return refuse(StarStreamErrorCode.busy, "node \(model.layers) has no free sequence slot or KV budget")
            }
            table.wait(sequence)
            publishCounts()
            return
        }
        admit(sequence)
    }

    private func admit(_ sequence: StageSequence) {
        table.admit(sequence, cache: model.makeCache(capacity: sequence.capacity))
        sequence.lastActivity = now()
        publishCounts()
        if !isLast { sendNext(StarStreamFrame(sequenceID: sequence.id, payload: .open(sequence.request))) }
    }

    private func publishCounts() {
        counters.activeSequences.store(table.activeCount, ordering: .relaxed)
        counters.waitingSequences.store(table.waiting.count, ordering: .relaxed)
        var bytes = 0
        for s in table.all { bytes += s.cache?.byteCount ?? 0 }
        counters.kvBytes.store(bytes, ordering: .relaxed)
    }

    private func prompt(_ id: UInt64, _ chunk: PromptChunk, from origin: SequenceOrigin) {
        guard let s = table[id], s.origin === origin else {
            return origin.send(StarStreamFrame(sequenceID: id, payload: .error(code: StarStreamErrorCode.unknownSequence,
                                                                                message: "no open sequence \(id) on this connection")))
        }
        let count = chunk.tokens.count
        guard Int(chunk.firstPosition) == s.expected, s.expected + count <= Int(s.request.promptLength) else {
            return fail(s, StarStreamErrorCode.positionOutOfOrder,
                        "prompt tokens at \(chunk.firstPosition)..<\(Int(chunk.firstPosition) + count), expected \(s.expected)..<\(s.request.promptLength)")
        }
        if let bad = chunk.tokens.first(where: { $0 < 0 || Int($0) >= model.config.vocabularySize }) {
            return fail(s, StarStreamErrorCode.tokenOutOfRange, "token \(bad) is outside the vocabulary of \(model.config.vocabularySize)")
        }
        s.pending.append(.tokens(start: s.expected, chunk.tokens))
        s.expected += count
        s.lastActivity = now()
    }

    private func receive(_ id: UInt64, _ a: Activations) {
        guard let s = table[id], s.cache != nil else {
            counters.droppedFrames.add(1, ordering: .relaxed)
            return
        }
        let count = a.positions.count
        guard a.width == model.config.embeddingLength else {
            return fail(s, StarStreamErrorCode.badRequest, "activations of width \(a.width), this model has \(model.config.embeddingLength)")
        }
        guard let first = a.positions.first, Int(first) == s.expected, Int(a.positions[count - 1]) - Int(first) == count - 1,
              s.expected + count <= s.capacity else {
            return fail(s, StarStreamErrorCode.positionOutOfOrder, "activations at \(a.positions.first ?? 0), expected \(s.expected)")
        }
        s.pending.append(.hidden(start: s.expected, count: count, a.values))
        s.expected += count
        s.lastActivity = now()
    }

    /// Node 0: the last node sampled a token for position `position`.
    private func tokenReturned(_ id: UInt64, position: Int, token: TokenMessage) {
        guard let s = table[id], let origin = s.origin else {
            counters.droppedFrames.add(1, ordering: .relaxed)
            return
        }
        guard position == s.expected, s.expected >= Int(s.request.promptLength) else {
            return fail(s, StarStreamErrorCode.positionOutOfOrder, "token for position \(position), expected \(s.expected)")
        }
        origin.send(StarStreamFrame(sequenceID: id, position: UInt32(position), payload: .token(token)))
        s.generated += 1
        s.lastActivity = now()
        if s.request.stopTokens.contains(token.tokenID) { return finish(s, .stop) }
        if s.generated >= Int(s.request.maxNewTokens) { return finish(s, .length) }
        if position >= s.capacity { return finish(s, .contextFull) }
        s.pending.append(.token(start: position, token.tokenID))
        s.expected += 1
    }

    private func cancel(_ id: UInt64, from origin: SequenceOrigin?) {
        guard let s = table[id] else {
            // Not here (never opened, or already ended): pass it on so later stages free theirs.
            if !isFirst && !isLast { sendNext(StarStreamFrame(sequenceID: id, payload: .cancel)) }
            return
        }
        if isFirst {
            guard s.origin === origin else { return }
            finish(s, .cancelled)
        } else {
            release(id, cancelDownstream: !isLast)
        }
    }

    private func upstreamFailed(_ id: UInt64, code: UInt16, message: String) {
        if isFirst {
            guard let s = table[id], let origin = s.origin else { return }
            origin.send(StarStreamFrame(sequenceID: id, payload: .error(code: code, message: message)))
            release(id, cancelDownstream: true)
        } else {
            release(id, cancelDownstream: false)
            sendNext(StarStreamFrame(sequenceID: id, payload: .error(code: code, message: message)))
        }
    }

    /// A sequence this node cannot continue: tell the driver (node 0) or pass the error along
    /// the ring toward node 0, and free it everywhere.
    private func fail(_ s: StageSequence, _ code: UInt16, _ message: String) {
        let frame = StarStreamFrame(sequenceID: s.id, payload: .error(code: code, message: "\(model.layers): \(message)"))
        if isFirst, let origin = s.origin {
            origin.send(frame)
            release(s.id, cancelDownstream: true)
        } else {
            release(s.id, cancelDownstream: false)
            sendNext(frame)
        }
    }

    /// Node 0: the sequence ended normally (or was cancelled by its driver).
    private func finish(_ s: StageSequence, _ cause: FinishCause) {
        s.origin?.send(StarStreamFrame(sequenceID: s.id, payload: .done(cause, generated: UInt32(s.generated))))
        release(s.id, cancelDownstream: s.cache != nil)
    }

    private func release(_ id: UInt64, cancelDownstream: Bool) {
        guard table.release(id) != nil else { return }
        if cancelDownstream && !isLast { sendNext(StarStreamFrame(sequenceID: id, payload: .cancel)) }
        while isFirst, let next = table.nextToAdmit(budget: kvBudget, bytes: cacheBytes(capacity:)) { admit(next) }
        publishCounts()
    }

    /// Frees the sequences that have heard nothing for the idle deadline (a lost frame, a
    /// stage that hung, a driver that went quiet) and reports them: node 0 to the driver, the
    /// other nodes along the ring toward node 0.
    private func expireIdle() {
        guard !table.isEmpty else { return }
        for s in table.idle(before: now() - idleLimit) {
            counters.idleExpired.add(1, ordering: .relaxed)
            logger.warning("sequence idle too long; freed", metadata: ["sequence": "\(s.id)", "seconds": "\(configuration.sequenceIdleSeconds)"])
            fail(s, StarStreamErrorCode.idleTimeout, "sequence \(s.id) heard nothing for \(configuration.sequenceIdleSeconds) s")
        }
    }

    /// Sends one frame to the next stage. A frame that cannot go (the link is down) is lost:
    /// its sequence fails at once (see `sendDownstream`).
    private func sendNext(_ frame: StarStreamFrame) {
        sendDownstream([frame])
    }

    /// Sends a batch's frames with one flush. When the link is down they are lost, and each
    /// sequence they belong to fails: node 0 tells its driver with ERROR 106; the other nodes
    /// free it (node 0 learns from its probes or the ring reset that follows).
    private func sendDownstream(_ frames: [StarStreamFrame]) {
        guard !frames.isEmpty, !sendFrames(frames) else { return }
        counters.droppedFrames.add(frames.count, ordering: .relaxed)
        for frame in frames where frame.sequenceID != 0 {
            guard let s = table[frame.sequenceID] else { continue }
            s.origin?.send(StarStreamFrame(sequenceID: s.id, payload: .error(code: StarStreamErrorCode.pipelineBroken,
                                                                               message: "\(model.layers): the next stage is unreachable")))
            release(s.id, cancelDownstream: false)
        }
    }

    // MARK: Batches

    /// Runs one batch of ready rows; returns whether it ran one (more may be ready).
    private func runBatch() -> Bool {
        let group = isFirst ? nextDecodeGroup() : []
        guard builder.build(decodeGroup: group, table: table) else { return false }
        let rows = builder.rows
        let output: UnsafeMutableBufferPointer<Float>
        let started = Self.nanoseconds()
        defer {
            let ended = Self.nanoseconds()
            counters.computeNanoseconds.add(ended - started, ordering: .relaxed)
            if traceBatches { logger.trace("batch", metadata: ["start": "\(started)", "end": "\(ended)", "rows": "\(rows)"]) }
        }
        do {
            if isFirst {
                output = try model.forward(batch: .tokens(UnsafeBufferPointer(start: builder.tokenInput, count: rows)),
                                           slices: builder.slices, state: state)
            } else {
                output = try model.forward(batch: .hidden(builder.hiddenInput, count: rows), slices: builder.slices, state: state)
            }
        } catch {
            logger.error("batch failed", metadata: ["rows": "\(rows)", "error": "\(error)"])
            for m in builder.members { fail(m.sequence, StarStreamErrorCode.internalError, "forward failed: \(error)") }
            return true
        }
        counters.batches.add(1, ordering: .relaxed)
        counters.rows.add(rows, ordering: .relaxed)
        let t = Self.nanoseconds()
        for m in builder.members { m.sequence.lastActivity = t }
        let frames = emitter.frames(for: builder.members, output: output)
        counters.tokens.add(isLast ? frames.count : rows, ordering: .relaxed)
        sendDownstream(frames)
        return true
    }

    // MARK: Decode groups

    /// Node 0: the decode rows to run now, one group's worth (see `DecodeGroupPlanner`).
    private func nextDecodeGroup() -> [StageSequence] {
        var decoding: [StageSequence] = []
        for s in table.all where s.cache != nil && s.generated > 0 { decoding.append(s) }
        guard !decoding.isEmpty else {
            holdDeadline = nil
            return []
        }
        var members = decoding.map { DecodeGroupPlanner.Member(group: $0.group, ready: $0.pending.first?.count == 1) }
        let chosen = planner.release(&members, now: Self.nanoseconds())
        for (s, m) in zip(decoding, members) { s.group = m.group }
        holdDeadline = planner.deadline
        return chosen.map { decoding[$0] }
    }

    static func nanoseconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }
}
