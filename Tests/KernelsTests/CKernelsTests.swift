// Tests for the C SIMD kernels: every AVX2 function against its scalar `_ref` twin on seeded
// random data, the references against independent Swift decoders written from the block
// formulas, and a few hand-built blocks with hand-computed dot products.
import CKernels
import GGUF
import Kernels
import TestSupport
import Testing

// MARK: - Helpers

/// Test-data helpers on the shared seeded generator.
typealias CKSplitMix64 = SplitMix64

extension SplitMix64 {
    /// Uniform in [0, 1).
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func float(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * unit() }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next() >> 56) }
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in byte() } }
    mutating func floats(_ count: Int, _ lo: Float = -2, _ hi: Float = 2) -> [Float] {
        (0..<count).map { _ in float(lo, hi) }
    }
    /// A sane fp16 scale: magnitude in [0.001, 0.05], random sign.
    mutating func scaleF16() -> UInt16 {
        let m = float(0.001, 0.05)
        return Float16(next() & 1 == 0 ? m : -m).bitPattern
    }
}

@inline(__always) fileprivate func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
@inline(__always) fileprivate func f16(_ b: [UInt8], _ o: Int) -> Float { Float(Float16(bitPattern: u16(b, o))) }
@inline(__always) fileprivate func f32(_ b: [UInt8], _ o: Int) -> Float {
    Float(bitPattern: UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24)
}
@inline(__always) fileprivate func i8(_ b: [UInt8], _ o: Int) -> Int { Int(Int8(bitPattern: b[o])) }
@inline(__always) fileprivate func i16(_ b: [UInt8], _ o: Int) -> Int { Int(Int16(bitPattern: u16(b, o))) }
fileprivate func put16(_ b: inout [UInt8], _ o: Int, _ v: UInt16) {
    b[o] = UInt8(v & 0xFF)
    b[o + 1] = UInt8(v >> 8)
}

// MARK: - Activation formats

enum CKAct: Sendable, CaseIterable {
    case q8_0, q8_1, q8_K

    var blockValues: Int { self == .q8_K ? 256 : 32 }
    var blockBytes: Int {
        switch self {
        case .q8_0: 34
        case .q8_1: 36
        case .q8_K: 292
        }
    }
    var qsOffset: Int {
        switch self {
        case .q8_0: 2
        case .q8_1: 4
        case .q8_K: 4
        }
    }

    /// Fills the output with a different pattern per implementation so unwritten bytes show up.
    var format: ActivationFormat {
        switch self {
        case .q8_0: .q8_0
        case .q8_1: .q8_1
        case .q8_K: .q8_K
        }
    }

    /// Fills the output with a different pattern per implementation so unwritten bytes show up.
    /// `fast` runs `level`'s SIMD quantizer, else the plain C twin.
    func quantize(_ x: [Float], fast: Bool, level: ISALevel = .best) -> [UInt8] {
        var out = [UInt8](repeating: fast ? 0xAA : 0x55, count: x.count / blockValues * blockBytes)
        let quantize = KernelTable(level: fast ? level : .reference).quantizer(format)!
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBytes { op in quantize(xp.baseAddress!, op.baseAddress!, Int64(x.count)) }
        }
        return out
    }

    func scale(_ b: [UInt8], block: Int) -> Float {
        self == .q8_K ? f32(b, block * blockBytes) : f16(b, block * blockBytes)
    }
    func q(_ b: [UInt8], block: Int, _ j: Int) -> Int { i8(b, block * blockBytes + qsOffset + j) }

    /// y = d * q for every value.
    func dequant(_ b: [UInt8]) -> [Double] {
        let nb = b.count / blockBytes
        var y = [Double](repeating: 0, count: nb * blockValues)
        for ib in 0..<nb {
            let d = Double(scale(b, block: ib))
            for j in 0..<blockValues { y[ib * blockValues + j] = d * Double(q(b, block: ib, j)) }
        }
        return y
    }
}

// MARK: - Weight formats (Swift decoders written directly from the format definitions)

