/// The regex-based splitting that byte-level BPE applies before merging, written as scanners
/// over code points with the semantics llama.cpp gives each pattern.
///
/// llama.cpp applies a list of patterns in sequence, each one splitting the pieces the
/// previous one produced. Patterns that llama.cpp runs through `std::regex` (such as `\p{N}`)
/// keep both the matches and the unmatched gaps between them as pieces; patterns it implements
/// by hand (GPT-2's and llama3's) are reproduced from those hand-written scanners.
public struct PreTokenizer: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
        case gpt2
        /// `\p{N}` (every digit alone), then the GPT-2 pattern.
        case smollm
        /// `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
        ///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
        case qwen2
        /// The qwen2 pattern with `\p{N}{1,3}`.
        case llama3
        /// llama.cpp's "default" (also used when `tokenizer.ggml.pre` is missing):
        /// `[\p{P}\$\+<=>\^~\|]+`, the GPT-2 pattern, `\p{N}+`, `[0-9][0-9][0-9]`.
        case llamaDefault
        /// ``[\p{P}\$\+<=>\^~\|`]+``, the GPT-2 pattern, `[0-9][0-9][0-9]`.
        case falcon

        /// The splitting llama.cpp uses for a `tokenizer.ggml.pre` name. Names this engine does
        /// not implement fall back to the GPT-2 pattern.
        public init(name: String) {
            switch name {
            case "", "default":
                self = .llamaDefault
            case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                 "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe", "chatglm-bpe", "glm4", "glm5":
                self = .llama3
            case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan",
                 "solar-open", "grok-2":
                self = .qwen2
            case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b",
                 "mellum2":
                self = .smollm
            case "falcon":
                self = .falcon
            default:
                self = .gpt2
            }
        }

        /// Whether llama.cpp looks a whole piece up in the vocabulary before merging
        /// (`ignore_merges`), which it does for the llama3 family and a few others.
        func ignoresMerges(name: String) -> Bool {
            switch name {
            case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                 "lfm2", "jina-v5-nano", "glm4", "glm5", "minicpm5", "youtu", "tekken",
                 "granite-embed-multi-97m":
                return true
            default:
                return false
            }
        }
    }

    public let kind: Kind

    public init(kind: Kind) {
        self.kind = kind
    }

    /// The pre-tokenizer for a `tokenizer.ggml.pre` name.
    public init(name: String) {
        self.kind = Kind(name: name)
    }

    /// Splits `text` into the pieces that are BPE-merged independently (before the byte-level
    /// mapping). Concatenating the pieces gives back `text`.
    public func split(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        var codePoints: [UInt32] = []
        var offsets: [Int32] = []
        bytes.withUnsafeBufferPointer {
            UTF8Support.decode($0, codePoints: &codePoints, offsets: &offsets)
        }
        var classes: [CharClass] = []
        var ends: [Int32] = []
        var scratch: [Int32] = []
        splitCodePoints(codePoints, classes: &classes, ends: &ends, scratch: &scratch)
        var pieces: [String] = []
        pieces.reserveCapacity(ends.count)
        var start = 0
        for end in ends {
            let from = Int(offsets[start])
            let to = Int(offsets[Int(end)])
            pieces.append(String(decoding: bytes[from..<to], as: UTF8.self))
            start = Int(end)
        }
        return pieces
    }

    /// Splits code points into pieces: on return `ends` holds the end index of each piece, in
    /// order, the last being `codePoints.count` (empty input gives no pieces). `classes` and
    /// `scratch` are working storage reused across calls.
    func splitCodePoints(
        _ codePoints: [UInt32],
        classes: inout [CharClass],
        ends: inout [Int32],
        scratch: inout [Int32]
    ) {
        classes.removeAll(keepingCapacity: true)
        classes.reserveCapacity(codePoints.count)
        for cp in codePoints { classes.append(CharClass.of(cp)) }
        ends.removeAll(keepingCapacity: true)
        if codePoints.isEmpty { return }
        ends.append(Int32(codePoints.count))

        let steps: [Step]
        switch kind {
        case .gpt2: steps = [.gpt2]
        case .smollm: steps = [.eachNumber, .gpt2]
        case .qwen2: steps = [.llama3(maxDigits: 1)]
        case .llama3: steps = [.llama3(maxDigits: 3)]
        case .llamaDefault:
            steps = [.punctuationRun(backtick: false), .gpt2, .numberRun, .asciiDigitTriples]
        case .falcon:
            steps = [.punctuationRun(backtick: true), .gpt2, .asciiDigitTriples]
        }

        codePoints.withUnsafeBufferPointer { cps in
            classes.withUnsafeBufferPointer { cls in
                for step in steps {
                    scratch.removeAll(keepingCapacity: true)
                    var start = 0
                    for end in ends {
                        let hi = Int(end)
                        Scanner.run(step, cps: cps, cls: cls, lo: start, hi: hi, out: &scratch)
                        start = hi
                    }
                    swap(&ends, &scratch)
                }
            }
        }
    }

    enum Step {
        case gpt2
        case llama3(maxDigits: Int)
        case eachNumber
        case numberRun
        case punctuationRun(backtick: Bool)
        case asciiDigitTriples
    }
}

