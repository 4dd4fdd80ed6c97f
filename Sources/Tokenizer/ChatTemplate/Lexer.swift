// Tokenizer for the Jinja subset. Mirrors Jinja2's lexer with the environment HF transformers
// uses for chat templates: trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False.

struct JinjaPos: Sendable, Equatable {
    var line: Int
    var column: Int
}

enum JinjaTokenKind: Sendable, Equatable {
    case data(String)
    case variableBegin
    case variableEnd
    case blockBegin
    case blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct JinjaToken: Sendable {
    var kind: JinjaTokenKind
    var pos: JinjaPos
}

/// Python's `str.isspace()` / regex `\s` for str patterns.
@inline(__always)
func isPyWhitespace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F,
         0x205F, 0x3000:
        return true
    default:
        return false
    }
}

@inline(__always)
private func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 48 && c.value <= 57 }

private func isNameStart(_ c: Unicode.Scalar) -> Bool {
    if c == "_" { return true }
    if c.isASCII { return (c.value >= 65 && c.value <= 90) || (c.value >= 97 && c.value <= 122) }
    return c.properties.isXIDStart
}

private func isNameContinue(_ c: Unicode.Scalar) -> Bool {
    if c.isASCII { return isNameStart(c) || isDigit(c) }
    return c.properties.isXIDContinue
}

struct JinjaLexer {
    private let s: [Unicode.Scalar]
    private var lineStarts: [Int] = [0]
    private var tokens: [JinjaToken] = []
    private let trimBlocks = true
    private let lstripBlocks = true

    init(source: String) {
        // Normalize \r\n and \r to \n, then drop one trailing newline (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var previousCR = false
        for c in source.unicodeScalars {
            if c == "\r" {
                scalars.append("\n")
                previousCR = true
                continue
            }
            if c == "\n" && previousCR {
                previousCR = false
                continue
            }
            previousCR = false
            scalars.append(c)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        s = scalars
        for (i, c) in s.enumerated() where c == "\n" { lineStarts.append(i + 1) }
    }

    func position(_ index: Int) -> JinjaPos {
        // Binary search for the line containing index.
        var lo = 0
        var hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= index { lo = mid } else { hi = mid - 1 }
        }
        return JinjaPos(line: lo + 1, column: index - lineStarts[lo] + 1)
    }

    private func syntax(_ message: String, at index: Int) -> ChatTemplateError {
        let p = position(index)
        return .syntax(message: message, line: p.line, column: p.column)
    }

    private func string(_ from: Int, _ to: Int) -> String {
        var out = String.UnicodeScalarView()
        out.append(contentsOf: s[from..<to])
        return String(out)
    }

    private func matches(_ text: String, at index: Int) -> Bool {
        var i = index
        for c in text.unicodeScalars {
            guard i < s.count, s[i] == c else { return false }
            i += 1
        }
        return true
    }

    private func skipWhitespace(from index: Int) -> Int {
        var i = index
        while i < s.count && isPyWhitespace(s[i]) { i += 1 }
        return i
    }

    /// Applies `-` stripping or lstrip_blocks to the data text preceding a tag.
    private func stripData(_ from: Int, _ to: Int, sign: Unicode.Scalar?, lstripApplies: Bool,
                           lineStarting: Bool) -> Int {
        var end = to
        if sign == "-" {
            while end > from && isPyWhitespace(s[end - 1]) { end -= 1 }
        } else if sign != "+" && lstripBlocks && lstripApplies {
            var lpos = from
            var k = end
            while k > from {
                if s[k - 1] == "\n" { lpos = k; break }
                k -= 1
            }
            if lpos > from || lineStarting {
                if lpos < end && s[lpos..<end].allSatisfy(isPyWhitespace) { end = lpos }
            }
        }
        return end
    }

