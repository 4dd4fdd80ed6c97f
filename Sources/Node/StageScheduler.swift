#if canImport(Glibc)
import Glibc
#endif
import Kernels
import Models
import NIOCore
import Sampling
import StarStream
import Synchronization

/// Work handed from the network threads to the compute thread. Everything that touches a
/// sequence goes through this one queue, so sequence state lives on one thread without locks
/// and frames of one connection are handled in the order they arrived.
enum StageWork: Sendable {
    case open(UInt64, SequenceOpen, origin: Channel?)
    case prompt(UInt64, PromptChunk, from: Channel)
    case activations(UInt64, Activations)
    case token(UInt64, position: UInt32, TokenMessage)
    case cancel(UInt64, from: Channel?)
    case failed(UInt64, code: UInt16, message: String)
    case originClosed(Channel)
    /// Every sequence is lost (the ring broke, or this node's upstream went away).
    case dropAll(code: UInt16, reason: String)
}

/// Rows of one sequence waiting for a batch.
enum PendingRows {
    case tokens(start: Int, [Int32])
    case hidden(start: Int, count: Int, [Float])

    var start: Int {
        switch self {
        case let .tokens(s, _), let .hidden(s, _, _): s
        }
    }

    var count: Int {
        switch self {
        case let .tokens(_, t): t.count
        case let .hidden(_, n, _): n
        }
    }
}

/// One sequence as this node sees it.
final class StageSequence {
    let id: UInt64
    let request: SequenceOpen
    let capacity: Int
    /// Nil while the sequence waits at node 0 for a free slot.
    var cache: KVCache?
    /// The next input position this node accepts.
    var expected = 0
    var pending: [PendingRows] = []
    /// Node 0: the driver connection that opened it.
    let origin: Channel?
    var generated = 0
    /// Last node: the sampler, with the request's seed and penalty history.
    var sampler: Sampler?
    /// Node 0: the decode group this sequence travels the ring with (nil until it decodes).
    var group: Int?

    init(id: UInt64, request: SequenceOpen, capacity: Int, origin: Channel?) {
        self.id = id
        self.request = request
        self.capacity = capacity
        self.origin = origin
    }
}

/// Counters a node reports (read from any thread).
public final class StageCounters: Sendable {
    public let batches = Atomic<Int>(0)
    public let rows = Atomic<Int>(0)
    public let activeSequences = Atomic<Int>(0)
    public let waitingSequences = Atomic<Int>(0)
    public let droppedFrames = Atomic<Int>(0)
    /// Time spent in forward passes.
    public let computeNanoseconds = Atomic<Int>(0)
    init() {}
}

/// The compute side of a node: a dedicated thread that gathers the ready rows of every sequence
/// into one batch, runs this node's layers over it, and sends each sequence's result on (hidden
/// states to the next stage, or on the last node a sampled token around the ring to node 0).
final class StageScheduler: @unchecked Sendable {
    let model: TransformerModel
    let configuration: NodeConfiguration
    let counters = StageCounters()
    private let pool: ComputePool
    private let state: ForwardState
    private let sendFrames: @Sendable ([StarStreamFrame]) -> Void
    private let ringReady: @Sendable () -> Bool
    private let log: @Sendable (String) -> Void

    private var queue: [StageWork] = []
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var stopping = false
    private var thread: pthread_t?

    // Compute-thread state.
    private var sequences: [UInt64: StageSequence] = [:]
    private var order: [UInt64] = []
    private var waiting: [UInt64] = []
    private var rotation = 0
    /// Node 0: which decode rows go into the ring when.
    private var planner: DecodeGroupPlanner
    /// When the compute thread must look again at a held group, though nothing arrived.
    private var holdDeadline: Int?
    private let traceBatches = getenv("PANGALACTIC_TRACE") != nil
    private let tokenInput: UnsafeMutablePointer<Int32>
    private let hiddenInput: UnsafeMutablePointer<Float>
    /// Raw logits of the row being sampled, kept for its logprob (the sampler edits them).
    private let rawLogits: UnsafeMutablePointer<Float>