/// The scanners. Each splits `lo..<hi` and appends the end of every non-empty piece to `out`.
private enum Scanner {
    static func run(
        _ step: PreTokenizer.Step,
        cps: UnsafeBufferPointer<UInt32>,
        cls: UnsafeBufferPointer<CharClass>,
        lo: Int,
        hi: Int,
        out: inout [Int32]
    ) {
        switch step {
        case .gpt2:
            gpt2(cps: cps, cls: cls, lo: lo, hi: hi, out: &out)
        case .llama3(let maxDigits):
            llama3(cps: cps, cls: cls, lo: lo, hi: hi, maxDigits: maxDigits, out: &out)
        case .eachNumber:
            matchesAndGaps(lo: lo, hi: hi, out: &out) { p in
                cls[p].contains(.number) ? 1 : 0
            }
        case .numberRun:
            matchesAndGaps(lo: lo, hi: hi, out: &out) { p in
                var q = p
                while q < hi && cls[q].contains(.number) { q += 1 }
                return q - p
            }
        case .punctuationRun(let backtick):
            matchesAndGaps(lo: lo, hi: hi, out: &out) { p in
                var q = p
                while q < hi && (isDefaultPunctuation(cps[q], cls[q]) || (backtick && cps[q] == 0x60)) {
                    q += 1
                }
                return q - p
            }
        case .asciiDigitTriples:
            matchesAndGaps(lo: lo, hi: hi, out: &out) { p in
                guard p + 3 <= hi else { return 0 }
                for q in p..<(p + 3) where !(0x30...0x39).contains(cps[q]) { return 0 }
                return 3
            }
        }
    }

    /// `[\p{P}\$\+<=>\^~\|]`
    @inline(__always)
    static func isDefaultPunctuation(_ cp: UInt32, _ cls: CharClass) -> Bool {
        if cls.contains(.punctuation) { return true }
        switch cp {
        case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C: return true
        default: return false
        }
    }

    /// std::regex iteration: every match is a piece, and so is each run of unmatched code
    /// points between matches. `matchLength(p)` is the length of the match at `p` (0: none).
    @inline(__always)
    static func matchesAndGaps(lo: Int, hi: Int, out: inout [Int32], matchLength: (Int) -> Int) {
        var gapStart = lo
        var p = lo
        while p < hi {
            let length = matchLength(p)
            if length > 0 {
                if p > gapStart { out.append(Int32(p)) }
                p += length
                out.append(Int32(p))
                gapStart = p
            } else {
                p += 1
            }
        }
        if gapStart < hi { out.append(Int32(hi)) }
    }

