import Testing
import Tokenizer

/// A SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then scored pieces.
struct TinySPM {
    var tokens = ["<unk>", "<s>", "</s>"]
    var types: [Int32] = [2, 3, 3]
    var scores: [Float] = [0, 0, 0]

    init(pieces: [(String, Float)]) {
        let hex = Array("0123456789ABCDEF")
        for b in 0..<256 {
            tokens.append("<0x\(hex[b >> 4])\(hex[b & 15])>")
            types.append(6)
            scores.append(0)
        }
        for (piece, score) in pieces {
            tokens.append(piece)
            types.append(1)
            scores.append(score)
        }
    }

    func id(_ piece: String) -> Int32 { Int32(tokens.firstIndex(of: piece) ?? -1) }
    func byte(_ b: UInt8) -> Int32 { 3 + Int32(b) }

    func vocabulary(addBOS: Bool = false, addSpacePrefix: Bool = true) -> Vocabulary {
        Vocabulary(
            model: .llama, tokens: tokens, tokenTypes: types, scores: scores,
            bosID: 1, eosID: 2, unknownID: 0, addBOS: addBOS, addSpacePrefix: addSpacePrefix)
    }
}

struct SentencePieceTests {
    let tiny = TinySPM(pieces: [
        ("▁", -3), ("h", -4), ("e", -4), ("l", -4), ("o", -4), ("i", -4), ("w", -4), ("r", -4),
        ("d", -4), ("▁h", -1), ("he", -2), ("ll", -1.5), ("▁he", -1), ("llo", -1), ("▁hello", -0.5),
        ("▁hi", -1), ("▁w", -1), ("or", -1), ("▁wor", -1), ("ld", -1), ("▁world", -0.5),
    ])

    @Test func mergesByScoreWithSpacePrefix() throws {
        let tok = try Tokenizer(vocabulary: tiny.vocabulary())
        #expect(tok.encode("hello", addSpecial: false, parseSpecial: false) == [tiny.id("▁hello")])
        #expect(tok.encode("hello world", addSpecial: false, parseSpecial: false)
            == [tiny.id("▁hello"), tiny.id("▁world")])
        #expect(tok.encode("", addSpecial: false, parseSpecial: false) == [])
    }

    @Test func withoutSpacePrefix() throws {
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(addSpacePrefix: false))
        // "ll" (-1.5) and "llo" (-1) win; "hello" is no token, so "he" + "llo" remain.
        #expect(tok.encode("hello", addSpecial: false, parseSpecial: false) == [tiny.id("he"), tiny.id("llo")])
    }

    @Test func higherScoreFirstThenLeftmost() throws {
        let leftWins = TinySPM(pieces: [("a", -5), ("b", -5), ("c", -5), ("ab", -1), ("bc", -1)])
        let tok1 = try Tokenizer(vocabulary: leftWins.vocabulary(addSpacePrefix: false))
        #expect(tok1.encode("abc", addSpecial: false, parseSpecial: false) == [leftWins.id("ab"), leftWins.id("c")])

        let rightWins = TinySPM(pieces: [("a", -5), ("b", -5), ("c", -5), ("ab", -1), ("bc", -0.5)])
        let tok2 = try Tokenizer(vocabulary: rightWins.vocabulary(addSpacePrefix: false))
        #expect(tok2.encode("abc", addSpecial: false, parseSpecial: false) == [rightWins.id("a"), rightWins.id("bc")])
    }

    @Test func unknownCharactersFallBackToByteTokens() throws {
        let tok = try Tokenizer(vocabulary: tiny.vocabulary())
        #expect(tok.encode("€", addSpecial: false, parseSpecial: false)
            == [tiny.id("▁"), tiny.byte(0xE2), tiny.byte(0x82), tiny.byte(0xAC)])
        #expect(tok.decode([tiny.byte(0xE2), tiny.byte(0x82), tiny.byte(0xAC)], renderSpecial: false) == "€")
    }

    @Test func bosAndSpacePrefixAfterSpecialTokens() throws {
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(addBOS: true))
        #expect(tok.encode("hello", addSpecial: true, parseSpecial: false) == [1, tiny.id("▁hello")])
        #expect(tok.encode("hello", addSpecial: false, parseSpecial: false) == [tiny.id("▁hello")])
        #expect(tok.encode("", addSpecial: true, parseSpecial: false) == [1])
        // llama.cpp prefixes a space to the text after each special token.
        #expect(tok.encode("hi</s>hi", addSpecial: false, parseSpecial: true)
            == [tiny.id("▁hi"), 2, tiny.id("▁hi")])
    }

    @Test func decodeDropsTheLeadingSpaceOfTheFirstToken() throws {
        let tok = try Tokenizer(vocabulary: tiny.vocabulary(addBOS: true))
        #expect(tok.decode([tiny.id("▁hello"), tiny.id("▁world")], renderSpecial: false) == "hello world")
        #expect(tok.tokenBytes(tiny.id("▁hello"), renderSpecial: false) == Array(" hello".utf8))
        // As in llama_detokenize, a leading BOS takes the place of the stripped first piece.
        #expect(tok.decode([1, tiny.id("▁hello")], renderSpecial: false) == " hello")
        #expect(tok.decode([1, tiny.id("▁hello")], renderSpecial: true) == "<s> hello")
    }

    @Test func endOfGeneration() throws {
        let tok = try Tokenizer(vocabulary: tiny.vocabulary())
        #expect(tok.isEndOfGeneration(2))
        #expect(!tok.isEndOfGeneration(1))
    }
}
