import Testing
import Tokenizer

/// Expected splits were checked against HF tokenizers' regex pre-tokenizers, which llama.cpp's
/// scanners agree with on these inputs.
struct PreTokenizerTests {
    let gpt2 = PreTokenizer(name: "gpt-2")
    let smollm = PreTokenizer(name: "smollm")
    let qwen2 = PreTokenizer(name: "qwen2")
    let llama3 = PreTokenizer(name: "llama-bpe")

    @Test func namesMapToKinds() {
        #expect(PreTokenizer(name: "smollm").kind == .smollm)
        #expect(PreTokenizer(name: "starcoder").kind == .smollm)
        #expect(PreTokenizer(name: "qwen2").kind == .qwen2)
        #expect(PreTokenizer(name: "llama-bpe").kind == .llama3)
        #expect(PreTokenizer(name: "llama3").kind == .llama3)
        #expect(PreTokenizer(name: "glm4").kind == .llama3)
        #expect(PreTokenizer(name: "falcon").kind == .falcon)
        #expect(PreTokenizer(name: "gpt-2").kind == .gpt2)
        #expect(PreTokenizer(name: "default").kind == .llamaDefault)
        #expect(PreTokenizer(name: "").kind == .llamaDefault)
        #expect(PreTokenizer(name: "no-such-pre-tokenizer").kind == .gpt2)
    }

    @Test func wordsAndLeadingSpaces() {
        for p in [gpt2, smollm, qwen2, llama3] {
            #expect(p.split("Hello world") == ["Hello", " world"])
            #expect(p.split("日本語のテキスト 中文") == ["日本語のテキスト", " 中文"])
            #expect(p.split("emoji 🤗🚀 ok") == ["emoji", " 🤗🚀", " ok"])
            #expect(p.split("") == [])
        }
    }

    @Test func contractions() {
        let text = "I'm here, you're THERE'S"
        #expect(gpt2.split(text) == ["I", "'m", " here", ",", " you", "'re", " THERE", "'", "S"])
        #expect(smollm.split(text) == ["I", "'m", " here", ",", " you", "'re", " THERE", "'", "S"])
        // qwen2 and llama3 accept capitals after the apostrophe.
        #expect(qwen2.split(text) == ["I", "'m", " here", ",", " you", "'re", " THERE", "'S"])
        #expect(llama3.split("don't'RE") == ["don", "'t", "'RE"])
        #expect(gpt2.split("don't'RE") == ["don", "'t", "'", "RE"])
    }

    @Test func whitespaceRunsLeaveOneSpaceForTheNextWord() {
        for p in [gpt2, smollm, qwen2, llama3] {
            #expect(p.split("a  b   c") == ["a", " ", " b", "  ", " c"])
            #expect(p.split("trailing   ") == ["trailing", "   "])
        }
        #expect(gpt2.split("  \n  indented") == ["  \n ", " indented"])
        #expect(qwen2.split("  \n  indented") == ["  \n", " ", " indented"])
    }

    @Test func newlinesAndTabs() {
        #expect(gpt2.split("x\n\ny") == ["x", "\n", "\n", "y"])
        #expect(qwen2.split("x\n\ny") == ["x", "\n\n", "y"])
        #expect(smollm.split("\ttabs\tand\r\nCRLF") == ["\t", "tabs", "\t", "and", "\r", "\n", "CRLF"])
        #expect(qwen2.split("\ttabs\tand\r\nCRLF") == ["\ttabs", "\tand", "\r\n", "CRLF"])
        #expect(llama3.split("end.\n\nNext") == ["end", ".\n\n", "Next"])
    }

    @Test func digits() {
        #expect(gpt2.split("1234567 89") == ["1234567", " 89"])
        #expect(smollm.split("1234567 89") == ["1", "2", "3", "4", "5", "6", "7", " ", "8", "9"])
        #expect(qwen2.split("1234567 89") == ["1", "2", "3", "4", "5", "6", "7", " ", "8", "9"])
        #expect(llama3.split("1234567 89") == ["123", "456", "7", " ", "89"])
        #expect(smollm.split("price: $12.50!") == ["price", ":", " $", "1", "2", ".", "5", "0", "!"])
        #expect(llama3.split("price: $12.50!") == ["price", ":", " $", "12", ".", "50", "!"])
        // Superscripts, roman numerals and Arabic-Indic digits are \p{N} too.
        #expect(gpt2.split("x²+Ⅻ٣") == ["x", "²", "+", "Ⅻ٣"])
        #expect(qwen2.split("x²+Ⅻ٣") == ["x", "²", "+", "Ⅻ", "٣"])
    }

    @Test func unicodeWhitespace() {
        #expect(gpt2.split("a\u{A0}b\u{3000}c") == ["a", "\u{A0}", "b", "\u{3000}", "c"])
        #expect(qwen2.split("a\u{A0}b\u{3000}c") == ["a", "\u{A0}b", "\u{3000}c"])
        // U+001C is not whitespace for llama.cpp (it is for Python's str.isspace).
        #expect(gpt2.split("a\u{1C}b") == ["a", "\u{1C}", "b"])
    }

    @Test func charactersNewerThanLlamaCppsUnicodeTablesAreUnassigned() {
        // llama.cpp's tables are Unicode 15.1: CJK Extension I (15.1) is a letter, while
        // U+1C89 (16.0) and CJK Extension J (17.0) are unassigned there.
        #expect(gpt2.split("a\u{2EBF0}b") == ["a\u{2EBF0}b"])
        #expect(gpt2.split("a\u{1C89}b") == ["a", "\u{1C89}", "b"])
        #expect(gpt2.split("a\u{323B0}b") == ["a", "\u{323B0}", "b"])
    }

    @Test func llamaCppDefaultSequence() {
        let p = PreTokenizer(name: "default")
        #expect(p.split("Hello, world! 12345") == ["Hello", ",", " world", "!", " ", "123", "45"])
        // The backtick is not in the default punctuation class, but falcon's includes it.
        #expect(p.split("x`.y") == ["x", "`", ".", "y"])
        #expect(PreTokenizer(name: "falcon").split("x`.y") == ["x", "`.", "y"])
    }
}