enum CKWeight: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K

    var testDescription: String { rawValue }
    var isK: Bool { self == .q4_K || self == .q5_K || self == .q6_K }
    var blockValues: Int { isK ? 256 : 32 }
    var blockBytes: Int {
        switch self {
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q8_0: 34
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        }
    }
    /// Offsets of the fp16 scale fields that random weights get sane values for.
    var f16Fields: [Int] {
        switch self {
        case .q4_0, .q5_0, .q8_0: [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
        case .q6_K: [208]
        }
    }
    var act: CKAct {
        switch self {
        case .q4_0, .q5_0, .q8_0: .q8_0
        case .q4_1, .q5_1: .q8_1
        case .q4_K, .q5_K, .q6_K: .q8_K
        }
    }

    func randomRow(_ n: Int, _ rng: inout CKSplitMix64) -> [UInt8] {
        var b = rng.bytes(n / blockValues * blockBytes)
        for ib in 0..<(n / blockValues) {
            for o in f16Fields { put16(&b, ib * blockBytes + o, rng.scaleF16()) }
        }
        return b
    }

    var ggml: GGMLType {
        switch self {
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        case .q5_0: .q5_0
        case .q5_1: .q5_1
        case .q8_0: .q8_0
        case .q4_K: .q4_K
        case .q5_K: .q5_K
        case .q6_K: .q6_K
        }
    }

    /// `fast` runs `level`'s SIMD kernel, else the plain C twin.
    func dot(fast: Bool, level: ISALevel = .best, _ n: Int, _ w: UnsafeRawPointer, _ a: UnsafeRawPointer) -> Float {
        KernelTable(level: fast ? level : .reference).kernels(for: ggml).dot!(Int64(n), w, a)
    }

    func dot(fast: Bool, level: ISALevel = .best, _ n: Int, _ w: [UInt8], _ a: [UInt8]) -> Float {
        w.withUnsafeBytes { wp in a.withUnsafeBytes { ap in dot(fast: fast, level: level, n, wp.baseAddress!, ap.baseAddress!) } }
    }

    /// Scaled part of each dequantized weight (q * d, or d*sc*q for K-quants, including the
    /// K-quant "- dmin * m" term) and, separately, the per-block additive min of Q4_1/Q5_1.
    func dequant(_ b: [UInt8]) -> (values: [Double], blockMins: [Double]) {
        let nb = b.count / blockBytes
        var y = [Double](repeating: 0, count: nb * blockValues)
        var mins = [Double](repeating: 0, count: nb)
        for ib in 0..<nb {
            let o = ib * blockBytes
            let out = ib * blockValues
            switch self {
            case .q4_0, .q4_1:
                let d = Double(f16(b, o))
                let qs = o + (self == .q4_0 ? 2 : 4)
                let off = self == .q4_0 ? 8 : 0
                if self == .q4_1 { mins[ib] = Double(f16(b, o + 2)) }
                for j in 0..<16 {
                    y[out + j] = Double(Int(b[qs + j] & 0xF) - off) * d
                    y[out + j + 16] = Double(Int(b[qs + j] >> 4) - off) * d
                }
            case .q5_0, .q5_1:
                let d = Double(f16(b, o))
                let qhOff = o + (self == .q5_0 ? 2 : 4)
                let qs = qhOff + 4
                let qh = UInt32(b[qhOff]) | UInt32(b[qhOff + 1]) << 8 | UInt32(b[qhOff + 2]) << 16 | UInt32(b[qhOff + 3]) << 24
                let off = self == .q5_0 ? 16 : 0
                if self == .q5_1 { mins[ib] = Double(f16(b, o + 2)) }
                for j in 0..<16 {
                    let xh0 = Int(((qh >> UInt32(j)) << 4) & 0x10)
                    let xh1 = Int((qh >> UInt32(j + 12)) & 0x10)
                    y[out + j] = Double((Int(b[qs + j] & 0xF) | xh0) - off) * d
                    y[out + j + 16] = Double((Int(b[qs + j] >> 4) | xh1) - off) * d
                }
            case .q8_0:
                let d = Double(f16(b, o))
                for j in 0..<32 { y[out + j] = Double(i8(b, o + 2 + j)) * d }
            case .q4_K, .q5_K:
                let d = Double(f16(b, o)), dmin = Double(f16(b, o + 2))
                let sc = o + 4
                let qh = o + 16
                let qs = o + (self == .q4_K ? 16 : 48)
                func scaleMin(_ j: Int) -> (Int, Int) {
                    if j < 4 { return (Int(b[sc + j] & 63), Int(b[sc + j + 4] & 63)) }
                    return (Int(b[sc + j + 4] & 0xF) | Int(b[sc + j - 4] >> 6) << 4,
                            Int(b[sc + j + 4] >> 4) | Int(b[sc + j] >> 6) << 4)
                }
                for c in 0..<4 {
                    let (sc1, m1) = scaleMin(2 * c), (sc2, m2) = scaleMin(2 * c + 1)
                    for l in 0..<32 {
                        let q = Int(b[qs + 32 * c + l])
                        var lo = q & 0xF, hi = q >> 4
                        if self == .q5_K {
                            if Int(b[qh + l]) & (1 << (2 * c)) != 0 { lo += 16 }
                            if Int(b[qh + l]) & (2 << (2 * c)) != 0 { hi += 16 }
                        }
                        y[out + 64 * c + l] = d * Double(sc1) * Double(lo) - dmin * Double(m1)
                        y[out + 64 * c + 32 + l] = d * Double(sc2) * Double(hi) - dmin * Double(m2)
                    }
                }
            case .q6_K:
                let d = Double(f16(b, o + 208))
                for h in 0..<2 {
                    let L = o + 64 * h, H = o + 128 + 32 * h, S = o + 192 + 8 * h
                    for l in 0..<32 {
                        let isc = l / 16
                        let hl = Int(b[H + l])
                        let q1 = (Int(b[L + l] & 0xF) | (hl & 3) << 4) - 32
                        let q2 = (Int(b[L + l + 32] & 0xF) | ((hl >> 2) & 3) << 4) - 32
                        let q3 = (Int(b[L + l] >> 4) | ((hl >> 4) & 3) << 4) - 32
                        let q4 = (Int(b[L + l + 32] >> 4) | ((hl >> 6) & 3) << 4) - 32
                        let base = out + 128 * h + l
                        y[base] = d * Double(i8(b, S + isc)) * Double(q1)
                        y[base + 32] = d * Double(i8(b, S + isc + 2)) * Double(q2)
                        y[base + 64] = d * Double(i8(b, S + isc + 4)) * Double(q3)
                        y[base + 96] = d * Double(i8(b, S + isc + 6)) * Double(q4)
                    }
                }
            }
        }
        return (y, mins)
    }

    /// The exact dot from the format definitions, and a magnitude scale sum(|w||a|) for
    /// tolerances. For Q4_1/Q5_1 the min term uses the activation's stored s (= d*sum(qs)),
    /// which is how the pairing is defined.
    func exactDot(_ w: [UInt8], _ a: [UInt8]) -> (value: Double, scale: Double) {
        let (wv, wm) = dequant(w)
        let av = act.dequant(a)
        var sum = 0.0, mag = 0.0
        for i in 0..<wv.count {
            sum += wv[i] * av[i]
            mag += abs(wv[i] * av[i])
        }
        if self == .q4_1 || self == .q5_1 {
            for ib in 0..<wm.count {
                let s = Double(f16(a, ib * 36 + 2))
                sum += wm[ib] * s
                for j in 0..<32 { mag += abs(wm[ib] * av[ib * 32 + j]) }
            }
        }
        return (sum, mag)
    }
}

