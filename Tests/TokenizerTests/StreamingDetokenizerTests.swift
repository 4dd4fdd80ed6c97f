import Testing
import Tokenizer

struct StreamingDetokenizerTests {
    /// Byte-level vocabulary where id == byte, plus a token "x" + 0xC3 and a control token.
    func makeTokenizer() throws -> (Tokenizer, xHalf: Int32, control: Int32) {
        var tiny = TinyBPE(extra: [], special: [("<|im_end|>", 3)])
        tiny.tokens.append(byteLevel("x") + byteLevelByte(0xC3))
        tiny.types.append(1)
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: []))
        return (tok, Int32(tiny.tokens.count - 1), tiny.id("<|im_end|>"))
    }

    @Test func holdsBackSplitCharacters() throws {
        let (tok, _, _) = try makeTokenizer()
        var stream = StreamingDetokenizer(tokenizer: tok)
        #expect(stream.append(0x61) == "a")
        #expect(stream.append(0xC3) == "")
        #expect(stream.append(0xA9) == "é")
        for byte: Int32 in [0xF0, 0x9F, 0xA4] {
            #expect(stream.append(byte) == "")
        }
        #expect(stream.append(0x97) == "🤗")
        #expect(stream.finish() == "")
    }

    @Test func tokenEndingInsideACharacter() throws {
        let (tok, xHalf, _) = try makeTokenizer()
        var stream = StreamingDetokenizer(tokenizer: tok)
        #expect(stream.append(xHalf) == "x")
        #expect(stream.append(0xA9) == "é")
    }

    @Test func finishFlushesIncompleteBytes() throws {
        let (tok, _, _) = try makeTokenizer()
        var stream = StreamingDetokenizer(tokenizer: tok)
        #expect(stream.append(0xE6) == "")
        #expect(stream.append(0x97) == "")
        #expect(stream.finish() == "\u{FFFD}")
        #expect(stream.finish() == "")
        #expect(stream.append(0x62) == "b")
    }

    @Test func invalidBytesAreNotHeldBack() throws {
        let (tok, _, _) = try makeTokenizer()
        var stream = StreamingDetokenizer(tokenizer: tok)
        #expect(stream.append(0xFF) == "\u{FFFD}")
        #expect(stream.append(0xC3) == "")
        #expect(stream.append(0x61) == "\u{FFFD}a")
        // 0xE0 0x80 can never start a valid character.
        #expect(stream.append(0xE0) == "")
        #expect(stream.append(0x80) == "\u{FFFD}\u{FFFD}")
    }

    @Test func controlTokensRenderOnlyWhenAsked() throws {
        let (tok, _, control) = try makeTokenizer()
        var hidden = StreamingDetokenizer(tokenizer: tok)
        #expect(hidden.append(control) == "")
        var shown = StreamingDetokenizer(tokenizer: tok, renderSpecial: true)
        #expect(shown.append(control) == "<|im_end|>")
    }

    @Test func streamMatchesDecode() throws {
        let (tok, _, _) = try makeTokenizer()
        let text = "naïve café — 日本語 🤗👍🏽 done"
        let ids = tok.encode(text, addSpecial: false, parseSpecial: false)
        var stream = StreamingDetokenizer(tokenizer: tok)
        var out = ""
        for id in ids {
            let piece = stream.append(id)
            #expect(!piece.unicodeScalars.contains("\u{FFFD}"))
            out += piece
        }
        out += stream.finish()
        #expect(out == text)
        #expect(out == tok.decode(ids, renderSpecial: false))
    }
}
