/// Character classes used by the pre-tokenizer scanners, matching llama.cpp's unicode flags:
/// letters are general category L*, numbers N*, punctuation P*, and whitespace is the Unicode
/// White_Space property (the 25 code points llama.cpp lists; U+001C...U+001F are not in it).
/// Categories come from the toolchain's Unicode tables, limited to the characters assigned
/// by llama.cpp's Unicode version.
struct CharClass: OptionSet, Sendable {
    let rawValue: UInt8
    static let letter = CharClass(rawValue: 1)
    static let number = CharClass(rawValue: 2)
    static let whitespace = CharClass(rawValue: 4)
    static let punctuation = CharClass(rawValue: 8)

    /// Neither letter, number nor whitespace: what `[^\s\p{L}\p{N}]` matches.
    var isOther: Bool { rawValue & 7 == 0 }

    private static let ascii: [UInt8] = (0..<128).map { cp -> UInt8 in
        // Unicode.Scalar(UInt8) is total, so no optional to unwrap for ASCII.
        CharClass.computed(Unicode.Scalar(UInt8(cp))).rawValue
    }

    @inline(__always)
    static func of(_ cp: UInt32) -> CharClass {
        if cp < 128 { return CharClass(rawValue: ascii[Int(cp)]) }
        guard let scalar = Unicode.Scalar(cp) else { return [] }
        return computed(scalar)
    }

    static func isWhitespace(_ cp: UInt32) -> Bool {
        switch cp {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F,
             0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// The Unicode version of llama.cpp's character table (unicode-data.cpp): characters
    /// assigned later count as unassigned there, whatever this toolchain's tables say.
    static let unicodeVersion = (major: 15, minor: 1)

    private static func computed(_ scalar: Unicode.Scalar) -> CharClass {
        if isWhitespace(scalar.value) { return .whitespace }
        let properties = scalar.properties
        guard let age = properties.age,
              age.major < unicodeVersion.major
                || (age.major == unicodeVersion.major && age.minor <= unicodeVersion.minor)
        else { return [] }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return .punctuation
        default:
            return []
        }
    }
}

enum UTF8Support {
    /// Decodes UTF-8 into code points, with the byte offset where each starts (plus a final
    /// entry at the end). Invalid bytes become U+FFFD one byte at a time, as in llama.cpp.
    static func decode(
        _ bytes: UnsafeBufferPointer<UInt8>,
        codePoints: inout [UInt32],
        offsets: inout [Int32]
    ) {
        codePoints.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        codePoints.reserveCapacity(bytes.count)
        offsets.reserveCapacity(bytes.count + 1)
        let n = bytes.count
        var i = 0
        while i < n {
            offsets.append(Int32(truncatingIfNeeded: i))
            let b0 = bytes[i]
            if b0 < 0x80 {
                codePoints.append(UInt32(b0))
                i += 1
                continue
            }
            var length = 0
            var cp: UInt32 = 0
            if b0 & 0xE0 == 0xC0 {
                length = 2; cp = UInt32(b0 & 0x1F)
            } else if b0 & 0xF0 == 0xE0 {
                length = 3; cp = UInt32(b0 & 0x0F)
            } else if b0 & 0xF8 == 0xF0 {
                length = 4; cp = UInt32(b0 & 0x07)
            }
            var valid = length > 0 && i + length <= n
            if valid {
                for k in 1..<length {
                    let b = bytes[i + k]
                    if b & 0xC0 != 0x80 { valid = false; break }
                    cp = cp << 6 | UInt32(b & 0x3F)
                }
            }
            if valid {
                codePoints.append(cp)
                i += length
            } else {
                codePoints.append(0xFFFD)
                i += 1
            }
        }
        offsets.append(Int32(truncatingIfNeeded: n))
    }

    /// Appends the UTF-8 encoding of `cp` to `out`.
    @inline(__always)
    static func encode(_ cp: UInt32, into out: inout [UInt8]) {
        if cp < 0x80 {
            out.append(UInt8(cp))
        } else if cp < 0x800 {
            out.append(UInt8(0xC0 | (cp >> 6)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        } else if cp < 0x10000 {
            out.append(UInt8(0xE0 | (cp >> 12)))
            out.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        } else {
            out.append(UInt8(0xF0 | (cp >> 18)))
            out.append(UInt8(0x80 | ((cp >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        }
    }

    /// The number of bytes of the UTF-8 sequence a lead byte starts, by its high nibble, as
    /// llama.cpp's `unicode_len_utf8` computes it (continuation bytes count as 1).
    @inline(__always)
    static func sequenceLength(lead: UInt8) -> Int {
        switch lead >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }
}

/// GPT-2's reversible mapping of bytes to printable code points.
enum ByteLevel {
    /// The code point each byte maps to.
    static let byteToCodePoint: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte)
                || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// The UTF-8 bytes of each byte's code point.
    static let byteToUTF8: [[UInt8]] = byteToCodePoint.map { cp in
        var out: [UInt8] = []
        UTF8Support.encode(cp, into: &out)
        return out
    }

    /// The byte a code point stands for, if any.
    @inline(__always)
    static func byteFor(codePoint: UInt32) -> UInt8? {
        guard codePoint < UInt32(codePointToByte.count) else { return nil }
        let byte = codePointToByte[Int(codePoint)]
        return byte >= 0 ? UInt8(byte) : nil
    }

    /// The byte a code point stands for, or -1 (code points 0..<0x144 cover the mapping).
    static let codePointToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for byte in 0..<256 {
            table[Int(byteToCodePoint[byte])] = Int16(byte)
        }
        return table
    }()
}
