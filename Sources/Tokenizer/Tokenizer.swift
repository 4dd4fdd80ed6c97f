/// Token attributes, as llama.cpp derives them from the token types (plus its fix-ups by text).
struct TokenAttributes: OptionSet, Sendable {
    let rawValue: UInt8
    static let normal = TokenAttributes(rawValue: 1)
    static let unknown = TokenAttributes(rawValue: 2)
    static let control = TokenAttributes(rawValue: 4)
    static let userDefined = TokenAttributes(rawValue: 8)
    static let unused = TokenAttributes(rawValue: 16)
    static let byte = TokenAttributes(rawValue: 32)

    init(rawValue: UInt8) { self.rawValue = rawValue }

    init(tokenType: Int32) {
        switch Vocabulary.TokenType(rawValue: tokenType) {
        case .normal: self = .normal
        case .unknown: self = .unknown
        case .control: self = .control
        case .userDefined: self = .userDefined
        case .unused: self = .unused
        case .byte: self = .byte
        case .undefined, nil: self = []
        }
    }
}

/// Text to token ids and back, exactly as llama.cpp does it for GGUF vocabularies of type
/// "gpt2" (byte-level BPE) and "llama" (SentencePiece BPE).
public final class Tokenizer: Sendable {
    let model: Vocabulary.Model
    let preTokenizer: PreTokenizer
    let ignoreMerges: Bool
    let cleanSpaces: Bool
    let addBOS: Bool
    let addEOS: Bool
    let addSpacePrefix: Bool

    public let bosID: Int32?
    public let eosID: Int32?
    /// `tokenizer.ggml.eot_token_id`, or the token llama.cpp recognises as end-of-turn by its
    /// text when the vocabulary names none.
    public let eotID: Int32?
    public let unknownID: Int32?
    public let paddingID: Int32?

    let tokenCount: Int
    /// Token text to id.
    let tokenTable: ByteStringTable
    let attributes: [TokenAttributes]
    let scores: [Float]
    let endOfGeneration: Set<Int32>
    /// Control, user-defined and unknown tokens, longest text first: the order in which
    /// llama.cpp partitions text on them.
    let specialTokens: [Int32]
    /// What each token renders to with special tokens shown: `pieceBytes[pieceStarts[id] ..<
    /// pieceStarts[id + 1]]`.
    let pieceBytes: [UInt8]
    let pieceStarts: [Int32]

    // Byte-level BPE.
    let merges: MergeTable
    /// The symbol of each byte's byte-level character.
    let byteSymbols: [Int32]
    /// Texts of the symbols that merges produce but that are not tokens (ids from
    /// `tokenCount` on).
    let syntheticSymbolTexts: [[UInt8]]
    /// The token whose text is the single byte, or -1.
    let singleByteTokens: [Int32]

    // SentencePiece.
    /// The token a byte falls back to (`<0xXX>`, else the byte itself, else unknown), or -1.
    let byteFallbackTokens: [Int32]

    public var vocabularySize: Int { tokenCount }

