import NIOCore
import Testing
import StarStream

@Suite struct FuzzTests {
    /// Seeded mutation fuzzing: valid frames of every type, mutated in many ways, fed to a fresh
    /// decoder. Each input must decode or throw a StarStreamError (the typed throw guarantees the
    /// type; a crash or trap fails the run), decoded frames must stay within the cap, and the
    /// result must not depend on how the bytes are split into reads.
    @Test func mutatedFramesNeverCrash() throws {
        let limits = StarStreamLimits(maxBatchTokens: 4, width: 64)
        var rng = SeededRandom(seed: 0x5354_4152)
        var seeds = try sampleFrames().map { bytes(try encoded($0)) }
        for dtype in WireDType.allCases {
            for (count, width) in [(1, 32), (4, 64), (3, 32)] {
                seeds.append(bytes(try encoded(activationsFrame(dtype: dtype, count: count, width: width, using: &rng))))
            }
        }
        // The sequence frames with lists of several sizes (the largest OPEN still under the cap).
        for (stops, history) in [(0, 0), (1, 16), (64, 100), (3, 190)] {
            let open = SequenceOpen(
                promptLength: UInt32(history + 1), maxNewTokens: 32, wantsLogprobs: stops % 2 == 1,
                sampling: sampleSampling, stopTokens: (0..<stops).map { Int32($0) },
                history: (0..<history).map { Int32($0 * 3) })
            seeds.append(bytes(try encoded(StarStreamFrame(sequenceID: 5, payload: .open(open)))))
        }
        for (first, count) in [(0, 1), (100, 255), (UInt32.max - 4, 4)] {
            let chunk = PromptChunk(firstPosition: first, tokens: (0..<count).map { Int32($0) })
            seeds.append(bytes(try encoded(StarStreamFrame(sequenceID: 5, position: first, payload: .prompt(chunk)))))
        }
        let iterations = 100_000
        var decodedFrames = 0
        var errors: [UInt16: Int] = [:]
        var waiting = 0
        let clock = ContinuousClock()
        let start = clock.now
        for iteration in 0..<iterations {
            var input = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            if Int.random(in: 0..<8, using: &rng) == 0 {
                input += seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            }
            let mutations = Int.random(in: 1...4, using: &rng)
            for _ in 0..<mutations { mutate(&input, using: &rng) }
            // Half the time repair the CRC, so that mutations reach the payload parsers.
            if Bool.random(using: &rng) { fixChecksum(&input) }

            let whole = decodeAll(input, limits: limits)
            for frame in whole.frames {
                decodedFrames += 1
                if case .activations(let a) = frame.payload {
                    #expect(a.values.count * 4 <= limits.maxPayloadBytes)
                    #expect(a.values.count == a.positions.count * a.width)
                }
            }
            if let error = whole.error {
                errors[error.wireCode, default: 0] += 1
            } else if whole.leftover > 0 {
                waiting += 1
            }
            if iteration % 16 == 0 {
                let sizes = (0..<4).map { _ in Int.random(in: 1...40, using: &rng) }
                let chunked = decodeAll(input, limits: limits, chunks: sizes)
                #expect(bitwiseEqual(chunked.frames, whole.frames), "chunked delivery changed the frames")
                #expect(chunked.error == whole.error)
            }
        }
        let elapsed = clock.now - start
        print("StarStream fuzz: \(iterations) inputs in \(elapsed), \(decodedFrames) frames decoded, \(waiting) waiting for more bytes, errors by wire code: \(errors.sorted { $0.key < $1.key })")
        // The mutations must reach deep into the decoder, not just the magic check.
        for code in [StarStreamErrorCode.badMagic, StarStreamErrorCode.checksumMismatch,
                     StarStreamErrorCode.payloadTooLarge, StarStreamErrorCode.shapeMismatch,
                     StarStreamErrorCode.unknownType, StarStreamErrorCode.badPayloadLength,
                     StarStreamErrorCode.badOptions, StarStreamErrorCode.badFinishReason,
                     StarStreamErrorCode.countTooLarge, StarStreamErrorCode.zeroCount,
                     StarStreamErrorCode.positionOverflow] {
            #expect(errors[code, default: 0] > 0, "no input reached error code \(code)")
        }
        #expect(decodedFrames > 1000)
    }