// MARK: - Quantized dot products

@Suite struct CKernelsQuantDotTests {
    static let multiples = [1, 3, 7, 18]

    @Test(arguments: CKWeight.allCases, KernelTable.simdLevels)
    func fastMatchesRefAndRefMatchesFormula(_ t: CKWeight, _ level: ISALevel) {
        var rng = CKSplitMix64(seed: 0xC0FFEE ^ UInt64(t.blockBytes))
        var lengths = Self.multiples.map { $0 * t.blockValues }
        lengths.append(t.isK ? 4864 : 896)
        for n in lengths {
            for _ in 0..<3 {
                let w = t.randomRow(n, &rng)
                let x = rng.floats(n)
                let a = t.act.quantize(x, fast: false)
                let ref = t.dot(fast: false, n, w, a)
                let fast = t.dot(fast: true, level: level, n, w, a)
                let (exact, scale) = t.exactDot(w, a)
                // Integer sums are the same on every level, and so are the float steps after them.
                let baseline = t.dot(fast: true, level: KernelTable.simdLevels[0], n, w, a)
                #expect(fast.bitPattern == baseline.bitPattern, "\(t) n=\(n): \(level) \(fast) vs \(KernelTable.simdLevels[0]) \(baseline)")
                let tol = 1e-4 * scale + 1e-12
                #expect(abs(Double(fast) - Double(ref)) <= tol, "\(t) n=\(n): fast \(fast) vs ref \(ref)")
                #expect(abs(Double(ref) - exact) <= tol, "\(t) n=\(n): ref \(ref) vs formula \(exact)")
                // Activations from the fast quantizer must work just as well.
                let af = t.act.quantize(x, fast: true, level: level)
                let (exactF, scaleF) = t.exactDot(w, af)
                #expect(abs(Double(t.dot(fast: true, level: level, n, w, af)) - exactF) <= 1e-4 * scaleF + 1e-12)
            }
        }
    }

