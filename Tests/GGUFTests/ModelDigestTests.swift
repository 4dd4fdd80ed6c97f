#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Crypto
import Foundation
import GGUF
import TestSupport
import Testing

@Suite struct ModelDigestTests {
    /// A fresh file path in the temporary directory, removed by `cleanup`.
    static func tempPath(_ name: String) -> String {
        NSTemporaryDirectory() + "pangalactic-digest-\(UUID().uuidString)-\(name).gguf"
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func digest(ofFileWith bytes: [UInt8]) throws -> [UInt8] {
        let path = tempPath("x")
        defer { unlink(path) }
        try write(bytes, to: path)
        return try GGUFFile(path: path).modelDigest()
    }

    /// A model whose data section (4 MiB) is larger than the 1 MiB the digest samples.
    static func largeModelBytes() throws -> [UInt8] {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        let n = 1024 * 1024
        try w.addTensor(name: "big", shape: [1024, 1024], floats: (0 ..< n).map { Float($0 % 977) })
        return w.serialize()
    }

    @Test func sameModelWrittenTwiceGivesTheSameDigest() throws {
        let writer = try TinyModel.writer(TinyModelSpec())
        let a = Self.tempPath("a"), b = Self.tempPath("b")
        defer { unlink(a); unlink(b) }
        try writer.write(to: a)
        try writer.write(to: b)
        let fa = try GGUFFile(path: a), fb = try GGUFFile(path: b)
        #expect(fa.path == a)
        let da = try fa.modelDigest()
        #expect(da.count == 32)
        #expect(try fb.modelDigest() == da)
        #expect(try fa.modelDigest() == da)
        // Bytes parsed in memory hash the same as the same bytes read from disk.
        let inMemory = try GGUFFile(bytes: writer.serialize())
        #expect(inMemory.path == nil)
        #expect(try inMemory.modelDigest() == da)
    }

    @Test func digestIsTheDocumentedConstruction() throws {
        let bytes = try TinyModel.writer(TinyModelSpec()).serialize()
        let f = try GGUFFile(bytes: bytes)
        var s = SHA256()
        s.update(data: Array("pangalactic-model-digest-v1".utf8))
        withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { s.update(bufferPointer: $0) }
        s.update(data: bytes[..<f.dataOffset])
        // The tiny model's data section is under 1 MiB, so it is hashed whole.
        #expect(bytes.count - f.dataOffset < 256 * 4096)
        s.update(data: bytes[f.dataOffset...])
        #expect(try f.modelDigest() == Array(s.finalize()))
    }

    @Test func oneWeightByteChangesTheDigest() throws {
        let bytes = try TinyModel.writer(TinyModelSpec()).serialize()
        let f = try GGUFFile(bytes: bytes)
        let base = try Self.digest(ofFileWith: bytes)
        let t = try #require(f.tensor(named: "blk.2.ffn_up.weight"))
        var edited = bytes
        edited[t.fileOffset + t.byteCount / 2] ^= 0x01
        #expect(try Self.digest(ofFileWith: edited) != base)
    }

    @Test func sampledWindowsOfALargeModel() throws {
        let bytes = try Self.largeModelBytes()
        let f = try GGUFFile(bytes: bytes)
        let windows = GGUFFile.modelDigestWindows(dataSection: f.dataOffset ..< bytes.count)
        #expect(windows.count == 256)
        let base = try Self.digest(ofFileWith: bytes)
        #expect(try f.modelDigest() == base)

        // A byte inside a sampled window changes the digest, at the start, middle and end.
        for w in [windows[0], windows[100], windows[255]] {
            for at in [w.lowerBound, w.upperBound - 1] {
                var edited = bytes
                edited[at] ^= 0x80
                #expect(try Self.digest(ofFileWith: edited) != base, "byte \(at)")
            }
        }
        // A byte between two windows is not sampled: this is a fingerprint, not a full hash.
        var between = bytes
        between[(windows[100].upperBound + windows[101].lowerBound) / 2] ^= 0x80
        #expect(try Self.digest(ofFileWith: between) == base)
    }

    @Test func oneMetadataValueChangesTheDigest() throws {
        var writer = try TinyModel.writer(TinyModelSpec())
        let base = try Self.digest(ofFileWith: writer.serialize())
        writer.set("llama.context_length", .uint32(257))
        #expect(try Self.digest(ofFileWith: writer.serialize()) != base)
    }

    @Test func differentWeightsChangeTheDigest() throws {
        var spec = TinyModelSpec()
        let base = try Self.digest(ofFileWith: TinyModel.writer(spec).serialize())
        spec.seed = 2
        #expect(try Self.digest(ofFileWith: TinyModel.writer(spec).serialize()) != base)
    }

    @Test func appendedDataChangesTheDigest() throws {
        for bytes in [try TinyModel.writer(TinyModelSpec()).serialize(), try Self.largeModelBytes()] {
            let base = try Self.digest(ofFileWith: bytes)
            #expect(try Self.digest(ofFileWith: bytes + [0]) != base)
            #expect(try Self.digest(ofFileWith: bytes + [UInt8](repeating: 0, count: 4096)) != base)
        }
    }

    @Test func aFileReplacedAfterMappingIsAnError() throws {
        let bytes = try TinyModel.writer(TinyModelSpec()).serialize()
        let a = Self.tempPath("a"), b = Self.tempPath("b")
        defer { unlink(a); unlink(b) }
        try Self.write(bytes, to: a)
        let f = try GGUFFile(path: a)
        // Same size, different inode.
        try Self.write(bytes, to: b)
        #expect(rename(b, a) == 0)
        #expect(throws: GGUFError.self) { try f.modelDigest() }
        // Gone altogether.
        unlink(a)
        #expect(throws: GGUFError.cannotOpen(path: a, errno: ENOENT)) { try f.modelDigest() }
    }

    @Test func windowLayout() {
        #expect(GGUFFile.modelDigestWindows(dataSection: 100 ..< 100).isEmpty)
        #expect(GGUFFile.modelDigestWindows(dataSection: 64 ..< 100) == [64 ..< 100])
        let small = GGUFFile.modelDigestWindows(dataSection: 32 ..< 32 + 3 * 4096 + 5)
        #expect(small == [32 ..< 4128, 4128 ..< 8224, 8224 ..< 12320, 12320 ..< 12325])
        let full = GGUFFile.modelDigestWindows(dataSection: 0 ..< 256 * 4096)
        #expect(full.count == 256 && full.allSatisfy { $0.count == 4096 } && full.last?.upperBound == 256 * 4096)

        for section in [0 ..< 256 * 4096 + 1, 96 ..< 96 + 400_000_000, 1 << 40 ..< (1 << 40) + (1 << 45)] {
            let w = GGUFFile.modelDigestWindows(dataSection: section)
            #expect(w.count == 256)
            #expect(w.first?.lowerBound == section.lowerBound)
            #expect(w.last?.upperBound == section.upperBound)
            #expect(w.allSatisfy { $0.count == 4096 && section.contains($0.lowerBound) })
            #expect(zip(w, w.dropFirst()).allSatisfy { $0.upperBound <= $1.lowerBound })
        }
    }
}