    mutating func tokenize() throws -> [JinjaToken] {
        let n = s.count
        var i = 0
        var lineStarting = true
        while i < n {
            // Find the next tag opener.
            var j = i
            var opener: Unicode.Scalar = " "
            var found = false
            while j + 1 < n {
                if s[j] == "{" {
                    let c = s[j + 1]
                    if c == "{" || c == "%" || c == "#" {
                        opener = c
                        found = true
                        break
                    }
                }
                j += 1
            }
            if !found {
                tokens.append(JinjaToken(kind: .data(string(i, n)), pos: position(i)))
                break
            }
            var k = j + 2
            var sign: Unicode.Scalar? = nil
            if k < n && (s[k] == "-" || s[k] == "+") {
                sign = s[k]
                k += 1
            }
            // `{% raw %}` is recognised at the opener itself.
            var rawBodyStart: Int? = nil
            if opener == "%" {
                var r = skipWhitespace(from: k)
                if matches("raw", at: r) {
                    r = skipWhitespace(from: r + 3)
                    if matches("-%}", at: r) {
                        rawBodyStart = skipWhitespace(from: r + 3)
                    } else if matches("%}", at: r) {
                        rawBodyStart = r + 2
                    }
                }
            }
            let dataEnd = stripData(i, j, sign: sign, lstripApplies: opener != "{", lineStarting: lineStarting)
            if dataEnd > i {
                tokens.append(JinjaToken(kind: .data(string(i, dataEnd)), pos: position(i)))
            }
            if let bodyStart = rawBodyStart {
                lineStarting = s[bodyStart - 1] == "\n"
                i = try lexRaw(from: bodyStart, tagStart: j, lineStarting: lineStarting, newLineStarting: &lineStarting)
                continue
            }
            switch opener {
            case "#":
                i = try lexComment(from: k, tagStart: j, lineStarting: &lineStarting)
            case "{":
                tokens.append(JinjaToken(kind: .variableBegin, pos: position(j)))
                i = try lexTag(from: k, tagStart: j, isBlock: false, lineStarting: &lineStarting)
            default:
                tokens.append(JinjaToken(kind: .blockBegin, pos: position(j)))
                i = try lexTag(from: k, tagStart: j, isBlock: true, lineStarting: &lineStarting)
            }
        }
        tokens.append(JinjaToken(kind: .eof, pos: position(n)))
        return tokens
    }

    private mutating func lexComment(from start: Int, tagStart: Int, lineStarting: inout Bool) throws -> Int {
        let n = s.count
        var m = start
        while m < n {
            if s[m] == "+" && matches("#}", at: m + 1) {
                lineStarting = false
                return m + 3
            }
            if s[m] == "-" && matches("#}", at: m + 1) {
                let end = skipWhitespace(from: m + 3)
                lineStarting = s[end - 1] == "\n"
                return end
            }
            if s[m] == "#" && m + 1 < n && s[m + 1] == "}" {
                var end = m + 2
                if trimBlocks && end < n && s[end] == "\n" { end += 1 }
                lineStarting = s[end - 1] == "\n"
                return end
            }
            m += 1
        }
        throw syntax("missing end of comment tag", at: tagStart)
    }

    private mutating func lexRaw(from start: Int, tagStart: Int, lineStarting: Bool,
                                 newLineStarting: inout Bool) throws -> Int {
        let n = s.count
        var m = start
        while m + 1 < n {
            if s[m] == "{" && s[m + 1] == "%" {
                var k = m + 2
                var sign: Unicode.Scalar? = nil
                if k < n && (s[k] == "-" || s[k] == "+") {
                    sign = s[k]
                    k += 1
                }
                var r = skipWhitespace(from: k)
                if matches("endraw", at: r) {
                    r = skipWhitespace(from: r + 6)
                    var end: Int? = nil
                    if matches("+%}", at: r) {
                        end = r + 3
                    } else if matches("-%}", at: r) {
                        end = skipWhitespace(from: r + 3)
                    } else if matches("%}", at: r) {
                        var e = r + 2
                        if trimBlocks && e < n && s[e] == "\n" { e += 1 }
                        end = e
                    }
                    if let end {
                        let dataEnd = stripData(start, m, sign: sign, lstripApplies: true, lineStarting: lineStarting)
                        if dataEnd > start {
                            tokens.append(JinjaToken(kind: .data(string(start, dataEnd)), pos: position(start)))
                        }
                        newLineStarting = s[end - 1] == "\n"
                        return end
                    }
                }
            }
            m += 1
        }
        throw syntax("missing end of raw directive", at: tagStart)
    }