    /// Rows come from mmap and may start at any byte: results must not depend on alignment.
    @Test(arguments: CKWeight.allCases, KernelTable.simdLevels)
    func unalignedRows(_ t: CKWeight, _ level: ISALevel) {
        var rng = CKSplitMix64(seed: 77)
        let n = 3 * t.blockValues
        let w = t.randomRow(n, &rng)
        let a = t.act.quantize(rng.floats(n), fast: true, level: level)
        let aligned = t.dot(fast: true, level: level, n, w, a)
        for shift in [1, 3] {
            let wu = [UInt8](repeating: 0, count: shift) + w
            let au = [UInt8](repeating: 0, count: shift + 2) + a
            wu.withUnsafeBytes { wp in
                au.withUnsafeBytes { ap in
                    let f = t.dot(fast: true, level: level, n, wp.baseAddress! + shift, ap.baseAddress! + shift + 2)
                    let r = t.dot(fast: false, n, wp.baseAddress! + shift, ap.baseAddress! + shift + 2)
                    #expect(f == aligned)
                    #expect(abs(r - f) <= 1e-3 * max(1, abs(f)))
                }
            }
        }
    }

    /// Extreme blocks: every weight byte 0xFF / 0x00 (largest unsigned magnitudes, and for Q8_0
    /// the value -1 / 0) against activations at +-127, to catch int16 saturation in maddubs.
    @Test(arguments: CKWeight.allCases, KernelTable.simdLevels)
    func saturationExtremes(_ t: CKWeight, _ level: ISALevel) {
        let n = 2 * t.blockValues
        for fill: UInt8 in [0xFF, 0x00, 0x80, 0x7F] {
            var w = [UInt8](repeating: fill, count: n / t.blockValues * t.blockBytes)
            for ib in 0..<(n / t.blockValues) {
                for o in t.f16Fields { put16(&w, ib * t.blockBytes + o, Float16(0.01).bitPattern) }
            }
            for sign: Float in [1, -1] {
                // Alternating-sign blocks of constant magnitude quantize to exactly +-127.
                let x = (0..<n).map { i in (i % 3 == 0 ? sign : -sign) * 1.5 }
                let a = t.act.quantize(x, fast: false)
                let (exact, scale) = t.exactDot(w, a)
                let ref = t.dot(fast: false, n, w, a), fast = t.dot(fast: true, level: level, n, w, a)
                #expect(abs(Double(ref) - exact) <= 1e-4 * scale + 1e-9, "\(t) fill \(fill)")
                #expect(abs(Double(fast) - exact) <= 1e-4 * scale + 1e-9, "\(t) fill \(fill)")
            }
        }
    }

