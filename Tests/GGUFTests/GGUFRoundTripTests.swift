import GGUF
import TestSupport
import Testing

@Suite struct GGUFRoundTripTests {
    @Test func writerOutputParsesBack() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("a.u8", .uint8(7))
        w.set("a.i64", .int64(-5))
        w.set("a.f64", .float64(2.5))
        w.set("a.bool", .bool(true))
        w.set("a.strings", .array(.string, [.string("x"), .string("yz")]))
        try w.addTensor(name: "t0", shape: [4, 2], floats: [1, 2, 3, 4, 5, 6, 7, 8])
        var rng = SplitMix64(seed: 3)
        try w.addTensor(name: "t1", type: .q4_K, shape: [256, 3], data: RandomBlocks.row(.q4_K, count: 768, rng: &rng))
        let f = try GGUFFile(bytes: w.serialize())
        #expect(f.version == 3)
        #expect(f.metadata.keys == ["general.architecture", "a.u8", "a.i64", "a.f64", "a.bool", "a.strings"])
        #expect(f.metadata.int("a.u8") == 7)
        #expect(f.metadata.int("a.i64") == -5)
        #expect(f.metadata.double("a.f64") == 2.5)
        #expect(f.metadata.bool("a.bool") == true)
        #expect(f.metadata.stringArray("a.strings") == ["x", "yz"])
        let t0 = try #require(f.tensor(named: "t0"))
        #expect(t0.shape == [4, 2] && t0.type == .f32 && t0.byteCount == 32 && t0.rowCount == 2)
        #expect(f.data(of: t0).loadUnaligned(fromByteOffset: 12, as: Float.self) == 4)
        let t1 = try #require(f.tensor(named: "t1"))
        #expect(t1.byteCount == 3 * 144)
        #expect(t1.fileOffset % 32 == 0)
    }

    @Test func layerFootprintsCoverBlockTensors() throws {
        var spec = TinyModelSpec()
        spec.layers = 3
        let f = try TinyModel.file(spec)
        let fp = try #require(f.layerFootprint(1))
        let names = f.tensors.filter { $0.layerIndex == 1 }
        #expect(fp.bytes == names.reduce(0) { $0 + $1.byteCount })
        #expect(names.allSatisfy { fp.span.contains($0.fileOffset) })
        #expect(f.layerFootprint(3) == nil)
    }

    @Test func version2IsAccepted() throws {
        var w = GGUFWriter(version: 2)
        w.set("k", .uint32(1))
        #expect(try GGUFFile(bytes: w.serialize()).version == 2)
    }
}
