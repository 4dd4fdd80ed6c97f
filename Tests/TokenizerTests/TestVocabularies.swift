import Tokenizer

/// GPT-2's byte-to-unicode mapping, written independently of the module's copy.
func byteLevel(_ text: String) -> String {
    var printable = Set<UInt8>()
    for b in 0x21...0x7E { printable.insert(UInt8(b)) }
    for b in 0xA1...0xAC { printable.insert(UInt8(b)) }
    for b in 0xAE...0xFF { printable.insert(UInt8(b)) }
    var map = [UInt8: Unicode.Scalar]()
    var next: UInt32 = 256
    for b in 0...255 {
        let byte = UInt8(b)
        if printable.contains(byte) {
            map[byte] = Unicode.Scalar(byte)
        } else {
            map[byte] = Unicode.Scalar(next) ?? "?"
            next += 1
        }
    }
    var out = ""
    for byte in text.utf8 { out.unicodeScalars.append(map[byte] ?? "?") }
    return out
}

/// A byte-level BPE vocabulary: ids 0...255 are the single bytes (id == byte value), then
/// `extra` tokens (given in plain text, stored byte-level encoded) and special tokens.
struct TinyBPE {
    var tokens: [String]
    var types: [Int32]

    init(extra: [String], special: [(String, Int32)] = []) {
        tokens = (0...255).map { byteLevel(String(decoding: [UInt8($0)], as: UTF8.self)) }
        // Bytes >= 0x80 are not valid UTF-8 alone; build their byte-level character directly.
        for b in 0x80...0xFF {
            tokens[b] = byteLevelByte(UInt8(b))
        }
        types = [Int32](repeating: 1, count: 256)
        for text in extra {
            tokens.append(byteLevel(text))
            types.append(1)
        }
        for (text, type) in special {
            tokens.append(text)
            types.append(type)
        }
    }

    func id(_ text: String) -> Int32 {
        if let i = tokens.firstIndex(of: byteLevel(text)), i >= 256 || types[i] == 1 { return Int32(i) }
        return Int32(tokens.firstIndex(of: text) ?? -1)
    }

    /// Merges are given as plain-text pairs and stored byte-level encoded as "left right".
    func vocabulary(merges: [(String, String)], pre: String = "gpt-2", eos: Int32? = nil) -> Vocabulary {
        Vocabulary(
            model: .gpt2, preTokenizer: pre, tokens: tokens, tokenTypes: types,
            merges: merges.map { byteLevel($0.0) + " " + byteLevel($0.1) },
            eosID: eos)
    }
}

func byteLevelByte(_ byte: UInt8) -> String {
    var printable = [Bool](repeating: false, count: 256)
    for b in 0x21...0x7E { printable[b] = true }
    for b in 0xA1...0xAC { printable[b] = true }
    for b in 0xAE...0xFF { printable[b] = true }
    var next: UInt32 = 256
    for b in 0...255 {
        if printable[b] {
            if b == Int(byte) { return String(Unicode.Scalar(UInt8(b))) }
        } else {
            if b == Int(byte) { return String(Unicode.Scalar(next).map(Character.init) ?? "?") }
            next += 1
        }
    }
    return "?"
}