    // Hand-built blocks with hand-computed results (anchors the references to the formulas).
    // Weight nibbles: qs[j] = j | (15-j) << 4, so values are j (low, y[j]) and 15-j (high, y[j+16]).
    // Activations: qs[i] = i - 16 for i in 0..<32, so a[j] = j-16 and a[j+16] = j.
    static let nibbleBytes: [UInt8] = (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
    static let actBytes: [UInt8] = (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }

    @Test func handBuiltQ4_0() {
        // w: d = 0.5, y[j] = (j-8)*0.5, y[j+16] = (7-j)*0.5. a: d = 0.25.
        // sum_j (j-8)(j-16) = 408 and sum_j (7-j)*j = -400, so the dot is 8 * 0.5 * 0.25 = 1.
        let w = [0x00, 0x38] + Self.nibbleBytes
        let a = [0x00, 0x34] + Self.actBytes
        #expect(CKWeight.q4_0.dot(fast: false, 32, w, a) == 1.0)
        #expect(CKWeight.q4_0.dot(fast: true, 32, w, a) == 1.0)
    }

    @Test func handBuiltQ4_1() {
        // w: d = 0.5, m = -1: y[j] = 0.5*j - 1, y[j+16] = 0.5*(15-j) - 1.
        // a: d = 0.25, s = 0.25 * sum(i-16) = 0.25 * -16 = -4.
        // dot = 0.125 * (sum j(j-16) + sum (15-j)j) + m*s = 0.125 * (-680 + 560) + 4 = -11.
        let w = [0x00, 0x38, 0x00, 0xBC] + Self.nibbleBytes
        let a = [0x00, 0x34, 0x00, 0xC4] + Self.actBytes
        #expect(CKWeight.q4_1.dot(fast: false, 32, w, a) == -11.0)
        #expect(CKWeight.q4_1.dot(fast: true, 32, w, a) == -11.0)
    }

    @Test func handBuiltQ8_0() {
        // w: d = 2, qs = i-16; a: d = 0.25, qs = i-16. dot = 0.5 * sum_{k=-16}^{15} k^2 = 0.5 * 2736.
        let w = [0x00, 0x40] + Self.actBytes
        let a = [0x00, 0x34] + Self.actBytes
        #expect(CKWeight.q8_0.dot(fast: false, 32, w, a) == 1368.0)
        #expect(CKWeight.q8_0.dot(fast: true, 32, w, a) == 1368.0)
        // Two blocks: the second one negated through its scale (d = -2) cancels the first.
        let w2 = w + [0x00, 0xC0] + Self.actBytes
        let a2 = a + a
        #expect(CKWeight.q8_0.dot(fast: false, 64, w2, a2) == 0.0)
        #expect(CKWeight.q8_0.dot(fast: true, 64, w2, a2) == 0.0)
    }
}

// MARK: - Activation quantizers

@Suite struct CKernelsQuantizerTests {
    static func rowLengths(_ act: CKAct) -> [Int] { [1, 3, 7, 18].map { $0 * act.blockValues } }