    private mutating func lexTag(from start: Int, tagStart: Int, isBlock: Bool, lineStarting: inout Bool) throws -> Int {
        let n = s.count
        var i = start
        var balance: [Unicode.Scalar] = []
        while true {
            guard i < n else {
                throw syntax("unexpected end of template, missing '\(isBlock ? "%}" : "}}")'", at: tagStart)
            }
            if balance.isEmpty {
                var end: Int? = nil
                if isBlock {
                    if matches("+%}", at: i) {
                        end = i + 3
                    } else if matches("-%}", at: i) {
                        end = skipWhitespace(from: i + 3)
                    } else if matches("%}", at: i) {
                        var e = i + 2
                        if trimBlocks && e < n && s[e] == "\n" { e += 1 }
                        end = e
                    }
                } else {
                    if matches("-}}", at: i) {
                        end = skipWhitespace(from: i + 3)
                    } else if matches("}}", at: i) {
                        end = i + 2
                    }
                }
                if let end {
                    tokens.append(JinjaToken(kind: isBlock ? .blockEnd : .variableEnd, pos: position(i)))
                    lineStarting = s[end - 1] == "\n"
                    return end
                }
            }
            let c = s[i]
            if isPyWhitespace(c) {
                i += 1
                continue
            }
            if isDigit(c) {
                i = try lexNumber(at: i)
                continue
            }
            if isNameStart(c) {
                var j = i + 1
                while j < n && isNameContinue(s[j]) { j += 1 }
                tokens.append(JinjaToken(kind: .name(string(i, j)), pos: position(i)))
                i = j
                continue
            }
            if c == "'" || c == "\"" {
                i = try lexString(at: i)
                continue
            }
            // Operators: longest match first.
            let two: [String] = ["//", "**", "==", "!=", ">=", "<="]
            var matchedOp: String? = nil
            for op in two where matches(op, at: i) {
                matchedOp = op
                break
            }
            if matchedOp == nil && "+-/*%~[](){}><=.:|,;".unicodeScalars.contains(c) {
                matchedOp = String(Character(c))
            }
            guard let op = matchedOp else {
                throw syntax("unexpected character '\(Character(c))'", at: i)
            }
            switch op {
            case "(": balance.append(")")
            case "[": balance.append("]")
            case "{": balance.append("}")
            case ")", "]", "}":
                guard let expected = balance.popLast() else {
                    throw syntax("unexpected '\(op)'", at: i)
                }
                if String(Character(expected)) != op {
                    throw syntax("unexpected '\(op)', expected '\(Character(expected))'", at: i)
                }
            default: break
            }
            tokens.append(JinjaToken(kind: .op(op), pos: position(i)))
            i += op.unicodeScalars.count
        }
    }

    /// Digits with single underscores between them: (\d+_)*\d+
    private func scanDigits(from index: Int, digit: (Unicode.Scalar) -> Bool) -> Int {
        var j = index
        let n = s.count
        guard j < n, digit(s[j]) else { return index }
        while j < n {
            if digit(s[j]) {
                j += 1
            } else if s[j] == "_" && j + 1 < n && digit(s[j + 1]) {
                j += 1
            } else {
                break
            }
        }
        return j
    }

    private mutating func lexNumber(at start: Int) throws -> Int {
        let n = s.count
        let precededByDot = start > 0 && s[start - 1] == "."
        // Radix-prefixed integers.
        if s[start] == "0" && start + 1 < n {
            let p = s[start + 1]
            var radix = 0
            switch p {
            case "b", "B": radix = 2
            case "o", "O": radix = 8
            case "x", "X": radix = 16
            default: break
            }
            if radix != 0 {
                var j = start + 2
                var digits = ""
                while j < n {
                    let c = s[j]
                    if c == "_" && j + 1 < n && Int(String(Character(s[j + 1])), radix: radix) != nil {
                        j += 1
                        continue
                    }
                    if Int(String(Character(c)), radix: radix) != nil {
                        digits.unicodeScalars.append(c)
                        j += 1
                    } else {
                        break
                    }
                }
                if !digits.isEmpty {
                    guard let value = Int(digits, radix: radix) else {
                        throw syntax("integer literal too large", at: start)
                    }
                    tokens.append(JinjaToken(kind: .integer(value), pos: position(start)))
                    return j
                }
            }
        }
        let intEnd = scanDigits(from: start, digit: isDigit)
        var end = intEnd
        var isFloat = false
        if !precededByDot {
            if end + 1 < n && s[end] == "." && isDigit(s[end + 1]) {
                end = scanDigits(from: end + 1, digit: isDigit)
                isFloat = true
            }
            if end < n && (s[end] == "e" || s[end] == "E") {
                var k = end + 1
                if k < n && (s[k] == "+" || s[k] == "-") { k += 1 }
                if k < n && isDigit(s[k]) {
                    end = scanDigits(from: k, digit: isDigit)
                    isFloat = true
                }
            }
        }
        if isFloat {
            let text = string(start, end).replacingUnderscores()
            guard let value = Double(text) else { throw syntax("invalid float literal", at: start) }
            tokens.append(JinjaToken(kind: .float(value), pos: position(start)))
            return end
        }
        // Jinja's decimal integers: [1-9](_?\d)* or 0(_?0)*
        var j = start
        if s[start] == "0" {
            j = start + 1
            while j < n {
                if s[j] == "0" {
                    j += 1
                } else if s[j] == "_" && j + 1 < n && s[j + 1] == "0" {
                    j += 1
                } else {
                    break
                }
            }
        } else {
            j = intEnd
        }
        guard let value = Int(string(start, j).replacingUnderscores()) else {
            throw syntax("integer literal too large", at: start)
        }
        tokens.append(JinjaToken(kind: .integer(value), pos: position(start)))
        return j
    }

    private mutating func lexString(at start: Int) throws -> Int {
        let n = s.count
        let quote = s[start]
        var j = start + 1
        while j < n && s[j] != quote {
            j += s[j] == "\\" ? 2 : 1
        }
        guard j < n else { throw syntax("unterminated string literal", at: start) }
        let value = try unescape(from: start + 1, to: j, literalStart: start)
        tokens.append(JinjaToken(kind: .string(value), pos: position(start)))
        return j + 1
    }

    /// Python `unicode-escape` decoding, as Jinja applies to string literals.
    private func unescape(from: Int, to: Int, literalStart: Int) throws -> String {
        var out = String.UnicodeScalarView()
        var i = from
        func hexValue(_ count: Int, _ kind: String) throws -> UInt32 {
            var v: UInt32 = 0
            for k in 0..<count {
                let idx = i + 1 + k
                guard idx < to, let d = Int(String(Character(s[idx])), radix: 16) else {
                    throw syntax("truncated \\\(kind) escape in string literal", at: literalStart)
                }
                v = v * 16 + UInt32(d)
            }
            return v
        }
        while i < to {
            let c = s[i]
            guard c == "\\", i + 1 < to else {
                out.append(c)
                i += 1
                continue
            }
            let e = s[i + 1]
            switch e {
            case "\n": i += 2
            case "\\": out.append("\\"); i += 2
            case "'": out.append("'"); i += 2
            case "\"": out.append("\""); i += 2
            case "a": out.append(Unicode.Scalar(7)); i += 2
            case "b": out.append(Unicode.Scalar(8)); i += 2
            case "f": out.append(Unicode.Scalar(12)); i += 2
            case "n": out.append("\n"); i += 2
            case "r": out.append("\r"); i += 2
            case "t": out.append("\t"); i += 2
            case "v": out.append(Unicode.Scalar(11)); i += 2
            case "0"..."7":
                var v: UInt32 = 0
                var k = i + 1
                while k < to && k < i + 4, s[k].value >= 48 && s[k].value <= 55 {
                    v = v * 8 + (s[k].value - 48)
                    k += 1
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                i = k
            case "x", "u", "U":
                let count = e == "x" ? 2 : (e == "u" ? 4 : 8)
                i += 1
                let v = try hexValue(count, String(Character(e)))
                if v > 0x10FFFF {
                    throw syntax("illegal Unicode character in string literal", at: literalStart)
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                i += count + 1
            default:
                // Unknown escapes are kept verbatim. A non-ASCII character after a backslash comes
                // out in its backslashreplace form, as Jinja's ascii round trip produces.
                out.append("\\")
                if e.isASCII {
                    out.append(e)
                } else {
                    let hex = String(e.value, radix: 16)
                    let (prefix, width) = e.value < 0x100 ? ("x", 2) : (e.value < 0x10000 ? ("u", 4) : ("U", 8))
                    out.append(contentsOf: (prefix + String(repeating: "0", count: max(0, width - hex.count)) + hex).unicodeScalars)
                }
                i += 2
            }
        }
        return String(out)
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(unicodeScalars.filter { $0 != "_" }.map(Character.init))
    }
}
