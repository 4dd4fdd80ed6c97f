/// exp(x) for x <= 0 (including -inf), in plain Float arithmetic the optimizer can vectorize:
/// Cody–Waite reduction x = n·ln2 + r with |r| <= ln2/2, a degree-6 Taylor polynomial for
/// exp(r) (truncation error < 1.3e-7 relative), and 2^n built from the exponent bits.
/// Returns 0 below -87 (where the true value is under 1.7e-38). No libm call and no fused
/// operations, so the result is bit-identical on every platform.
@inline(__always)
func expNonPositive(_ x: Float) -> Float {
    let xc = max(x, -87)
    // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick (exact for |t| < 2^22).
    let shifter: Float = 12_582_912
    let shifted = xc * 1.442_695_04 + shifter
    let nf = shifted - shifter
    // ln 2 split into a part with few significant bits (so nf·ln2Hi is exact) and the rest.
    let r = (xc - nf * 0.693_359_375) - nf * -2.121_944_4e-4
    var p: Float = 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    // The low mantissa bits of `shifted` hold n + 2^22; move n + 127 into the exponent field
    // (the shifter's own exponent bits are shifted out).
    let scale = Float(bitPattern: (shifted.bitPattern &- 0x40_0000 &+ 127) << 23)
    return x < -87 ? 0 : p * scale
}