    /// Q8_0 / Q8_1: identical bytes except where x * (1/d) is exactly halfway between integers:
    /// the reference rounds half away from zero (roundf), the AVX2 path half to even.
    @Test(arguments: [CKAct.q8_0, CKAct.q8_1])
    func q8_0AndQ8_1FastVsRef(_ act: CKAct) {
        var rng = CKSplitMix64(seed: 0x51)
        for n in Self.rowLengths(act) {
            var x = rng.floats(n)
            // A zero block and a block with exact ties (amax 127 gives d = 1, id = 1).
            for j in 0..<32 { x[j] = 0 }
            if n >= 64 {
                let ties: [Float] = [127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -126.5]
                for (j, v) in ties.enumerated() { x[32 + j] = v }
            }
            let fast = act.quantize(x, fast: true), ref = act.quantize(x, fast: false)
            for ib in 0..<(n / 32) {
                let o = ib * act.blockBytes
                let block = Array(x[(ib * 32)..<(ib * 32 + 32)])
                let amax = block.map { abs($0) }.max()!
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                #expect(u16(fast, o) == u16(ref, o), "d of block \(ib)")
                #expect(u16(ref, o) == Float16(d).bitPattern)
                var sumF = 0, sumR = 0
                for j in 0..<32 {
                    let qf = act.q(fast, block: ib, j), qr = act.q(ref, block: ib, j)
                    sumF += qf
                    sumR += qr
                    let v = block[j] * id
                    let isTie = v - v.rounded(.down) == 0.5
                    if isTie {
                        #expect(qr == Int(v.rounded(.toNearestOrAwayFromZero)))
                        #expect(qf == Int(v.rounded(.toNearestOrEven)))
                    } else {
                        #expect(qf == qr, "block \(ib) value \(j): fast \(qf) ref \(qr) v \(v)")
                    }
                }
                if act == .q8_1 {
                    #expect(u16(fast, o + 2) == Float16(d * Float(sumF)).bitPattern)
                    #expect(u16(ref, o + 2) == Float16(d * Float(sumR)).bitPattern)
                }
            }
            if n >= 64 {
                // The tie block really exercised both rounding rules.
                #expect(act.q(ref, block: 1, 1) == 1 && act.q(fast, block: 1, 1) == 0)
                #expect(act.q(ref, block: 1, 3) == 3 && act.q(fast, block: 1, 3) == 2)
                #expect(act.q(ref, block: 1, 6) == -3 && act.q(fast, block: 1, 6) == -2)
            }
            #expect(fast[0..<act.blockBytes].allSatisfy { $0 == 0 }, "zero block")
        }
    }

    /// Dequantizing reproduces x to within half a step. The step actually stored is fp16(d), so
    /// the bound is d/2 (plus float slack) plus 127 * |fp16(d) - d| for the scale's rounding.
    @Test(arguments: [CKAct.q8_0, CKAct.q8_1])
    func q8_0AndQ8_1RoundTrip(_ act: CKAct) {
        var rng = CKSplitMix64(seed: 0x52)
        for n in Self.rowLengths(act) {
            let x = rng.floats(n)
            for fast in [true, false] {
                let q = act.quantize(x, fast: fast)
                let y = act.dequant(q)
                for ib in 0..<(n / 32) {
                    let d = Double(x[(ib * 32)..<(ib * 32 + 32)].map { abs($0) }.max()! / 127)
                    let d16 = Double(act.scale(q, block: ib))
                    let bound = d * (0.5 + 1e-4) + 127 * abs(d16 - d)
                    for j in 0..<32 {
                        #expect(abs(y[ib * 32 + j] - Double(x[ib * 32 + j])) <= bound)
                    }
                }
            }
        }
    }

