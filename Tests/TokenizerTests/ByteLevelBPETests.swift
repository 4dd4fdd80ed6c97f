import Testing
import Tokenizer

struct ByteLevelBPETests {
    @Test func mergesApplyByRank() throws {
        let tiny = TinyBPE(extra: ["ab", "bc", "abc"])
        let viaAB = try Tokenizer(vocabulary: tiny.vocabulary(merges: [("a", "b"), ("b", "c"), ("ab", "c")]))
        #expect(viaAB.encode("abc", addSpecial: false, parseSpecial: false) == [tiny.id("abc")])
        #expect(viaAB.encode("bc", addSpecial: false, parseSpecial: false) == [tiny.id("bc")])

        // "b c" ranks first, and nothing merges "a" with "bc".
        let viaBC = try Tokenizer(vocabulary: tiny.vocabulary(merges: [("b", "c"), ("a", "b"), ("ab", "c")]))
        #expect(viaBC.encode("abc", addSpecial: false, parseSpecial: false) == [tiny.id("a"), tiny.id("bc")])
    }

    @Test func equalRanksMergeLeftmostFirst() throws {
        let tiny = TinyBPE(extra: ["aa"])
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: [("a", "a")]))
        #expect(tok.encode("aaa", addSpecial: false, parseSpecial: false) == [tiny.id("aa"), tiny.id("a")])
        #expect(tok.encode("aaaa", addSpecial: false, parseSpecial: false) == [tiny.id("aa"), tiny.id("aa")])
    }

    @Test func wordsAreMergedSeparately() throws {
        let tiny = TinyBPE(extra: [" a", "ab", " ab"])
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: [(" ", "a"), ("a", "b"), (" a", "b")]))
        #expect(tok.encode(" ab ab", addSpecial: false, parseSpecial: false) == [tiny.id(" ab"), tiny.id(" ab")])
        #expect(tok.encode("ab a", addSpecial: false, parseSpecial: false) == [tiny.id("ab"), tiny.id(" a")])
    }

    @Test func mergedSymbolsThatAreNotTokensFallBackToSingleBytes() throws {
        // "x y" merges into "xy", which is no token: llama.cpp emits the single-byte tokens.
        let tiny = TinyBPE(extra: [])
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: [("x", "y")]))
        #expect(tok.encode("xy", addSpecial: false, parseSpecial: false) == [tiny.id("x"), tiny.id("y")])
    }

    @Test func everyByteRoundTrips() throws {
        let tiny = TinyBPE(extra: [])
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: []))
        let text = "naïve 日本 🤗\t\r\n\u{0}\u{7F}"
        let ids = tok.encode(text, addSpecial: false, parseSpecial: false)
        #expect(ids == Array(text.utf8).map { Int32($0) })
        #expect(tok.decode(ids, renderSpecial: false) == text)
        #expect(tok.tokenBytes(Int32(0xC3), renderSpecial: false) == [0xC3])
    }

    @Test func ignoreMergesForLlama3() throws {
        let tiny = TinyBPE(extra: ["abc"])
        let llama3 = try Tokenizer(vocabulary: tiny.vocabulary(merges: [], pre: "llama-bpe"))
        #expect(llama3.encode("abc", addSpecial: false, parseSpecial: false) == [tiny.id("abc")])
        let gpt2 = try Tokenizer(vocabulary: tiny.vocabulary(merges: [], pre: "gpt-2"))
        #expect(gpt2.encode("abc", addSpecial: false, parseSpecial: false) == [tiny.id("a"), tiny.id("b"), tiny.id("c")])
    }

    @Test func specialTokensArePartitionedLongestFirst() throws {
        let tiny = TinyBPE(extra: [], special: [
            ("<|im_start|>", 3), ("<|im_end|>", 3), ("<|a|>", 3), ("<|a|><|b|>", 3), ("<tool>", 4),
        ])
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: []))
        let start = tiny.id("<|im_start|>"), end = tiny.id("<|im_end|>")
        let plain = { (s: String) in s.utf8.map { Int32($0) } }

        #expect(tok.encode("<|im_start|>hi<|im_end|>", addSpecial: false, parseSpecial: true)
            == [start] + plain("hi") + [end])
        #expect(tok.encode("<|im_start|>hi<|im_end|>", addSpecial: false, parseSpecial: false)
            == plain("<|im_start|>hi<|im_end|>"))
        #expect(tok.encode("x<|a|><|b|><|a|>", addSpecial: false, parseSpecial: true)
            == plain("x") + [tiny.id("<|a|><|b|>"), tiny.id("<|a|>")])
        // User-defined tokens are matched even without parseSpecial, as in llama.cpp.
        #expect(tok.encode("a<tool>b", addSpecial: false, parseSpecial: false)
            == plain("a") + [tiny.id("<tool>")] + plain("b"))
        #expect(tok.encode("<|im_end|><|im_end|>", addSpecial: false, parseSpecial: true) == [end, end])
    }

    @Test func specialTokensSplitTheTextBeforePreTokenizing() throws {
        let tiny = TinyBPE(extra: [" a"], special: [("<s>", 3)])
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: [(" ", "a")]))
        // " a" after the special token is a word of its own; the space before it is not lost.
        #expect(tok.encode("<s> a", addSpecial: false, parseSpecial: true) == [tiny.id("<s>"), tiny.id(" a")])
    }

    @Test func endOfGenerationByIDAndText() throws {
        let tiny = TinyBPE(extra: [], special: [
            ("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3), ("<|eot_id|>", 3),
            ("<|fim_pad|>", 3), ("<|fim_prefix|>", 3),
        ])
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: [], eos: tiny.id("<|endoftext|>")))
        #expect(tok.isEndOfGeneration(tiny.id("<|endoftext|>")))
        #expect(tok.isEndOfGeneration(tiny.id("<|im_end|>")))
        #expect(tok.isEndOfGeneration(tiny.id("<|eot_id|>")))
        #expect(tok.isEndOfGeneration(tiny.id("<|fim_pad|>")))
        #expect(!tok.isEndOfGeneration(tiny.id("<|im_start|>")))
        #expect(!tok.isEndOfGeneration(tiny.id("<|fim_prefix|>")))
        #expect(!tok.isEndOfGeneration(tiny.id("a")))
        #expect(tok.eotID == tiny.id("<|eot_id|>"))
        #expect(tok.eosID == tiny.id("<|endoftext|>"))
    }

    @Test func addSpecialAddsBOSAndEOSOnlyWhenAsked() throws {
        let tiny = TinyBPE(extra: [], special: [("<bos>", 3), ("<eos>", 3)])
        var v = tiny.vocabulary(merges: [])
        v.bosID = tiny.id("<bos>")
        v.eosID = tiny.id("<eos>")
        v.addBOS = true
        v.addEOS = true
        let tok = try Tokenizer(vocabulary: v)
        #expect(tok.encode("a", addSpecial: true, parseSpecial: false) == [v.bosID, 97, v.eosID].compactMap { $0 })
        #expect(tok.encode("a", addSpecial: false, parseSpecial: false) == [97])
        #expect(tok.encode("", addSpecial: true, parseSpecial: false) == [v.bosID, v.eosID].compactMap { $0 })
    }

    @Test func decodeRendersControlTokensOnlyWhenAsked() throws {
        let tiny = TinyBPE(extra: [" world"], special: [("<|im_end|>", 3), ("<tool>", 4), ("[PAD1]", 5)])
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: []))
        let ids = [Int32(104), Int32(105), tiny.id(" world"), tiny.id("<tool>"), tiny.id("<|im_end|>"), tiny.id("[PAD1]")]
        #expect(tok.decode(ids, renderSpecial: false) == "hi world<tool>")
        #expect(tok.decode(ids, renderSpecial: true) == "hi world<tool><|im_end|>")
        #expect(tok.tokenBytes(tiny.id("<|im_end|>"), renderSpecial: false) == [])
        #expect(tok.tokenBytes(tiny.id("<|im_end|>"), renderSpecial: true) == Array("<|im_end|>".utf8))
        #expect(tok.tokenBytes(-1, renderSpecial: true) == [])
        #expect(tok.tokenBytes(Int32(tok.vocabularySize), renderSpecial: true) == [])
        // Half a character decodes lossily.
        #expect(tok.decode([0xC3], renderSpecial: false) == "\u{FFFD}")
    }

    @Test func charactersOutsideTheByteMappingRenderAsLlamaCppMarkers() throws {
        // A normal gpt2 token holding a character that is no byte-level character.
        var tiny = TinyBPE(extra: [])
        tiny.tokens.append("a中")
        tiny.types.append(1)
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(merges: []))
        let id = Int32(tiny.tokens.count - 1)
        #expect(tok.tokenBytes(id, renderSpecial: false) == Array("a[UNK_BYTE_0xe4b8ada中]".utf8))
    }

    @Test func decodeCleansSpacesLikeLlamaCppForGPT2() throws {
        let tiny = TinyBPE(extra: [])
        let ids = " Hi , it 's me ' ok ' !".utf8.map { Int32($0) }
        let gpt2 = try Tokenizer(vocabulary: tiny.vocabulary(merges: [], pre: "gpt-2"))
        #expect(gpt2.decode(ids, renderSpecial: false) == " Hi, it's me'ok '!")
        let qwen = try Tokenizer(vocabulary: tiny.vocabulary(merges: [], pre: "qwen2"))
        #expect(qwen.decode(ids, renderSpecial: false) == " Hi , it 's me ' ok ' !")
    }
}
