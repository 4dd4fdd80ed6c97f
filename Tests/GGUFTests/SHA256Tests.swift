import GGUF
import Testing

@Suite struct SHA256Tests {
    static func hex(_ s: String) -> String { SHA256.hex(SHA256.hash(Array(s.utf8))) }

    /// FIPS 180-4 / NIST CSRC example vectors.
    @Test func nistVectors() {
        #expect(Self.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Self.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Self.hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")
            == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
    }

    @Test func oneMillionA() {
        let a = [UInt8](repeating: 0x61, count: 1_000_000)
        #expect(SHA256.hex(SHA256.hash(a)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // The same million bytes fed in uneven pieces.
        var s = SHA256()
        var i = 0, step = 1
        while i < a.count {
            let n = min(step, a.count - i)
            a[i ..< i + n].withUnsafeBytes { s.update($0) }
            i += n
            step = step * 3 % 1000 + 1
        }
        #expect(SHA256.hex(s.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Lengths around the padding boundaries (55/56 bytes of a block left, full blocks), for the
    /// message byte i = (7i + 3) mod 256. Expected values computed with Python's hashlib.
    @Test func paddingBoundaries() {
        let expected: [(Int, String)] = [
            (55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"),
            (56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"),
            (57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73"),
            (63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"),
            (64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"),
            (65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"),
            (119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"),
            (120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"),
            (127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07"),
            (128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"),
            (129, "307f8fc2c1622b92762e818d39a185d4d667ad49a4b07ceae1f4afa008a93ec4"),
            (1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371"),
        ]
        for (n, digest) in expected {
            let m = (0 ..< n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            #expect(SHA256.hex(SHA256.hash(m)) == digest, "length \(n)")
        }
    }

    @Test func splitAtEveryOffsetMatchesOneUpdate() {
        let m = (0 ..< 200).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 11) }
        let whole = SHA256.hash(m)
        #expect(whole.count == 32)
        for k in 0 ... m.count {
            var s = SHA256()
            s.update(m[..<k])
            m[k...].withUnsafeBytes { s.update($0) }
            #expect(s.finalize() == whole, "split at \(k)")
        }
        // Three pieces, and one byte at a time.
        for k in stride(from: 0, through: 200, by: 7) {
            for j in stride(from: k, through: 200, by: 13) {
                var s = SHA256()
                s.update(m[..<k])
                s.update(m[k ..< j])
                s.update(m[j...])
                #expect(s.finalize() == whole, "split at \(k), \(j)")
            }
        }
        var bytewise = SHA256()
        for b in m { bytewise.update([b]) }
        #expect(bytewise.finalize() == whole)
    }

    @Test func nonContiguousCollectionsAndRawBuffers() {
        let m = (0 ..< 10_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let whole = SHA256.hash(m)
        #expect(SHA256.hash(m.lazy.map { $0 }) == whole)
        #expect(m.withUnsafeBytes { SHA256.hash($0) } == whole)
    }

    @Test func finalizeLeavesTheHasherUsable() {
        var s = SHA256()
        s.update(Array("ab".utf8))
        #expect(s.finalize() == SHA256.hash(Array("ab".utf8)))
        #expect(s.finalize() == s.finalize())
        s.update(Array("c".utf8))
        #expect(SHA256.hex(s.finalize()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