    /// Q8_K: both implementations round half to even (ggml's nearest_int), so bytes are identical.
    @Test func q8_KFastVsRefAndRoundTrip() {
        var rng = CKSplitMix64(seed: 0x53)
        for n in Self.rowLengths(.q8_K) {
            var x = rng.floats(n)
            for j in 0..<256 { x[j] = 0 }  // zero block
            if n >= 512 {
                // Ties: max = 127 gives iscale = -1 exactly; -0.5 -> 0, -1.5 -> -2, -2.5 -> -2.
                let ties: [Float] = [127, 0.5, 1.5, 2.5, -127]
                for (j, v) in ties.enumerated() { x[256 + j] = v }
            }
            if n >= 768 {
                // Largest magnitude negative, and +/- with equal magnitude: the first one wins.
                x[512 + 10] = -3
                x[512 + 20] = 3
            }
            let fast = CKAct.q8_K.quantize(x, fast: true), ref = CKAct.q8_K.quantize(x, fast: false)
            #expect(fast == ref, "n=\(n)")
            #expect(ref[0..<292].allSatisfy { $0 == 0 })
            if n >= 512 {
                #expect(CKAct.q8_K.scale(ref, block: 1) == -1)
                #expect((1...4).map { CKAct.q8_K.q(ref, block: 1, $0) } == [0, -2, -2, 127])
                #expect(CKAct.q8_K.q(ref, block: 1, 0) == -127)
            }
            if n >= 768 {
                #expect(CKAct.q8_K.q(ref, block: 2, 10) == -127)
                #expect(CKAct.q8_K.q(ref, block: 2, 20) == 127)
                #expect(CKAct.q8_K.scale(ref, block: 2) == 1 / (-127 / Float(-3)))
            }
            let y = CKAct.q8_K.dequant(ref)
            for ib in 0..<(n / 256) {
                let o = ib * 292
                let d = Double(CKAct.q8_K.scale(ref, block: ib))
                for g in 0..<16 {
                    let s = (0..<16).reduce(0) { $0 + CKAct.q8_K.q(ref, block: ib, 16 * g + $1) }
                    #expect(i16(ref, o + 260 + 2 * g) == s)
                }
                for j in 0..<256 {
                    #expect(abs(y[ib * 256 + j] - Double(x[ib * 256 + j])) <= abs(d) * (0.5 + 1e-4))
                }
            }
        }
    }
}

// MARK: - Float kernels

@Suite struct CKernelsFloatTests {
    static let lengths = [0, 1, 5, 8, 13, 31, 32, 33, 100, 576, 4867]

    static func exact(_ w: [Float], _ a: [Float]) -> (Double, Double) {
        var s = 0.0, m = 0.0
        for i in 0..<w.count {
            s += Double(w[i]) * Double(a[i])
            m += abs(Double(w[i]) * Double(a[i]))
        }
        return (s, m)
    }

    @Test func f32Dot() {
        var rng = CKSplitMix64(seed: 1)
        for n in Self.lengths {
            let w = rng.floats(n), a = rng.floats(n)
            let f = pg_vec_dot_f32_f32(Int64(n), w, a), r = pg_vec_dot_f32_f32_ref(Int64(n), w, a)
            let (e, m) = Self.exact(w, a)
            #expect(abs(Double(f) - Double(r)) <= 1e-5 * m + 1e-30, "n=\(n)")
            #expect(abs(Double(r) - e) <= 1e-5 * m + 1e-30, "n=\(n)")
        }
    }

    @Test func f16Dot() {
        var rng = CKSplitMix64(seed: 2)
        for n in Self.lengths {
            let wh = rng.floats(n).map { Float16($0).bitPattern }
            let a = rng.floats(n)
            let f = pg_vec_dot_f16_f32(Int64(n), wh, a), r = pg_vec_dot_f16_f32_ref(Int64(n), wh, a)
            let (e, m) = Self.exact(wh.map { Float(Float16(bitPattern: $0)) }, a)
            #expect(abs(Double(f) - Double(r)) <= 1e-5 * m + 1e-30, "n=\(n)")
            #expect(abs(Double(r) - e) <= 1e-5 * m + 1e-30, "n=\(n)")
        }
    }

    @Test func bf16Dot() {
        var rng = CKSplitMix64(seed: 3)
        for n in Self.lengths {
            let wb = rng.floats(n).map { UInt16($0.bitPattern >> 16) }
            let a = rng.floats(n)
            let f = pg_vec_dot_bf16_f32(Int64(n), wb, a), r = pg_vec_dot_bf16_f32_ref(Int64(n), wb, a)
            let (e, m) = Self.exact(wb.map { Float(bitPattern: UInt32($0) << 16) }, a)
            #expect(abs(Double(f) - Double(r)) <= 1e-5 * m + 1e-30, "n=\(n)")
            #expect(abs(Double(r) - e) <= 1e-5 * m + 1e-30, "n=\(n)")
        }
    }

