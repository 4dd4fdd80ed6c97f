import GGUF
import TestSupport
import Testing

/// Every GGUF case of docs/hardening must end in a typed error, never a crash.
@Suite struct GGUFHardeningTests {
    /// A header with the given counts followed by `body`.
    func file(version: UInt32 = 3, tensors: UInt64 = 0, kvs: UInt64 = 0, _ body: (inout GGUFByteBuilder) -> Void) -> [UInt8] {
        var b = GGUFByteBuilder()
        b.u32(GGUFFile.magic)
        b.u32(version)
        b.u64(tensors)
        b.u64(kvs)
        body(&b)
        return b.bytes
    }

    func expectError(_ bytes: [UInt8], _ check: (GGUFError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try GGUFFile(bytes: bytes)
            Issue.record("parsed a malformed file", sourceLocation: sourceLocation)
        } catch {
            #expect(check(error), "unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    /// One tensor entry: name, dims, type, offset, then padding and `dataBytes` zero bytes.
    func tensorFile(name: String = "t", dims: [UInt64] = [32], type: UInt32 = 0, offset: UInt64 = 0,
                    kv: [(String, GGUFValue)] = [], dataBytes: Int = 128) -> [UInt8] {
        file(tensors: 1, kvs: UInt64(kv.count)) { b in
            for (k, v) in kv { b.string(k); b.u32(v.type.rawValue); b.value(v) }
            b.string(name)
            b.u32(UInt32(dims.count))
            for d in dims { b.u64(d) }
            b.u32(type)
            b.u64(offset)
            b.pad(to: 32)
            b.bytes += [UInt8](repeating: 0, count: dataBytes)
        }
    }

    @Test func badMagicAndVersion() {
        expectError([0x47, 0x47, 0x4D, 0x4C, 3, 0, 0, 0] + [UInt8](repeating: 0, count: 16)) { if case .badMagic = $0 { true } else { false } }
        expectError(file(version: 1) { _ in }) { $0 == .unsupportedVersion(1) }
        expectError(file(version: 4) { _ in }) { $0 == .unsupportedVersion(4) }
        expectError([0x47, 0x47]) { if case .truncated = $0 { true } else { false } }
        expectError([]) { if case .truncated = $0 { true } else { false } }
    }

    @Test func hugeCounts() {
        expectError(file(tensors: .max) { _ in }) { if case .countTooLarge = $0 { true } else { false } }
        expectError(file(kvs: .max) { _ in }) { if case .countTooLarge = $0 { true } else { false } }
        expectError(file(kvs: 1000) { b in b.bytes += [UInt8](repeating: 0, count: 64) }) { if case .countTooLarge = $0 { true } else { false } }
    }

    @Test func badStringsAndKeys() {
        expectError(file(kvs: 1) { b in b.u64(.max); b.bytes += [UInt8](repeating: 0, count: 16) }) { if case .stringTooLong = $0 { true } else { false } }
        expectError(file(kvs: 1) { b in b.string(""); b.u32(4); b.u32(1) }) { if case .emptyKey = $0 { true } else { false } }
        expectError(file(kvs: 2) { b in
            for _ in 0 ..< 2 { b.string("dup"); b.u32(4); b.u32(1) }
        }) { $0 == .duplicateKey("dup") }
        expectError(file(kvs: 1) { b in b.string("k"); b.u32(13); b.u32(1) }) { $0 == .badValueType(key: "k", type: 13) }
        expectError(file(kvs: 1) { b in b.string("k"); b.u32(8); b.u64(3); b.bytes += [0xFF, 0xFE, 0x41] }) { if case .invalidUTF8 = $0 { true } else { false } }
        expectError(file(kvs: 1) { b in b.string("k"); b.u32(8); b.u64(100); b.bytes += [0x41] }) { if case .stringTooLong = $0 { true } else { false } }
    }

    @Test func badArrays() {
        expectError(file(kvs: 1) { b in b.string("a"); b.u32(9); b.u32(99); b.u64(1) }) { $0 == .badValueType(key: "a", type: 99) }
        expectError(file(kvs: 1) { b in b.string("a"); b.u32(9); b.u32(4); b.u64(1 << 40); b.u32(0) }) { if case .countTooLarge = $0 { true } else { false } }
        expectError(file(kvs: 1) { b in b.string("a"); b.u32(9); b.u32(4); b.u64(.max) }) { if case .countTooLarge = $0 { true } else { false } }
        expectError(file(kvs: 1) { b in b.string("a"); b.u32(9); b.u32(9); b.u64(1); b.u32(4); b.u64(0) }) { $0 == .nestedArray(key: "a") }
        expectError(file(kvs: 1) { b in b.string("a"); b.u32(9); b.u32(8); b.u64(2); b.string("x"); b.u64(.max) }) { if case .stringTooLong = $0 { true } else { false } }
    }

    @Test func badAlignment() {
        for a: UInt32 in [0, 3, 48] {
            expectError(tensorFile(kv: [("general.alignment", .uint32(a))])) { if case .badAlignment = $0 { true } else { false } }
        }
        // A valid non-default alignment is honoured.
        #expect(throws: Never.self) { try GGUFFile(bytes: tensorFile(offset: 64, kv: [("general.alignment", .uint32(64))], dataBytes: 256)) }
    }

    @Test func badTensorEntries() {
        expectError(tensorFile(name: String(repeating: "n", count: 65))) { if case .tensorNameTooLong = $0 { true } else { false } }
        expectError(file(tensors: 2) { b in
            for _ in 0 ..< 2 { b.string("t"); b.u32(1); b.u64(32); b.u32(0); b.u64(0) }
            b.pad(to: 32); b.bytes += [UInt8](repeating: 0, count: 256)
        }) { $0 == .duplicateTensor("t") }
        expectError(tensorFile(dims: [1, 1, 1, 1, 1])) { if case .badDimensionCount = $0 { true } else { false } }
        expectError(tensorFile(dims: [])) { if case .badDimensionCount = $0 { true } else { false } }
        expectError(tensorFile(dims: [32, 0])) { if case .badDimension = $0 { true } else { false } }
        expectError(tensorFile(dims: [32, UInt64(bitPattern: -1)])) { if case .badDimension = $0 { true } else { false } }
        expectError(tensorFile(dims: [1 << 40, 1 << 40, 1 << 40])) { if case .shapeOverflow = $0 { true } else { false } }
        expectError(tensorFile(type: 77)) { if case .unknownTensorType = $0 { true } else { false } }
        expectError(tensorFile(dims: [33], type: GGMLType.q4_0.rawValue)) { if case .rowNotBlockAligned = $0 { true } else { false } }
    }

    @Test func badOffsets() {
        expectError(tensorFile(offset: .max)) { if case .misalignedOffset = $0 { true } else { false } }
        expectError(tensorFile(offset: 7)) { if case .misalignedOffset = $0 { true } else { false } }
        expectError(tensorFile(offset: UInt64.max - 31)) { if case .tensorOutOfBounds = $0 { true } else { false } }
        // 32 floats need 128 bytes: one byte short must fail, exact must pass.
        expectError(tensorFile(dataBytes: 127)) { if case .tensorOutOfBounds = $0 { true } else { false } }
        #expect(throws: Never.self) { try GGUFFile(bytes: tensorFile(dataBytes: 128)) }
    }

    /// Seeded random mutations of a real tiny model: every input must parse or throw, never trap.
    @Test func mutationFuzz() throws {
        var spec = TinyModelSpec()
        spec.layers = 1
        spec.embedding = 32
        spec.feedForward = 32
        spec.vocabulary = 16
        let seedFile = try TinyModel.writer(spec).serialize()
        let headerEnd = try GGUFFile(bytes: seedFile).dataOffset
        var rng = SplitMix64(seed: 0xF0221)
        var parsed = 0, rejected = 0
        for _ in 0 ..< 100_000 {
            var bytes = seedFile
            for _ in 0 ..< Int.random(in: 1 ... 4, using: &rng) {
                // Mostly the header, where every field is a count, length, offset or type.
                let limit = Int.random(in: 0 ..< 10, using: &rng) == 0 ? bytes.count : min(bytes.count, headerEnd)
                let i = Int.random(in: 0 ..< limit, using: &rng)
                switch Int.random(in: 0 ..< 4, using: &rng) {
                case 0: bytes[i] = UInt8.random(in: 0 ... 255, using: &rng)
                case 1: bytes[i] ^= 1 << UInt8.random(in: 0 ..< 8, using: &rng)
                case 2: bytes[i] = [0x00, 0xFF, 0x7F, 0x80][Int.random(in: 0 ..< 4, using: &rng)]
                default: bytes.removeSubrange(i ..< min(bytes.count, i + Int.random(in: 1 ... 16, using: &rng)))
                }
                if bytes.isEmpty { break }
            }
            if (try? GGUFFile(bytes: bytes)) != nil { parsed += 1 } else { rejected += 1 }
        }
        #expect(rejected > 10_000)
        #expect(parsed > 1_000)
    }
}