    init(model: TransformerModel, configuration: NodeConfiguration, sendNext: @escaping @Sendable ([StarStreamFrame]) -> Void,
         ringReady: @escaping @Sendable () -> Bool, log: @escaping @Sendable (String) -> Void) {
        self.model = model
        self.configuration = configuration
        sendFrames = sendNext
        self.ringReady = ringReady
        self.log = log
        pool = ComputePool(threadCount: configuration.threads)
        planner = DecodeGroupPlanner(groups: Self.decodeGroups(configuration, model), holdLimit: 500_000_000)
        let batch = max(1, configuration.maxBatchTokens)
        state = ForwardState(config: model.config, maxTokens: batch, contextCapacity: configuration.contextLength,
                             logitRows: min(batch, max(1, configuration.maxSequences)), pool: pool)
        tokenInput = .allocate(capacity: batch)
        hiddenInput = .allocate(capacity: batch * model.config.embeddingLength)
        rawLogits = .allocate(capacity: model.isLast ? model.config.vocabularySize : 1)
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        tokenInput.deallocate()
        hiddenInput.deallocate()
        rawLogits.deallocate()
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
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

    // MARK: Queue

    func submit(_ work: StageWork) {
        pthread_mutex_lock(&mutex)
        queue.append(work)
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }

    /// Hands over several items at once, so the compute thread sees them together.
    func submit(contentsOf work: [StageWork]) {
        pthread_mutex_lock(&mutex)
        queue.append(contentsOf: work)
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }

    private func sendNext(_ frame: StarStreamFrame) {
        sendFrames([frame])
    }

    func start() {
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

    func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func loop() {
        var ranBatch = false
        while true {
            pthread_mutex_lock(&mutex)
            if queue.isEmpty && !ranBatch && !stopping {
                // Idle: park the compute workers so they do not spin on a core another stage needs.
                pool.rest()
                if let deadline = holdDeadline {
                    var until = timespec(tv_sec: deadline / 1_000_000_000, tv_nsec: deadline % 1_000_000_000)
                    while queue.isEmpty && !stopping {
                        if pthread_cond_timedwait(&cond, &mutex, &until) == ETIMEDOUT { break }
                    }
                } else {
                    while queue.isEmpty && !stopping { pthread_cond_wait(&cond, &mutex) }
                }
            }
            if stopping {
                pthread_mutex_unlock(&mutex)
                return
            }
            let work = queue
            queue.removeAll(keepingCapacity: true)
            pthread_mutex_unlock(&mutex)
            if !ranBatch { pool.wake() }
            for item in work { handle(item) }
            ranBatch = runBatch()
        }
    }

    // MARK: Control

    private func handle(_ work: StageWork) {
        switch work {
        case let .open(id, request, origin): open(id, request, origin: origin)
        case let .prompt(id, chunk, channel): prompt(id, chunk, from: channel)
        case let .activations(id, activations): receive(id, activations)
        case let .token(id, position, token): tokenReturned(id, position: Int(position), token: token)
        case let .cancel(id, channel): cancel(id, from: channel)
        case let .failed(id, code, message): upstreamFailed(id, code: code, message: message)
        case let .originClosed(channel):
            for id in order where sequences[id]?.origin === channel { release(id, cancelDownstream: true) }
        case let .dropAll(code, reason):
            if !order.isEmpty { log("dropping \(order.count) sequences: \(reason)") }
            for id in order {
                if let s = sequences[id], let origin = s.origin {
                    send(StarStreamFrame(sequenceID: id, payload: .error(code: code, message: reason)), to: origin)
                }
                release(id, cancelDownstream: false)
            }
        }
    }

    private func open(_ id: UInt64, _ request: SequenceOpen, origin: Channel?) {
        func refuse(_ code: UInt16, _ message: String) {
            if isFirst, let origin {
                send(StarStreamFrame(sequenceID: id, payload: .error(code: code, message: message)), to: origin)
            } else {
                sendNext(StarStreamFrame(sequenceID: id, payload: .error(code: code, message: message)))
            }
        }
        guard id != 0, sequences[id] == nil else { return refuse(StarStreamErrorCode.unexpectedFrame, "sequence \(id) is already open") }
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
        let sequence = StageSequence(id: id, request: request, capacity: capacity, origin: origin)
        if isLast {
            do {
                let sampler = try Sampler(parameters: sampling, vocabularySize: model.config.vocabularySize)
                sampler.accept(contentsOf: request.history)
                sequence.sampler = sampler
            } catch {
                return refuse(StarStreamErrorCode.badRequest, "sampling: \(error)")
            }
        }
        sequences[id] = sequence
        order.append(id)
        if isFirst && request.maxNewTokens == 0 {
            finish(sequence, .length)
            return
        }
        if activeCount >= configuration.maxSequences {
            guard isFirst else {
                release(id, cancelDownstream: false)
                return refuse(StarStreamErrorCode.busy, "node \(model.layers) has no free sequence slot")
            }
            waiting.append(id)
            counters.waitingSequences.store(waiting.count, ordering: .relaxed)
            return
        }
        admit(sequence)
    }

    private var activeCount: Int { sequences.values.reduce(0) { $0 + ($1.cache != nil ? 1 : 0) } }

    private func admit(_ sequence: StageSequence) {
        sequence.cache = model.makeCache(capacity: sequence.capacity)
        counters.activeSequences.store(activeCount, ordering: .relaxed)
        if !isLast { sendNext(StarStreamFrame(sequenceID: sequence.id, payload: .open(sequence.request))) }
    }

    private func prompt(_ id: UInt64, _ chunk: PromptChunk, from channel: Channel) {
        guard let s = sequences[id], s.origin === channel else {
            return send(StarStreamFrame(sequenceID: id, payload: .error(code: StarStreamErrorCode.unknownSequence,
                                                                         message: "no open sequence \(id) on this connection")), to: channel)
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
    }

    private func receive(_ id: UInt64, _ a: Activations) {
        guard let s = sequences[id], s.cache != nil else {
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
    }

    /// Node 0: the last node sampled a token for position `position`.
    private func tokenReturned(_ id: UInt64, position: Int, token: TokenMessage) {
        guard let s = sequences[id], let origin = s.origin else {
            counters.droppedFrames.add(1, ordering: .relaxed)
            return
        }
        guard position == s.expected, s.expected >= Int(s.request.promptLength) else {
            return fail(s, StarStreamErrorCode.positionOutOfOrder, "token for position \(position), expected \(s.expected)")
        }
        send(StarStreamFrame(sequenceID: id, position: UInt32(position), payload: .token(token)), to: origin)
        s.generated += 1
        if s.request.stopTokens.contains(token.tokenID) { return finish(s, .stop) }
        if s.generated >= Int(s.request.maxNewTokens) { return finish(s, .length) }
        if position >= s.capacity { return finish(s, .contextFull) }
        s.pending.append(.tokens(start: position, [token.tokenID]))
        s.expected += 1
    }

    private func cancel(_ id: UInt64, from channel: Channel?) {
        guard let s = sequences[id] else {
            // Not here (never opened, or already ended): pass it on so later stages free theirs.
            if !isFirst && !isLast { sendNext(StarStreamFrame(sequenceID: id, payload: .cancel)) }
            return
        }
        if isFirst {
            guard s.origin === channel else { return }
            finish(s, .cancelled)
        } else {
            release(id, cancelDownstream: !isLast)
        }
    }

    private func upstreamFailed(_ id: UInt64, code: UInt16, message: String) {
        if isFirst {
            guard let s = sequences[id], let origin = s.origin else { return }
            send(StarStreamFrame(sequenceID: id, payload: .error(code: code, message: message)), to: origin)
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
            send(frame, to: origin)
            release(s.id, cancelDownstream: true)
        } else {
            release(s.id, cancelDownstream: false)
            sendNext(frame)
        }
    }

    /// Node 0: the sequence ended normally (or was cancelled by its driver).
    private func finish(_ s: StageSequence, _ cause: FinishCause) {
        if let origin = s.origin {
            send(StarStreamFrame(sequenceID: s.id, payload: .done(cause, generated: UInt32(s.generated))), to: origin)
        }
        release(s.id, cancelDownstream: s.cache != nil)
    }

    private func release(_ id: UInt64, cancelDownstream: Bool) {
        guard sequences.removeValue(forKey: id) != nil else { return }
        order.removeAll { $0 == id }
        waiting.removeAll { $0 == id }
        if cancelDownstream && !isLast { sendNext(StarStreamFrame(sequenceID: id, payload: .cancel)) }
        while isFirst, !waiting.isEmpty, activeCount < configuration.maxSequences {
            let next = waiting.removeFirst()
            if let s = sequences[next] { admit(s) }
        }
        counters.activeSequences.store(activeCount, ordering: .relaxed)
        counters.waitingSequences.store(waiting.count, ordering: .relaxed)
    }

    private func send(_ frame: StarStreamFrame, to channel: Channel) {
        channel.writeAndFlush(frame, promise: nil)
    }

    // MARK: Batches

    private struct Member {
        let sequence: StageSequence
        let start: Int
        let count: Int
    }

    /// Runs one batch of ready rows; returns whether it ran one (more may be ready).
    private func runBatch() -> Bool {
        let budget = state.maxTokens
        let e = model.config.embeddingLength
        var members: [Member] = []
        var slices: [SequenceSlice] = []
        var rows = 0
        var logitRows = 0
        let n = order.count
        guard n > 0 else {
            holdDeadline = nil
            return false
        }
        // Decode steps (one row) first, then prompt chunks: a long prompt must not hold up the
        // tokens of running sequences. The starting point rotates so no sequence always waits.
        // Node 0 releases decode rows a whole group at a time (see `nextDecodeGroup`); the
        // other stages run whatever has arrived.
        rotation = (rotation + 1) % n
        let group = isFirst ? nextDecodeGroup() : []
        func add(_ s: StageSequence, _ cache: KVCache, _ chunk: PendingRows) {
            let take = min(chunk.count, budget - rows)
            let wants = isLast && chunk.start + take >= Int(s.request.promptLength)
            if wants && logitRows >= state.logitCapacity { return }
            switch chunk {
            case let .tokens(start, ids):
                for i in 0 ..< take { tokenInput[rows + i] = ids[i] }
                if take < ids.count { s.pending[0] = .tokens(start: start + take, Array(ids[take...])) } else { s.pending.removeFirst() }
            case let .hidden(start, count, values):
                values.withUnsafeBufferPointer { buffer in
                    if let base = buffer.baseAddress { (hiddenInput + rows * e).update(from: base, count: take * e) }
                }
                if take < count {
                    s.pending[0] = .hidden(start: start + take, count: count - take, Array(values[(take * e)...]))
                } else {
                    s.pending.removeFirst()
                }
            }
            members.append(Member(sequence: s, start: chunk.start, count: take))
            slices.append(SequenceSlice(cache: cache, start: chunk.start, count: take, wantsLogits: wants))
            rows += take
            if wants { logitRows += 1 }
        }
        for s in group {
            guard rows < budget, let cache = s.cache, let chunk = s.pending.first else {
                s.group = nil
                continue
            }
            add(s, cache, chunk)
        }
        for pass in 0 ..< 2 {
            for k in 0 ..< n {
                guard rows < budget, let s = sequences[order[(rotation + k) % n]], let cache = s.cache,
                      let chunk = s.pending.first else { continue }
                if isFirst && s.generated > 0 { continue }
                if members.contains(where: { $0.sequence === s }) { continue }
                if pass == 0 && chunk.count != 1 { continue }
                add(s, cache, chunk)
            }
        }
        guard rows > 0 else { return false }
        let output: UnsafeMutableBufferPointer<Float>
        let started = Self.nanoseconds()
        defer {
            let ended = Self.nanoseconds()
            counters.computeNanoseconds.add(ended - started, ordering: .relaxed)
            if traceBatches { log("trace \(started) \(ended)") }
        }
        do {
            if isFirst {
                output = try model.forward(batch: .tokens(UnsafeBufferPointer(start: tokenInput, count: rows)), slices: slices, state: state)
            } else {
                output = try model.forward(batch: .hidden(hiddenInput, count: rows), slices: slices, state: state)
            }
        } catch {
            log("batch of \(rows) rows failed: \(error)")
            for m in members { fail(m.sequence, StarStreamErrorCode.internalError, "forward failed: \(error)") }
            return true
        }
        counters.batches.add(1, ordering: .relaxed)
        counters.rows.add(rows, ordering: .relaxed)
        guard let outputBase = output.baseAddress else { return true }
        var frames: [StarStreamFrame] = []
        frames.reserveCapacity(members.count)
        defer { if !frames.isEmpty { sendFrames(frames) } }
        if !isLast {
            var offset = 0
            for m in members {
                let values = Array(UnsafeBufferPointer(start: outputBase + offset * e, count: m.count * e))
                let positions = (0 ..< m.count).map { UInt32(m.start + $0) }
                let activations = Activations(dtype: configuration.wire, positions: positions, width: e, values: values)
                frames.append(StarStreamFrame(sequenceID: m.sequence.id, position: UInt32(m.start), payload: .activations(activations)))
                offset += m.count
            }
            return true
        }
        let vocab = model.config.vocabularySize
        var row = 0
        for (m, slice) in zip(members, slices) where slice.wantsLogits {
            let logits = UnsafeMutableBufferPointer(start: outputBase + row * vocab, count: vocab)
            row += 1
            guard let sampler = m.sequence.sampler else { continue }
            let logSum = m.sequence.request.wantsLogprobs ? keepRawLogits(logits) : nil
            let token = sampler.sample(logits: logits)
            sampler.accept(token)
            let message = TokenMessage(tokenID: token, logprob: logSum.map { rawLogits[Int(token)] - $0 })
            let position = m.start + m.count
            frames.append(StarStreamFrame(sequenceID: m.sequence.id, position: UInt32(position), payload: .token(message)))
        }
        return true
    }

    // MARK: Decode groups

    /// Node 0: the decode rows to run now, one group's worth (see `DecodeGroupPlanner`).
    private func nextDecodeGroup() -> [StageSequence] {
        var decoding: [StageSequence] = []
        for id in order {
            if let s = sequences[id], s.cache != nil, s.generated > 0 { decoding.append(s) }
        }
        var members = decoding.map { DecodeGroupPlanner.Member(group: $0.group, ready: hasDecodeRow($0)) }
        let chosen = planner.release(&members, now: Self.nanoseconds())
        for (s, m) in zip(decoding, members) { s.group = m.group }
        holdDeadline = planner.deadline
        return chosen.map { decoding[$0] }
    }

    private func hasDecodeRow(_ s: StageSequence) -> Bool { s.pending.first?.count == 1 }

    static func nanoseconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }

    /// Copies the raw logits aside (the sampler edits them in place) and returns their
    /// log-sum-exp, so a token's logprob under the model, as OpenAI's `logprobs` reports it, is
    /// `rawLogits[token] - logSum`.
    private func keepRawLogits(_ logits: UnsafeMutableBufferPointer<Float>) -> Float {
        guard let base = logits.baseAddress else { return 0 }
        rawLogits.update(from: base, count: logits.count)
        var maximum = -Float.infinity
        for v in logits where v > maximum { maximum = v }
        var sum: Float = 0
        for v in logits { sum += expf(v - maximum) }
        return maximum + logf(sum)
    }
}

extension WireSampling {
    /// The wire form of a sampler's parameters (StarStream does not know the Sampling module).
    public init(_ s: SamplingParameters) {
        self.init(temperature: s.temperature, topK: UInt32(clamping: s.topK), topP: s.topP, minP: s.minP,
                  repetitionPenalty: s.repetitionPenalty, frequencyPenalty: s.frequencyPenalty,
                  presencePenalty: s.presencePenalty, penaltyLastN: UInt32(clamping: s.penaltyLastN), seed: s.seed)
    }

    /// The sampler's parameters (ranges are checked by `SamplingParameters.validate`).
    public var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: Int(topK), topP: topP, minP: minP,
                           repetitionPenalty: repetitionPenalty, frequencyPenalty: frequencyPenalty,
                           presencePenalty: presencePenalty, penaltyLastN: Int(penaltyLastN), seed: seed)
    }
}