    @Test func axpy() {
        var rng = CKSplitMix64(seed: 4)
        for n in Self.lengths {
            let x = rng.floats(n), y0 = rng.floats(n), alpha = rng.float(-3, 3)
            var yf = y0, yr = y0
            pg_axpy_f32(Int64(n), alpha, x, &yf)
            pg_axpy_f32_ref(Int64(n), alpha, x, &yr)
            let expected = (0..<n).map { y0[$0].addingProduct(alpha, x[$0]) }  // fused, like fmaf
            #expect(yf == yr, "n=\(n)")
            #expect(yr == expected, "n=\(n)")
        }
    }

    @Test func f16ToF32AllBitPatterns() {
        let all = (0...0xFFFF).map { UInt16($0) } + [0x0001, 0x8001, 0x7C00, 0x3C00, 0x03FF]  // + tail
        var yf = [Float](repeating: 0, count: all.count), yr = yf
        pg_f16_to_f32_row(all, &yf, Int64(all.count))
        pg_f16_to_f32_row_ref(all, &yr, Int64(all.count))
        var mismatches = 0
        for i in 0..<all.count {
            let expected = Float(Float16(bitPattern: all[i]))
            if expected.isNaN {
                if !(yf[i].isNaN && yr[i].isNaN) { mismatches += 1 }
            } else if yf[i].bitPattern != expected.bitPattern || yr[i].bitPattern != expected.bitPattern {
                mismatches += 1
            }
            if i < 65536, pg_fp16_to_fp32_ref(all[i]).bitPattern != yr[i].bitPattern, !expected.isNaN {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
        #expect(yr[1] == Float(sign: .plus, exponent: -24, significand: 1))  // smallest subnormal
        #expect(yr[0x7C00] == .infinity && yr[0xFC00] == -.infinity)
        #expect(yr[0x8000].sign == .minus && yr[0x8000] == 0)
    }

    @Test func f32ToF16Sweep() {
        var xs: [Float] = [0, -0, .infinity, -.infinity, .nan, -.nan, .signalingNaN,
                           .greatestFiniteMagnitude, .leastNonzeroMagnitude, .leastNormalMagnitude,
                           65504, 65519.99, 65520, 65536, 1e-8, 5.96e-8, 6.1e-5, -1e-30]
        // Every finite half, the midpoints between neighbours (exact ties), and one ulp either side.
        for h in UInt16(0)..<0x7C00 {
            let lo = Float(Float16(bitPattern: h)), hi = Float(Float16(bitPattern: h + 1))
            let mid = (lo + hi) / 2
            xs += [lo, -lo, mid, -mid, mid.nextUp, mid.nextDown, -mid.nextUp]
        }
        var rng = CKSplitMix64(seed: 5)
        for _ in 0..<100_000 { xs.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        xs += [1.5, -2.25, 3]  // odd tail length
        var yf = [UInt16](repeating: 0, count: xs.count), yr = yf
        pg_f32_to_f16_row(xs, &yf, Int64(xs.count))
        pg_f32_to_f16_row_ref(xs, &yr, Int64(xs.count))
        func isNaNHalf(_ h: UInt16) -> Bool { h & 0x7C00 == 0x7C00 && h & 0x3FF != 0 }
        var mismatches = 0
        for i in 0..<xs.count {
            if xs[i].isNaN {
                if !(isNaNHalf(yf[i]) && isNaNHalf(yr[i])) { mismatches += 1 }
                continue
            }
            let expected = Float16(xs[i]).bitPattern
            if yf[i] != expected || yr[i] != expected || pg_fp32_to_fp16_ref(xs[i]) != expected {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
        #expect(pg_fp32_to_fp16_ref(65520) == 0x7C00)  // tie above max finite rounds to even: inf
        let halfSmallest = Float(sign: .plus, exponent: -25, significand: 1)
        #expect(pg_fp32_to_fp16_ref(halfSmallest) == 0)  // exact tie with 0 and 2^-24: even = 0
        #expect(pg_fp32_to_fp16_ref(halfSmallest.nextUp) == 1)
        #expect(pg_fp32_to_fp16_ref(3 * halfSmallest) == 2)  // tie between 1 and 2 ulps: even = 2
    }
}