    public init(vocabulary v: Vocabulary) throws(TokenizerError) {
        let n = v.tokens.count
        guard n > 0 else { throw .emptyVocabulary }
        guard n < Int(Int32.max) / 2 else { throw .vocabularyTooLarge(count: n) }
        guard v.tokenTypes.isEmpty || v.tokenTypes.count == n else {
            throw .tokenTypeCountMismatch(tokens: n, types: v.tokenTypes.count)
        }
        guard v.scores.isEmpty || v.scores.count == n else {
            throw .scoreCountMismatch(tokens: n, scores: v.scores.count)
        }
        for (name, id) in [("bos", v.bosID), ("eos", v.eosID), ("eot", v.eotID),
                           ("unknown", v.unknownID), ("padding", v.paddingID)] {
            if let id, id < 0 || Int(id) >= n { throw .specialTokenOutOfRange(name: name, id: id) }
        }
        if v.addBOS && v.bosID == nil { throw .missingSpecialToken(name: "bos") }
        if v.addEOS && v.eosID == nil { throw .missingSpecialToken(name: "eos") }

        model = v.model
        preTokenizer = PreTokenizer(name: v.preTokenizer)
        ignoreMerges = v.model == .gpt2 && preTokenizer.kind.ignoresMerges(name: v.preTokenizer)
        cleanSpaces = v.model == .gpt2 && Self.cleansSpaces(preTokenizer: v.preTokenizer)
        addBOS = v.addBOS
        addEOS = v.addEOS
        addSpacePrefix = v.addSpacePrefix
        bosID = v.bosID
        eosID = v.eosID
        unknownID = v.unknownID
        paddingID = v.paddingID
        tokenCount = n
        scores = v.scores.isEmpty ? [Float](repeating: 0, count: n) : v.scores

        // Token texts (llama.cpp renames empty ones) and the text-to-id table.
        // Entry i of the table is token i, so the table also holds the token texts.
        var table = ByteStringTable(capacity: n)
        for (i, token) in v.tokens.enumerated() {
            var text = token.isEmpty ? "[EMPTY_\(i)]" : token
            if let first = text.withUTF8({ table.insert($0, value: Int32(i)) }) {
                throw .duplicateToken(text: token, firstID: first, secondID: Int32(i))
            }
        }

        var attrs = v.tokenTypes.isEmpty
            ? [TokenAttributes](repeating: .normal, count: n)
            : v.tokenTypes.map { TokenAttributes(tokenType: $0) }

        // End of generation, detected by text as llama.cpp does.
        func lookup(_ text: String) -> Int32? { table.find(Array(text.utf8)) }
        var eot = v.eotID
        if eot == nil {
            for text in Self.endOfTurnTexts {
                if let id = lookup(text) { eot = id; break }
            }
        }
        var eog = Set<Int32>()
        for list in [Self.fimPadTexts, Self.fimRepoTexts, Self.fimSeparatorTexts] {
            for text in list {
                if let id = lookup(text) { eog.insert(id); attrs[Int(id)].insert(.control); break }
            }
        }
        for list in [Self.fimPrefixTexts, Self.fimSuffixTexts, Self.fimMiddleTexts] {
            for text in list {
                if let id = lookup(text) { attrs[Int(id)].insert(.control); break }
            }
        }
        for text in Self.endOfGenerationTexts {
            if let id = lookup(text) { eog.insert(id); attrs[Int(id)].insert(.control) }
        }
        if let eot { attrs[Int(eot)].insert(.control) }
        for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let id = lookup(text) { attrs[Int(id)] = .userDefined }
        }
        if let id = v.eosID { eog.insert(id) }
        if let eot { eog.insert(eot) }
        func eogHas(_ text: String) -> Int32? {
            guard let id = lookup(text), eog.contains(id) else { return nil }
            return id
        }
        if let end = eogHas("<|end|>") {
            let hasCall = eogHas("<|call|>") != nil || eogHas("<|calls|>") != nil
            if hasCall && (eogHas("<|return|>") != nil || eogHas("<|flush|>") != nil) {
                eog.remove(end)
                attrs[Int(end)] = .userDefined
            }
        }
        if eogHas("<|tool_response>") != nil || eogHas("<|plamo:eos|>") != nil, let s = eogHas("</s>") {
            eog.remove(s)
            attrs[Int(s)] = .normal
        }
        eotID = eot
        endOfGeneration = eog

        let specialMask: TokenAttributes = [.control, .userDefined, .unknown]
        let special = (0..<n).filter { !attrs[$0].intersection(specialMask).isEmpty }
        specialTokens = special.enumerated()
            .sorted { a, b in
                let la = table.key(at: a.element).count, lb = table.key(at: b.element).count
                return la != lb ? la > lb : a.offset < b.offset
            }
            .map { Int32($0.element) }

        // Rendered pieces.
        var pieces: [UInt8] = []
        pieces.reserveCapacity(n * 6)
        var starts: [Int32] = [0]
        starts.reserveCapacity(n + 1)
        for i in 0..<n {
            Self.appendPiece(text: table.key(at: i), attributes: attrs[i], model: v.model, to: &pieces)
            starts.append(Int32(truncatingIfNeeded: pieces.count))
        }
        pieceBytes = pieces
        pieceStarts = starts
        attributes = attrs

        // Model-specific tables.
        var singles = [Int32](repeating: -1, count: 256)
        for byte in 0..<256 {
            singles[byte] = table.find([UInt8(byte)]) ?? -1
        }
        singleByteTokens = singles

