import Testing
import StarStream

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    /// Slicing-by-8 equals the bit-at-a-time definition at every length and alignment.
    @Test func matchesBitwiseReference() {
        func reference(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        var rng = SeededRandom(seed: 7)
        let data = (0..<300).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for start in 0..<9 {
            for end in stride(from: start, through: data.count, by: 13) {
                #expect(CRC32C.checksum(data[start..<end]) == reference(data[start..<end]))
            }
        }
        var incremental = CRC32C()
        incremental.update(data[0..<5])
        incremental.update(data[5..<200])
        incremental.update(data[200...])
        #expect(incremental.value == reference(data[...]))
    }
}

@Suite struct HalfFloatTests {
    @Test func everyHalfRoundTrips() {
        for bits in 0...UInt16.max {
            let value = HalfFloat.float(fromBits: bits)
            if value.isNaN {
                #expect(HalfFloat.bits(from: value) & 0x7C00 == 0x7C00)
                #expect(HalfFloat.bits(from: value) & 0x03FF != 0)
            } else {
                #expect(HalfFloat.bits(from: value) == bits)
            }
        }
    }

    @Test func edgeCases() {
        #expect(HalfFloat.bits(from: 65504) == 0x7BFF)
        #expect(HalfFloat.bits(from: 65520) == 0x7C00)  // rounds up to infinity
        #expect(HalfFloat.bits(from: 1e9) == 0x7C00)
        #expect(HalfFloat.bits(from: -Float.infinity) == 0xFC00)
        #expect(HalfFloat.bits(from: 0x1p-24) == 0x0001)
        #expect(HalfFloat.bits(from: 0x1p-25) == 0x0000)  // tie to even
        #expect(HalfFloat.bits(from: 0x1.8p-25) == 0x0001)
        #expect(HalfFloat.bits(from: -0.0) == 0x8000)
        #expect(HalfFloat.bits(from: 1.0) == 0x3C00)
        #expect(HalfFloat.bits(from: 1.0 + 0x1p-11) == 0x3C00)  // tie to even
        #expect(HalfFloat.bits(from: 1.0 + 0x1.8p-11) == 0x3C01)
    }

    #if !(os(macOS) && arch(x86_64))
    /// Agrees with the platform's Float16 conversion on random floats of every magnitude.
    @Test func matchesFloat16() {
        var rng = SeededRandom(seed: 3)
        for _ in 0..<200_000 {
            let value = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            let expected = Float16(value).bitPattern
            let actual = HalfFloat.bits(from: value)
            if value.isNaN {
                #expect(actual & 0x7C00 == 0x7C00 && actual & 0x3FF != 0)
            } else if actual != expected {
                Issue.record("\(value): \(actual) != \(expected)")
                return
            }
        }
    }
    #endif
}