    /// Length of `'s|'t|'re|'ve|'m|'ll|'d` at `p` (0 when none); llama3's variant also takes
    /// the ASCII capitals.
    @inline(__always)
    static func contraction(
        cps: UnsafeBufferPointer<UInt32>, p: Int, hi: Int, caseInsensitive: Bool
    ) -> Int {
        guard cps[p] == 0x27, p + 1 < hi else { return 0 }
        @inline(__always) func fold(_ cp: UInt32) -> UInt32 {
            caseInsensitive && cp >= 0x41 && cp <= 0x5A ? cp + 32 : cp
        }
        let c1 = fold(cps[p + 1])
        switch c1 {
        case 0x73, 0x74, 0x6D, 0x64:  // s t m d
            return 2
        default:
            break
        }
        guard p + 2 < hi else { return 0 }
        let c2 = fold(cps[p + 2])
        switch (c1, c2) {
        case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C):  // re ve ll
            return 3
        default:
            return 0
        }
    }

    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    static func gpt2(
        cps: UnsafeBufferPointer<UInt32>, cls: UnsafeBufferPointer<CharClass>,
        lo: Int, hi: Int, out: inout [Int32]
    ) {
        var pos = lo
        while pos < hi {
            let c = cps[pos]
            let contractionLength = contraction(cps: cps, p: pos, hi: hi, caseInsensitive: false)
            if contractionLength > 0 {
                pos += contractionLength
                out.append(Int32(pos))
                continue
            }
            // An optional leading space, then a run of one class.
            let first = c == 0x20 ? pos + 1 : pos
            if first < hi {
                let k = cls[first]
                var q = first
                if k.contains(.letter) {
                    while q < hi && cls[q].contains(.letter) { q += 1 }
                } else if k.contains(.number) {
                    while q < hi && cls[q].contains(.number) { q += 1 }
                } else if k.isOther {
                    while q < hi && cls[q].isOther { q += 1 }
                }
                if q > first {
                    pos = q
                    out.append(Int32(pos))
                    continue
                }
            }
            var spaces = 0
            while pos + spaces < hi && cls[pos + spaces].contains(.whitespace) { spaces += 1 }
            if spaces > 1 && pos + spaces < hi {
                // \s+(?!\S): leave the last space for the word that follows.
                pos += spaces - 1
            } else if spaces > 0 {
                pos += spaces
            } else {
                pos += 1
            }
            out.append(Int32(pos))
        }
    }

    /// llama3 / qwen2: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}|
    ///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    static func llama3(
        cps: UnsafeBufferPointer<UInt32>, cls: UnsafeBufferPointer<CharClass>,
        lo: Int, hi: Int, maxDigits: Int, out: inout [Int32]
    ) {
        var pos = lo
        while pos < hi {
            let c = cps[pos]
            let k = cls[pos]
            let contractionLength = contraction(cps: cps, p: pos, hi: hi, caseInsensitive: true)
            if contractionLength > 0 {
                pos += contractionLength
                out.append(Int32(pos))
                continue
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == 0x0D || c == 0x0A || k.contains(.number)) {
                if k.contains(.letter) || (pos + 1 < hi && cls[pos + 1].contains(.letter)) {
                    var q = pos + 1
                    while q < hi && cls[q].contains(.letter) { q += 1 }
                    pos = q
                    out.append(Int32(pos))
                    continue
                }
            }
            // \p{N}{1,max}
            if k.contains(.number) {
                var count = 0
                while pos < hi && cls[pos].contains(.number) {
                    pos += 1
                    count += 1
                    if count == maxDigits {
                        out.append(Int32(pos))
                        count = 0
                    }
                }
                if count > 0 { out.append(Int32(pos)) }
                continue
            }
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let first = c == 0x20 ? pos + 1 : pos
            if first < hi && cls[first].isOther {
                var q = first
                while q < hi && cls[q].isOther { q += 1 }
                while q < hi && (cps[q] == 0x0D || cps[q] == 0x0A) { q += 1 }
                pos = q
                out.append(Int32(pos))
                continue
            }
            var spaces = 0
            var lastNewlineEnd = -1
            while pos + spaces < hi && cls[pos + spaces].contains(.whitespace) {
                let w = cps[pos + spaces]
                if w == 0x0D || w == 0x0A { lastNewlineEnd = pos + spaces + 1 }
                spaces += 1
            }
            if lastNewlineEnd > 0 {
                // \s*[\r\n]+
                pos = lastNewlineEnd
            } else if spaces > 1 && pos + spaces < hi {
                // \s+(?!\S)
                pos += spaces - 1
            } else if spaces > 0 {
                pos += spaces
            } else {
                pos += 1
            }
            out.append(Int32(pos))
        }
    }
}
