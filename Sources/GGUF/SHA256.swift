/// SHA-256 as specified in FIPS 180-4, written out plainly: a 64-byte block buffer, the eight
/// working words, and the 64-round compression function with wrapping arithmetic.
///
/// It exists so the GGUF layer can fingerprint model files (see `GGUFFile.modelDigest()`)
/// without a package dependency. Feed bytes with `update` as often as you like, then call
/// `finalize()`; `finalize` reads a copy, so the hasher can keep taking bytes afterwards.
public struct SHA256: Sendable {
    public static let digestByteCount = 32
    public static let blockByteCount = 64

    /// FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the cube roots of
    /// the first 64 primes.
    private static let k: [UInt32] = [
        0x428A_2F98, 0x7137_4491, 0xB5C0_FBCF, 0xE9B5_DBA5, 0x3956_C25B, 0x59F1_11F1, 0x923F_82A4, 0xAB1C_5ED5,
        0xD807_AA98, 0x1283_5B01, 0x2431_85BE, 0x550C_7DC3, 0x72BE_5D74, 0x80DE_B1FE, 0x9BDC_06A7, 0xC19B_F174,
        0xE49B_69C1, 0xEFBE_4786, 0x0FC1_9DC6, 0x240C_A1CC, 0x2DE9_2C6F, 0x4A74_84AA, 0x5CB0_A9DC, 0x76F9_88DA,
        0x983E_5152, 0xA831_C66D, 0xB003_27C8, 0xBF59_7FC7, 0xC6E0_0BF3, 0xD5A7_9147, 0x06CA_6351, 0x1429_2967,
        0x27B7_0A85, 0x2E1B_2138, 0x4D2C_6DFC, 0x5338_0D13, 0x650A_7354, 0x766A_0ABB, 0x81C2_C92E, 0x9272_2C85,
        0xA2BF_E8A1, 0xA81A_664B, 0xC24B_8B70, 0xC76C_51A3, 0xD192_E819, 0xD699_0624, 0xF40E_3585, 0x106A_A070,
        0x19A4_C116, 0x1E37_6C08, 0x2748_774C, 0x34B0_BCB5, 0x391C_0CB3, 0x4ED8_AA4A, 0x5B9C_CA4F, 0x682E_6FF3,
        0x748F_82EE, 0x78A5_636F, 0x84C8_7814, 0x8CC7_0208, 0x90BE_FFFA, 0xA450_6CEB, 0xBEF9_A3F7, 0xC671_78F2,
    ]

    /// FIPS 180-4 section 5.3.3: the initial hash value.
    private var h: State = (
        0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19
    )
    /// Bytes of an unfinished block, always fewer than 64.
    private var pending: [UInt8] = []
    /// Total message bytes so far. The length field is this times 8, modulo 2^64 (FIPS 180-4
    /// limits messages to under 2^64 bits).
    private var byteCount: UInt64 = 0

    public init() {
        pending.reserveCapacity(Self.blockByteCount)
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        byteCount &+= UInt64(bytes.count)
        var offset = 0
        let n = bytes.count
        if !pending.isEmpty {
            let take = min(Self.blockByteCount - pending.count, n)
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: take))
            offset = take
            guard pending.count == Self.blockByteCount else { return }
            pending.withUnsafeBytes { block in
                if let p = block.baseAddress { Self.compress(&h, p) }
            }
            pending.removeAll(keepingCapacity: true)
        }
        while n - offset >= Self.blockByteCount {
            Self.compress(&h, base + offset)
            offset += Self.blockByteCount
        }
        if offset < n {
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base + offset, count: n - offset))
        }
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            update(UnsafeRawBufferPointer(buffer))
        }
        if done == nil {
            // Not contiguous (a lazy view, a reversed collection …): hash it a page at a time.
            var chunk: [UInt8] = []
            chunk.reserveCapacity(4096)
            for b in bytes {
                chunk.append(b)
                if chunk.count == 4096 {
                    chunk.withUnsafeBytes { update($0) }
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            chunk.withUnsafeBytes { update($0) }
        }
    }

    /// The 32-byte digest of everything given so far. Pads a copy of the state (FIPS 180-4
    /// section 5.1.1: a 1 bit, zeros, then the bit length as a big-endian 64-bit integer).
    public func finalize() -> [UInt8] {
        var copy = self
        let bitLength = byteCount &* 8
        var tail: [UInt8] = [0x80]
        let used = (pending.count + 1) % Self.blockByteCount
        let zeros = used <= 56 ? 56 - used : 56 + Self.blockByteCount - used
        tail.append(contentsOf: repeatElement(0, count: zeros))
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        copy.update(tail)
        var out: [UInt8] = []
        out.reserveCapacity(Self.digestByteCount)
        let h = copy.h
        for word in [h.0, h.1, h.2, h.3, h.4, h.5, h.6, h.7] {
            out.append(UInt8(truncatingIfNeeded: word >> 24))
            out.append(UInt8(truncatingIfNeeded: word >> 16))
            out.append(UInt8(truncatingIfNeeded: word >> 8))
            out.append(UInt8(truncatingIfNeeded: word))
        }
        return out
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var s = SHA256()
        s.update(bytes)
        return s.finalize()
    }

    public static func hash<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var s = SHA256()
        s.update(bytes)
        return s.finalize()
    }

    /// Lowercase hexadecimal, the usual way to print a digest.
    public static func hex(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var s: [UInt8] = []
        s.reserveCapacity(digest.count * 2)
        for b in digest {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: s, as: UTF8.self)
    }

    /// One 64-byte block (FIPS 180-4 section 6.2.2). The message schedule is kept as a rolling
    /// window of 16 words, so the whole round state lives in locals.
    private typealias State = (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)

    @inline(__always)
    private static func compress(_ h: inout State, _ block: UnsafeRawPointer) {
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 &- n)) }
        k.withUnsafeBufferPointer { k in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 16) { w in
                for i in 0 ..< 16 {
                    w[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                }
                var (a, b, c, d, e, f, g, hh) = h
                for t in 0 ..< 64 {
                    let wt: UInt32
                    if t < 16 {
                        wt = w[t]
                    } else {
                        let w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15]
                        let s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3)
                        let s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10)
                        wt = w[t & 15] &+ s0 &+ w[(t - 7) & 15] &+ s1
                        w[t & 15] = wt
                    }
                    let bigS1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                    let ch = (e & f) ^ (~e & g)
                    let t1 = hh &+ bigS1 &+ ch &+ k[t] &+ wt
                    let bigS0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                    let maj = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = bigS0 &+ maj
                    hh = g
                    g = f
                    f = e
                    e = d &+ t1
                    d = c
                    c = b
                    b = a
                    a = t1 &+ t2
                }
                h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e, h.5 &+ f, h.6 &+ g, h.7 &+ hh)
            }
        }
    }
}
