/// Token ids back to bytes and text, as llama.cpp renders them.
extension Tokenizer {
    /// Calls `body` with the bytes the token renders to (no allocation).
    @inline(__always)
    func withTokenBytes<R>(
        _ id: Int32, renderSpecial: Bool, _ body: (UnsafeBufferPointer<UInt8>) -> R
    ) -> R {
        guard id >= 0 && Int(id) < tokenCount,
              renderSpecial || attributes[Int(id)].intersection([.control, .unknown]).isEmpty
        else {
            return body(UnsafeBufferPointer(start: nil, count: 0))
        }
        let start = Int(pieceStarts[Int(id)]), end = Int(pieceStarts[Int(id) + 1])
        return pieceBytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<end])) }
    }

    /// The raw bytes the token renders to, as llama.cpp's `llama_token_to_piece`: byte-level
    /// decoding for gpt2, ▁ as space and `<0xXX>` as its byte for SPM; control and unknown
    /// tokens render to their text only with `renderSpecial`, unused tokens to nothing.
    public func tokenBytes(_ id: Int32, renderSpecial: Bool) -> [UInt8] {
        withTokenBytes(id, renderSpecial: renderSpecial) { Array($0) }
    }

    /// Detokenizes like llama.cpp's `llama_detokenize` (special tokens not removed): the
    /// first token loses one leading space when the vocabulary adds a space prefix, and
    /// byte-level BPE vocabularies whose pre-tokenizer asks for it get llama.cpp's
    /// clean-up of spaces before punctuation. Invalid UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int32], renderSpecial: Bool) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        var removeSpace = addSpacePrefix
        for id in ids {
            withTokenBytes(id, renderSpecial: renderSpecial) { piece in
                var slice = piece[...]
                if removeSpace, slice.first == 0x20 { slice = slice.dropFirst() }
                bytes.append(contentsOf: slice)
            }
            removeSpace = false
        }
        if cleanSpaces { Self.cleanUpSpaces(&bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// llama.cpp's `clean_spaces` passes: drop a space before `?!.,`, around a lone
    /// apostrophe, and before the contractions 's 'm 're 've.
    static func cleanUpSpaces(_ text: inout [UInt8]) {
        let space = UInt8(ascii: " "), quote = UInt8(ascii: "'")
        // Pass 1: " ?", " !", " .", " ,"
        var total = text.isEmpty ? 0 : 1
        var count = text.count
        if count > 1 {
            for i in 1..<count {
                let x = text[i]
                if text[i - 1] == space && (x == 0x3F || x == 0x21 || x == 0x2E || x == 0x2C) { total -= 1 }
                text[total] = x
                total += 1
            }
        }
        // Pass 2: " ' " becomes "'"
        count = total
        total = count == 0 ? 0 : 1
        var i = 1
        while i < count {
            let x = text[i]
            if x == quote && i + 1 < count && text[i - 1] == space && text[i + 1] == space {
                total -= 1
                i += 1
                text[i] = 0
            }
            text[total] = x
            total += 1
            i += 1
        }
        // Pass 3: " 's", " 'm", " 're", " 've"
        count = total
        total = count == 0 ? 0 : 1
        if count > 1 {
            for i in 1..<count {
                let x = text[i]
                if text[i - 1] == space && x == quote && i + 1 < count {
                    let x1 = text[i + 1]
                    if x1 == UInt8(ascii: "s") || x1 == UInt8(ascii: "m") {
                        total -= 1
                    } else if x1 != UInt8(ascii: "t") && x1 != UInt8(ascii: "d") && i + 2 < count {
                        let x2 = text[i + 2]
                        if (x1 == UInt8(ascii: "r") || x1 == UInt8(ascii: "v")) && x2 == UInt8(ascii: "e") {
                            total -= 1
                        }
                    }
                }
                text[total] = x
                total += 1
            }
        }
        text.removeSubrange(total...)
    }

    /// Appends what a token renders to with special tokens shown (llama.cpp's token_to_piece
    /// with special = true).
    static func appendPiece(
        text: ArraySlice<UInt8>, attributes: TokenAttributes, model: Vocabulary.Model, to out: inout [UInt8]
    ) {
        if !attributes.intersection([.unknown, .control, .userDefined]).isEmpty {
            out.append(contentsOf: text)
        } else if attributes.contains(.normal) {
            switch model {
            case .llama:
                var i = text.startIndex
                while i < text.endIndex {
                    if i + 2 < text.endIndex && text[i] == 0xE2 && text[i + 1] == 0x96 && text[i + 2] == 0x81 {
                        out.append(0x20)
                        i += 3
                    } else {
                        out.append(text[i])
                        i += 1
                    }
                }
            case .gpt2:
                appendByteLevelDecoded(text, to: &out)
            }
        } else if attributes.contains(.byte) {
            out.append(byteTokenValue(text))
        }
    }

    /// Maps each byte-level character back to its byte; a character outside the mapping
    /// becomes llama.cpp's "[UNK_BYTE_0x..]" marker.
    static func appendByteLevelDecoded(_ text: ArraySlice<UInt8>, to out: inout [UInt8]) {
        // Byte-level tokens are short runs of 1- and 2-byte characters: decode them inline.
        var i = text.startIndex
        while i < text.endIndex {
            let lead = text[i]
            if lead < 0x80 {
                if let byte = ByteLevel.byteFor(codePoint: UInt32(lead)) {
                    out.append(byte)
                    i += 1
                    continue
                }
            } else if lead & 0xE0 == 0xC0, i + 1 < text.endIndex, text[i + 1] & 0xC0 == 0x80 {
                let cp = UInt32(lead & 0x1F) << 6 | UInt32(text[i + 1] & 0x3F)
                if let byte = ByteLevel.byteFor(codePoint: cp) {
                    out.append(byte)
                    i += 2
                    continue
                }
            }
            break
        }
        if i == text.endIndex { return }
        // Rare: a character outside the mapping. Decode the rest the slow way.
        var codePoints: [UInt32] = []
        var offsets: [Int32] = []
        Array(text[i...]).withUnsafeBufferPointer {
            UTF8Support.decode($0, codePoints: &codePoints, offsets: &offsets)
        }
        for cp in codePoints {
            if let byte = ByteLevel.byteFor(codePoint: cp) {
                out.append(byte)
            } else {
                out.append(contentsOf: Array("[UNK_BYTE_0x".utf8))
                var encoded: [UInt8] = []
                UTF8Support.encode(cp, into: &encoded)
                let hex = Array("0123456789abcdef".utf8)
                for byte in encoded {
                    out.append(hex[Int(byte >> 4)])
                    out.append(hex[Int(byte & 15)])
                }
                out.append(contentsOf: text)
                out.append(UInt8(ascii: "]"))
            }
        }
    }

    /// The byte of a "<0xXX>" token, read like strtol(text[3..<5], 16) (0 when unreadable).
    static func byteTokenValue(_ text: ArraySlice<UInt8>) -> UInt8 {
        var value: UInt8 = 0
        var i = text.startIndex + 3
        while i < min(text.startIndex + 5, text.endIndex) {
            let c = text[i]
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x41...0x46: digit = c - 0x41 + 10
            case 0x61...0x66: digit = c - 0x61 + 10
            default: return value
            }
            value = value << 4 | digit
            i += 1
        }
        return value
    }
}