    /// OPEN options, prompt length and counts; PROMPT first position and count; DONE reason.
    private func mutateSequenceFields(_ input: inout [UInt8], using rng: inout SeededRandom) {
        let small = Bool.random(using: &rng)
        switch UInt16(input[6]) | UInt16(input[7]) << 8 {
        case StarStreamFrameType.open.rawValue where input.count >= 32 + SequenceOpen.fixedBytes:
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: input[40] = UInt8.random(in: 0...3, using: &rng)  // options
            case 1: setLE32(&input, at: 32, small ? UInt32.random(in: 0...2, using: &rng) : .random(in: 0...UInt32.max, using: &rng))
            case 2: setLE16(&input, at: 81, small ? UInt16.random(in: 0...70, using: &rng) : .random(in: 0...UInt16.max, using: &rng))
            default:  // the history count, wherever the stop count puts it
                let at = 83 + 4 * Int(UInt16(input[81]) | UInt16(input[82]) << 8)
                if input.count >= at + 4 {
                    setLE32(&input, at: at, small ? UInt32.random(in: 0...300, using: &rng) : .random(in: 0...UInt32.max, using: &rng))
                }
            }
        case StarStreamFrameType.prompt.rawValue:
            if Bool.random(using: &rng) {
                setLE32(&input, at: 32, small ? UInt32.max - UInt32.random(in: 0...300, using: &rng) : .random(in: 0...UInt32.max, using: &rng))
            } else {
                setLE32(&input, at: 36, small ? UInt32.random(in: 0...300, using: &rng) : .random(in: 0...UInt32.max, using: &rng))
            }
        case StarStreamFrameType.done.rawValue:
            input[32] = UInt8.random(in: 0...6, using: &rng)
        default:
            input.append(UInt8.random(in: 0...255, using: &rng))
        }
    }

    private func mutate(_ input: inout [UInt8], using rng: inout SeededRandom) {
        switch Int.random(in: 0..<10, using: &rng) {
        case 0 where !input.isEmpty:  // flip a bit
            let i = Int.random(in: 0..<input.count, using: &rng)
            input[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
        case 1 where !input.isEmpty:  // replace a byte
            input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        case 2:  // insert bytes
            let at = Int.random(in: 0...input.count, using: &rng)
            let n = Int.random(in: 1...8, using: &rng)
            input.insert(contentsOf: (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
        case 3 where !input.isEmpty:  // delete bytes
            let at = Int.random(in: 0..<input.count, using: &rng)
            let n = min(Int.random(in: 1...8, using: &rng), input.count - at)
            input.removeSubrange(at..<(at + n))
        case 4 where !input.isEmpty:  // truncate
            input.removeLast(Int.random(in: 1...input.count, using: &rng))
        case 5 where input.count >= 32:  // random payload length, small or huge
            let length: UInt32 = Bool.random(using: &rng)
                ? UInt32.random(in: 0...2048, using: &rng) : UInt32.random(in: 0...UInt32.max, using: &rng)
            setLE32(&input, at: 24, length)
        case 6 where input.count >= 32:  // random type or version
            setLE16(&input, at: Bool.random(using: &rng) ? 6 : 4, UInt16.random(in: 0...13, using: &rng))
        case 7 where input.count >= 45:  // ACTIVATIONS shape fields: dtype, count, width
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: input[32] = UInt8.random(in: 0...4, using: &rng)
            case 1: setLE32(&input, at: 33, Bool.random(using: &rng) ? UInt32.random(in: 0...8, using: &rng) : .random(in: 0...UInt32.max, using: &rng))
            default: setLE32(&input, at: 37, Bool.random(using: &rng) ? UInt32.random(in: 0...128, using: &rng) : .random(in: 0...UInt32.max, using: &rng))
            }
        case 8 where input.count >= 40:  // string length fields (HELLO token at 35, ERROR message at 34)
            setLE16(&input, at: Bool.random(using: &rng) ? 35 : 34, UInt16.random(in: 0...UInt16.max, using: &rng))
        case 9 where input.count >= 40:  // the fields of the frame type in the header
            mutateSequenceFields(&input, using: &rng)
        default:
            input.append(UInt8.random(in: 0...255, using: &rng))
        }
    }
}
