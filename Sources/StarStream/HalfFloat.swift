// IEEE 754 binary16 <-> binary32, done on bit patterns so that the result is the same on every
// platform (Swift's Float16 is missing on macOS x86_64). Rounding is to nearest, ties to even;
// values beyond the half range become infinity, NaN stays NaN (quiet), subnormals are kept.

func halfBits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF)
    let mantissa = bits & 0x7F_FFFF
    if exponent == 0xFF {
        // Infinity, or NaN with its top mantissa bits kept and the quiet bit set.
        if mantissa == 0 { return sign | 0x7C00 }
        return sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)
    }
    let halfExponent = exponent - 127 + 15
    if halfExponent >= 0x1F {
        return sign | 0x7C00
    }
    if halfExponent <= 0 {
        // Subnormal half (or zero): m = (1.mantissa) * 2^(exponent - 126), as a multiple of 2^-24.
        let shift = 14 - halfExponent
        if shift > 24 { return sign }
        let full = mantissa | 0x80_0000
        var half = full >> UInt32(shift)
        let remainder = full & ((1 << UInt32(shift)) - 1)
        let halfway: UInt32 = 1 << UInt32(shift - 1)
        if remainder > halfway || (remainder == halfway && (half & 1) == 1) {
            half += 1
        }
        return sign | UInt16(truncatingIfNeeded: half)
    }
    var half = (UInt32(halfExponent) << 10) | (mantissa >> 13)
    let remainder = mantissa & 0x1FFF
    if remainder > 0x1000 || (remainder == 0x1000 && (half & 1) == 1) {
        half += 1  // may carry into the exponent, up to infinity: that is the right answer
    }
    return sign | UInt16(truncatingIfNeeded: half)
}

func floatFromHalfBits(_ half: UInt16) -> Float {
    let sign = UInt32(half & 0x8000) << 16
    let exponent = UInt32((half >> 10) & 0x1F)
    let mantissa = UInt32(half & 0x3FF)
    if exponent == 0 {
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    }
    if exponent == 0x1F {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
}

/// Public helpers, so that tests and nodes can reason about F16 rounding.
public enum HalfFloat {
    public static func bits(from value: Float) -> UInt16 { halfBits(from: value) }
    public static func float(fromBits bits: UInt16) -> Float { floatFromHalfBits(bits) }
    /// `value` rounded to the nearest binary16 and back.
    public static func round(_ value: Float) -> Float { floatFromHalfBits(halfBits(from: value)) }
}