        switch v.model {
        case .gpt2:
            var synthetic = ByteStringTable(capacity: 64)
            var syntheticTexts: [[UInt8]] = []
            func symbol(_ key: UnsafeBufferPointer<UInt8>) -> Int32 {
                if let id = table.find(key) { return id }
                if let id = synthetic.find(key) { return id }
                let id = Int32(n + syntheticTexts.count)
                synthetic.insert(key, value: id)
                syntheticTexts.append(Array(key))
                return id
            }
            var mergeTable = MergeTable(capacity: v.merges.count)
            var joined: [UInt8] = []
            for (rank, merge) in v.merges.enumerated() {
                var text = merge
                let failed: Bool = text.withUTF8 { bytes in
                    // llama.cpp splits at the first space after the first byte.
                    var split = -1
                    var i = 1
                    while i < bytes.count {
                        if bytes[i] == 0x20 { split = i; break }
                        i += 1
                    }
                    guard split > 0 else { return true }
                    let left = symbol(UnsafeBufferPointer(rebasing: bytes[0..<split]))
                    let right = symbol(UnsafeBufferPointer(rebasing: bytes[(split + 1)...]))
                    joined.removeAll(keepingCapacity: true)
                    joined.append(contentsOf: bytes[0..<split])
                    joined.append(contentsOf: bytes[(split + 1)...])
                    let result = joined.withUnsafeBufferPointer { symbol($0) }
                    mergeTable.insert(left: left, right: right, rank: Int32(rank), result: result)
                    return false
                }
                if failed { throw .malformedMerge(index: rank, text: merge) }
            }
            byteSymbols = ByteLevel.byteToUTF8.map { $0.withUnsafeBufferPointer { symbol($0) } }
            merges = mergeTable
            syntheticSymbolTexts = syntheticTexts
            byteFallbackTokens = []
        case .llama:
            var fallback = [Int32](repeating: -1, count: 256)
            let hex = Array("0123456789ABCDEF".utf8)
            for byte in 0..<256 {
                let name: [UInt8] = [0x3C, 0x30, 0x78, hex[byte >> 4], hex[byte & 15], 0x3E]
                fallback[byte] = table.find(name) ?? (singles[byte] >= 0 ? singles[byte] : (v.unknownID ?? -1))
            }
            byteFallbackTokens = fallback
            merges = MergeTable(capacity: 0)
            byteSymbols = []
            syntheticSymbolTexts = []
        }
        tokenTable = table
    }

    // MARK: - Queries

    /// Whether generation stops at this token: the eos and eot tokens, and the tokens llama.cpp
    /// marks by their text ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", ...
    /// and the fill-in-the-middle pad, repo and file-separator tokens).
    public func isEndOfGeneration(_ id: Int32) -> Bool {
        endOfGeneration.contains(id)
    }

    /// The id of the token with exactly this text.
    public func tokenID(_ text: String) -> Int32? {
        tokenTable.find(Array(text.utf8))
    }

    /// Whether the token is a control token (rendered only with `renderSpecial`).
    public func isControl(_ id: Int32) -> Bool {
        guard id >= 0 && Int(id) < tokenCount else { return false }
        return attributes[Int(id)].contains(.control)
    }

    /// The token's text as the vocabulary stores it (byte-level characters for gpt2, ▁ for SPM).
    public func tokenText(_ id: Int32) -> String? {
        guard id >= 0 && Int(id) < tokenCount else { return nil }
        return String(decoding: tokenTable.key(at: Int(id)), as: UTF8.self)
    }

    // MARK: - Encoding

    /// Tokenizes `text` like llama.cpp's `llama_tokenize`.
    /// - Parameters:
    ///   - addSpecial: add BOS (and EOS) when the vocabulary asks for them.
    ///   - parseSpecial: control tokens written in the text (such as "<|im_start|>") become
    ///     their ids. User-defined tokens are matched either way, as in llama.cpp.
    public func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32] {
        let bytes = Array(text.utf8)
        var output: [Int32] = []
        output.reserveCapacity(bytes.count / 3 + 4)
        let fragments = bytes.isEmpty ? [] : partition(bytes, parseSpecial: parseSpecial)

        if addSpecial && addBOS, let bosID { output.append(bosID) }
        switch model {
        case .gpt2:
            var work = BPEWork()
            bytes.withUnsafeBufferPointer { all in
                for fragment in fragments {
                    switch fragment {
                    case .token(let id):
                        output.append(id)
                    case .text(let lo, let hi):
                        encodeBPE(UnsafeBufferPointer(rebasing: all[lo..<hi]), work: &work, into: &output)
                    }
                }
            }
        case .llama:
            var work = SPMWork()
            var previousIsSpecial = true
            for fragment in fragments {
                switch fragment {
                case .token(let id):
                    output.append(id)
                    previousIsSpecial = true
                case .text(let lo, let hi):
                    work.text.removeAll(keepingCapacity: true)
                    if addSpacePrefix && previousIsSpecial { work.text.append(contentsOf: Self.escapedSpace) }
                    for byte in bytes[lo..<hi] {
                        if byte == 0x20 {
                            work.text.append(contentsOf: Self.escapedSpace)
                        } else {
                            work.text.append(byte)
                        }
                    }
                    encodeSPM(work: &work, into: &output)
                    previousIsSpecial = false
                }
            }
        }
        if addSpecial && addEOS, let eosID { output.append(eosID) }
        return output
    }

    enum Fragment: Equatable {
        case text(Int, Int)
        case token(Int32)
    }

    /// Splits the text on special tokens, longest first (llama.cpp's tokenizer_st_partition).
    func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = [.text(0, bytes.count)]
        var next: [Fragment] = []
        // Which byte pairs (and single bytes) occur in the text, to skip most special tokens
        // without scanning when a vocabulary has thousands of them.
        var pairSeen = [UInt64](repeating: 0, count: 1024)
        var byteSeen = [UInt64](repeating: 0, count: 4)
        for i in 0..<bytes.count {
            byteSeen[Int(bytes[i] >> 6)] |= 1 << UInt64(bytes[i] & 63)
            if i + 1 < bytes.count {
                let pair = Int(bytes[i]) << 8 | Int(bytes[i + 1])
                pairSeen[pair >> 6] |= 1 << UInt64(pair & 63)
            }
        }
        bytes.withUnsafeBufferPointer { haystack in
            for id in specialTokens {
                let attrs = attributes[Int(id)]
                if !parseSpecial && !attrs.intersection([.control, .unknown]).isEmpty { continue }
                let key = tokenTable.key(at: Int(id))
                key.withUnsafeBufferPointer { needle in
                    guard let firstByte = needle.first, needle.count <= haystack.count else { return }
                    if needle.count == 1 {
                        guard byteSeen[Int(firstByte >> 6)] & (1 << UInt64(firstByte & 63)) != 0 else { return }
                    } else {
                        let pair = Int(firstByte) << 8 | Int(needle[1])
                        guard pairSeen[pair >> 6] & (1 << UInt64(pair & 63)) != 0 else { return }
                    }
                    next.removeAll(keepingCapacity: true)
                    var changed = false
                    for fragment in fragments {
                        guard case .text(let lo, let hi) = fragment else {
                            next.append(fragment)
                            continue
                        }
                        var p = lo
                        var searchFrom = lo
                        let lastStart = hi - needle.count
                        while searchFrom <= lastStart {
                            if haystack[searchFrom] != firstByte {
                                searchFrom += 1
                                continue
                            }
                            var k = 1
                            while k < needle.count && haystack[searchFrom + k] == needle[k] { k += 1 }
                            if k < needle.count {
                                searchFrom += 1
                                continue
                            }
                            if searchFrom > p { next.append(.text(p, searchFrom)) }
                            next.append(.token(id))
                            changed = true
                            p = searchFrom + needle.count
                            searchFrom = p
                        }
                        if p < hi { next.append(.text(p, hi)) }
                    }
                    if changed { swap(&fragments, &next) }
                }
            }
        }
        return fragments
    }

    static let escapedSpace: [UInt8] = [0xE2, 0x96, 0x81]

    // MARK: - Byte-level BPE

    struct BPEWork {
        var codePoints: [UInt32] = []
        var offsets: [Int32] = []
        var classes: [CharClass] = []
        var ends: [Int32] = []
        var scratch: [Int32] = []
        var encoded: [UInt8] = []
        var symbols: [Int32] = []
        var previous: [Int32] = []
        var following: [Int32] = []
        var heap = PriorityHeap<MergeCandidate>()
    }

    func encodeBPE(_ text: UnsafeBufferPointer<UInt8>, work: inout BPEWork, into output: inout [Int32]) {
        UTF8Support.decode(text, codePoints: &work.codePoints, offsets: &work.offsets)
        preTokenizer.splitCodePoints(
            work.codePoints, classes: &work.classes, ends: &work.ends, scratch: &work.scratch)
        var start = 0
        for end in work.ends {
            let from = Int(work.offsets[start])
            let to = Int(work.offsets[Int(end)])
            start = Int(end)
            let word = UnsafeBufferPointer(rebasing: text[from..<to])
            if ignoreMerges {
                work.encoded.removeAll(keepingCapacity: true)
                for byte in word { work.encoded.append(contentsOf: ByteLevel.byteToUTF8[Int(byte)]) }
                if let id = tokenTable.find(work.encoded) {
                    output.append(id)
                    continue
                }
            }
            mergeWord(word, work: &work, into: &output)
        }
    }

    /// Merges the byte-level symbols of one word by rank (lowest first, leftmost on ties), as
    /// llama.cpp's priority queue does, and appends the resulting tokens.
    func mergeWord(_ word: UnsafeBufferPointer<UInt8>, work: inout BPEWork, into output: inout [Int32]) {
        let count = word.count
        guard count > 0 else { return }
        work.symbols.removeAll(keepingCapacity: true)
        work.previous.removeAll(keepingCapacity: true)
        work.following.removeAll(keepingCapacity: true)
        for (i, byte) in word.enumerated() {
            work.symbols.append(byteSymbols[Int(byte)])
            work.previous.append(Int32(i - 1))
            work.following.append(i + 1 < count ? Int32(i + 1) : -1)
        }
        if count > 1 {
            work.heap.removeAll()
            for i in 0..<(count - 1) {
                pushPair(left: Int32(i), right: Int32(i + 1), work: &work)
            }
            while let entry = work.heap.pop() {
                let left = Int(entry.left), right = Int(entry.right)
                guard work.symbols[left] == entry.leftSymbol,
                      work.symbols[right] == entry.rightSymbol,
                      work.following[left] == entry.right
                else { continue }
                work.symbols[left] = entry.result
                work.symbols[right] = -1
                let after = work.following[right]
                work.following[left] = after
                if after >= 0 { work.previous[Int(after)] = Int32(left) }
                let before = work.previous[left]
                if before >= 0 { pushPair(left: before, right: Int32(left), work: &work) }
                if after >= 0 { pushPair(left: Int32(left), right: after, work: &work) }
            }
        }
        var i: Int32 = 0
        while i >= 0 {
            let symbol = work.symbols[Int(i)]
            if Int(symbol) < tokenCount {
                output.append(symbol)
            } else {
                // Not a token: llama.cpp emits the tokens of the single bytes it can find.
                for byte in syntheticSymbolTexts[Int(symbol) - tokenCount] {
                    let id = singleByteTokens[Int(byte)]
                    if id >= 0 { output.append(id) }
                }
            }
            i = work.following[Int(i)]
        }
    }

    @inline(__always)
    private func pushPair(left: Int32, right: Int32, work: inout BPEWork) {
        let l = work.symbols[Int(left)], r = work.symbols[Int(right)]
        guard let merge = merges.find(left: l, right: r) else { return }
        work.heap.push(MergeCandidate(
            key: UInt64(UInt32(bitPattern: merge.rank)) << 32 | UInt64(UInt32(bitPattern: left)),
            right: right, leftSymbol: l, rightSymbol: r, result: merge.result))
    }

    // MARK: - SentencePiece

    struct SPMWork {
        var text: [UInt8] = []
        var starts: [Int32] = []
        var lengths: [Int32] = []
        var previous: [Int32] = []
        var following: [Int32] = []
        var heap = PriorityHeap<ScoreCandidate>()
    }

    /// llama.cpp's llm_tokenizer_spm: merge the adjacent pair whose concatenation is the
    /// highest-scoring token (leftmost on ties) until none is left, then emit each symbol, or
    /// its bytes through the byte tokens when it is not a token.
    func encodeSPM(work: inout SPMWork, into output: inout [Int32]) {
        work.starts.removeAll(keepingCapacity: true)
        work.lengths.removeAll(keepingCapacity: true)
        work.previous.removeAll(keepingCapacity: true)
        work.following.removeAll(keepingCapacity: true)
        work.heap.removeAll()
        let total = work.text.count
        guard total > 0 else { return }
        var offset = 0
        var index: Int32 = 0
        while offset < total {
            let length = min(UTF8Support.sequenceLength(lead: work.text[offset]), total - offset)
            work.starts.append(Int32(offset))
            work.lengths.append(Int32(length))
            work.previous.append(index - 1)
            offset += length
            work.following.append(offset == total ? -1 : index + 1)
            index += 1
        }
        work.text.withUnsafeBufferPointer { text in
            func tryAdd(_ left: Int32, _ right: Int32, _ work: inout SPMWork) {
                guard left >= 0 && right >= 0 else { return }
                let start = Int(work.starts[Int(left)])
                let size = Int(work.lengths[Int(left)] + work.lengths[Int(right)])
                guard let id = tokenTable.find(UnsafeBufferPointer(rebasing: text[start..<(start + size)]))
                else { return }
                work.heap.push(ScoreCandidate(
                    score: scores[Int(id)], left: left, right: right, size: Int32(size)))
            }
            for i in 1..<Int32(work.starts.count) { tryAdd(i - 1, i, &work) }
            while let entry = work.heap.pop() {
                let left = Int(entry.left), right = Int(entry.right)
                let leftLength = work.lengths[left], rightLength = work.lengths[right]
                if leftLength == 0 || rightLength == 0 || leftLength + rightLength != entry.size { continue }
                work.lengths[left] = leftLength + rightLength
                work.lengths[right] = 0
                let after = work.following[right]
                work.following[left] = after
                if after >= 0 { work.previous[Int(after)] = entry.left }
                tryAdd(work.previous[left], entry.left, &work)
                tryAdd(entry.left, work.following[left], &work)
            }
            var i: Int32 = 0
            while i >= 0 {
                let start = Int(work.starts[Int(i)])
                let length = Int(work.lengths[Int(i)])
                let piece = UnsafeBufferPointer(rebasing: text[start..<(start + length)])
                if let id = tokenTable.find(piece) {
                    output.append(id)
                } else {
                    for byte in piece {
                        let id = byteFallbackTokens[Int(byte)]
                        if id >= 0 { output.append(id) }
                    }
                }
                i = work.following[Int(i)]
            }
        }
    }

    // MARK: - Decoding

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

    // MARK: - llama.cpp's lists of special texts

    static func cleansSpaces(preTokenizer: String) -> Bool {
        switch preTokenizer {
        case "deepseek-llm", "deepseek-coder", "deepseek-v3", "spark2_5", "youtu", "command-r",
             "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "qwen35", "poro-chat", "viking",
             "tekken", "smollm", "chameleon", "gpt-4o", "llama4", "kanana2", "talkie",
             "granite-embed-multi-97m", "tiny_aya", "cohere2moe", "superbpe", "trillion",
             "granite-docling", "bailingmoe", "bailingmoe2", "llada-moe", "seed-coder", "hunyuan",
             "hunyuan-dense", "hy_v4", "joyai-llm", "kimi-k2", "ufakzeka", "grok-2", "afmoe",
             "laguna", "minimax-m2", "solar-open", "sarvam-moe":
            return false
        default:
            return true
        }
    }

    static let endOfTurnTexts = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
        "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
    ]
    static let endOfGenerationTexts = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
        "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
        "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<｜end▁of▁sentence｜>", "[e~[",
    ]
    static let fimPrefixTexts = [
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
        "<|code_prefix|>", "<|prefix|>",
    ]
    static let fimSuffixTexts = [
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
        "<|code_suffix|>", "<|suffix|>",
    ]
    static let fimMiddleTexts = [
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
        "<|code_middle|>", "<|middle|>",
    ]
    static let fimPadTexts = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
    static let fimRepoTexts = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
    static let fimSeparatorTexts = ["<|file_sep|>"]
}

