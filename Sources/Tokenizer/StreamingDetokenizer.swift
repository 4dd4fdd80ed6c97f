/// Turns a stream of token ids into text without ever emitting half a UTF-8 character: bytes
/// of an unfinished character wait in a small buffer until the tokens that complete it arrive.
///
/// Pieces are rendered as llama.cpp's `llama_token_to_piece` renders them during generation
/// (no leading-space removal, no clean-up of spaces).
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: Tokenizer
    private let renderSpecial: Bool
    /// Bytes of a character still incomplete (at most 3 in valid text, more only when a
    /// stream of invalid bytes keeps growing).
    private var pending: [UInt8]

    public init(tokenizer: Tokenizer, renderSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.renderSpecial = renderSpecial
        pending = []
        pending.reserveCapacity(64)
    }

    /// Adds a token and returns the text it completes (possibly "").
    public mutating func append(_ id: Int32) -> String {
        if pending.isEmpty {
            // Decode straight from the tokenizer's piece storage; keep only an unfinished tail.
            return tokenizer.withTokenBytes(id, renderSpecial: renderSpecial) { piece -> String in
                let complete = Self.completePrefixLength(piece)
                if complete < piece.count {
                    pending.append(contentsOf: piece[complete...])
                }
                return complete == 0
                    ? "" : String(decoding: UnsafeBufferPointer(rebasing: piece[..<complete]), as: UTF8.self)
            }
        }
        tokenizer.withTokenBytes(id, renderSpecial: renderSpecial) { piece in
            pending.append(contentsOf: piece)
        }
        let complete = pending.withUnsafeBufferPointer { Self.completePrefixLength($0) }
        guard complete > 0 else { return "" }
        let text = pending.withUnsafeBufferPointer {
            String(decoding: UnsafeBufferPointer(rebasing: $0[..<complete]), as: UTF8.self)
        }
        pending.removeFirst(complete)
        return text
    }

    /// Returns what is left, with incomplete characters as U+FFFD, and empties the buffer.
    public mutating func finish() -> String {
        guard !pending.isEmpty else { return "" }
        let text = String(decoding: pending, as: UTF8.self)
        pending.removeAll(keepingCapacity: true)
        return text
    }

    /// The length of the longest prefix that does not end inside a UTF-8 character that later
    /// bytes could still complete. Bytes that can never become valid are left in the prefix
    /// (they decode to U+FFFD).
    static func completePrefixLength(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        let count = bytes.count
        // Look back at most 3 bytes for the lead byte of the last character.
        var i = count - 1
        let stop = max(0, count - 4)
        while i >= stop {
            let byte = bytes[i]
            if byte & 0xC0 == 0x80 {
                i -= 1
                continue
            }
            let needed: Int
            switch byte {
            case 0xC2...0xDF: needed = 2
            case 0xE0...0xEF: needed = 3
            case 0xF0...0xF4: needed = 4
            default: return count  // ASCII or a byte that can never start a character
            }
            let have = count - i
            if have >= needed { return count }
            // Hold back only if what follows the lead byte can still form a valid character.
            if have >= 2 {
                let second = bytes[i + 1]
                let lowest: UInt8 = byte == 0xE0 ? 0xA0 : (byte == 0xF0 ? 0x90 : 0x80)
                let highest: UInt8 = byte == 0xED ? 0x9F : (byte == 0xF4 ? 0x8F : 0xBF)
                if second < lowest || second > highest { return count }
            }
            return i
        }
        return count
    }
}
