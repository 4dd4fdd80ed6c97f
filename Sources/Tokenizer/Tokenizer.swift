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
    /// Every end-of-generation id, sorted (a pipeline's node 0 stops on them).
    public var endOfGenerationIDs: [Int32] { endOfGeneration.sorted() }

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
}