/// Ordering for `PriorityHeap`: `a` is served before `b`.
protocol HeapOrdered {
    static func servedBefore(_ a: Self, _ b: Self) -> Bool
}

/// A binary heap that serves entries in their `HeapOrdered` order; its storage is kept
/// across `removeAll()` so reusing one heap per word allocates nothing.
struct PriorityHeap<Entry: HeapOrdered> {
    private var items: [Entry] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ entry: Entry) {
        items.append(entry)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if !Entry.servedBefore(items[child], items[parent]) { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            let count = items.count
            while true {
                let left = 2 * parent + 1
                if left >= count { break }
                var first = left
                if left + 1 < count && Entry.servedBefore(items[left + 1], items[left]) { first = left + 1 }
                if !Entry.servedBefore(items[first], items[parent]) { break }
                items.swapAt(parent, first)
                parent = first
            }
        }
        return top
    }
}

/// A candidate BPE merge, served by (rank, left position), both packed into `key`.
struct MergeCandidate: HeapOrdered {
    var key: UInt64
    var right: Int32
    var leftSymbol: Int32
    var rightSymbol: Int32
    var result: Int32
    var left: Int32 { Int32(truncatingIfNeeded: key & 0xFFFF_FFFF) }

    @inline(__always) static func servedBefore(_ a: Self, _ b: Self) -> Bool { a.key < b.key }
}

/// A candidate SPM merge, served by highest score, then leftmost position.
struct ScoreCandidate: HeapOrdered {
    var score: Float
    var left: Int32
    var right: Int32
    var size: Int32

    @inline(__always) static func servedBefore(_ a: Self, _ b: Self) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }
}
