// JSON writing (Python json.dumps compatible) and reading (order-preserving).

enum JinjaJSONWriter {
    enum Failure: Error {
        case notSerializable(String)
    }

    /// Non-throwing entry for values known to be plain data.
    static func write(_ v: JinjaValue, into out: inout String, indent: String?, itemSeparator: String,
                      keySeparator: String, sortKeys: Bool, ensureASCII: Bool, level: Int) {
        _ = try? dump(v, into: &out, indent: indent, itemSeparator: itemSeparator, keySeparator: keySeparator,
                      sortKeys: sortKeys, ensureASCII: ensureASCII, level: level)
    }

    static func dump(_ v: JinjaValue, into out: inout String, indent: String?, itemSeparator: String,
                     keySeparator: String, sortKeys: Bool, ensureASCII: Bool, level: Int,
                     maxBytes: Int = Int.max) throws {
        if out.utf8.count > maxBytes { throw Failure.notSerializable("output too large") }
        if level > PyFormat.maxDepth { throw Failure.notSerializable("deeply nested value") }
        switch v {
        case .none: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d):
            if d.isNaN {
                out += "NaN"
            } else if d.isInfinite {
                out += d < 0 ? "-Infinity" : "Infinity"
            } else {
                out += PyFormat.float(d)
            }
        case let .string(s): writeString(s, into: &out, ensureASCII: ensureASCII)
        case let .array(items), let .tuple(items):
            if items.isEmpty {
                out += "[]"
                return
            }
            out += "["
            let (open, sep, close) = separators(indent: indent, item: itemSeparator, level: level)
            out += open
            for (i, item) in items.enumerated() {
                if i > 0 { out += sep }
                try dump(item, into: &out, indent: indent, itemSeparator: itemSeparator, keySeparator: keySeparator,
                         sortKeys: sortKeys, ensureASCII: ensureASCII, level: level + 1, maxBytes: maxBytes)
            }
            out += close
            out += "]"
        case let .object(o):
            try dumpObject(o.entries, into: &out, indent: indent, itemSeparator: itemSeparator,
                           keySeparator: keySeparator, sortKeys: sortKeys, ensureASCII: ensureASCII,
                           level: level, maxBytes: maxBytes)
        case .namespace:
            // Python's json cannot serialize a Namespace either.
            throw Failure.notSerializable("Namespace")
        case .undefined: throw Failure.notSerializable("Undefined")
        case .callable: throw Failure.notSerializable("function")
        case .loop: throw Failure.notSerializable("LoopContext")
        }
    }

    private static func dumpObject(_ entries: [(String, JinjaValue)], into out: inout String, indent: String?,
                                   itemSeparator: String, keySeparator: String, sortKeys: Bool, ensureASCII: Bool,
                                   level: Int, maxBytes: Int) throws {
        if entries.isEmpty {
            out += "{}"
            return
        }
        var items = entries
        if sortKeys {
            items.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) }
        }
        out += "{"
        let (open, sep, close) = separators(indent: indent, item: itemSeparator, level: level)
        out += open
        for (i, (k, item)) in items.enumerated() {
            if i > 0 { out += sep }
            writeString(k, into: &out, ensureASCII: ensureASCII)
            out += keySeparator
            try dump(item, into: &out, indent: indent, itemSeparator: itemSeparator, keySeparator: keySeparator,
                     sortKeys: sortKeys, ensureASCII: ensureASCII, level: level + 1, maxBytes: maxBytes)
        }
        out += close
        out += "}"
    }

    private static func separators(indent: String?, item: String, level: Int) -> (String, String, String) {
        guard let indent else { return ("", item, "") }
        let inner = "\n" + String(repeating: indent, count: level + 1)
        let outer = "\n" + String(repeating: indent, count: level)
        return (inner, item + inner, outer)
    }

    static func writeString(_ s: String, into out: inout String, ensureASCII: Bool) {
        out += "\""
        var view = String.UnicodeScalarView()
        func hex4(_ v: UInt32) {
            let h = String(v, radix: 16)
            view.append(contentsOf: ("\\u" + String(repeating: "0", count: max(0, 4 - h.count)) + h).unicodeScalars)
        }
        for c in s.unicodeScalars {
            switch c {
            case "\"": view.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": view.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": view.append(contentsOf: "\\n".unicodeScalars)
            case "\r": view.append(contentsOf: "\\r".unicodeScalars)
            case "\t": view.append(contentsOf: "\\t".unicodeScalars)
            case "\u{08}": view.append(contentsOf: "\\b".unicodeScalars)
            case "\u{0C}": view.append(contentsOf: "\\f".unicodeScalars)
            default:
                if c.value < 0x20 {
                    hex4(c.value)
                } else if ensureASCII && c.value > 0x7E {
                    if c.value >= 0x10000 {
                        let v = c.value - 0x10000
                        hex4(0xD800 + (v >> 10))
                        hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        hex4(c.value)
                    }
                } else {
                    view.append(c)
                }
            }
        }
        out += String(view)
        out += "\""
    }
}

/// Minimal strict JSON reader that keeps object key order.
struct JinjaJSONReader {
    private let s: [Unicode.Scalar]
    private var i = 0
    private var depth = 0

    init(text: String) { s = Array(text.unicodeScalars) }

    private func fail(_ message: String) -> ChatTemplateError {
        .invalidInput("JSON: \(message) at offset \(i)")
    }

    private mutating func skipSpace() {
        while i < s.count, s[i] == " " || s[i] == "\n" || s[i] == "\r" || s[i] == "\t" { i += 1 }
    }

    mutating func parseDocument() throws -> TemplateValue {
        let v = try parseValue()
        skipSpace()
        guard i == s.count else { throw fail("trailing characters") }
        return v
    }

    private mutating func literal(_ word: String, _ value: TemplateValue) throws -> TemplateValue {
        for c in word.unicodeScalars {
            guard i < s.count, s[i] == c else { throw fail("invalid literal") }
            i += 1
        }
        return value
    }

    private mutating func parseValue() throws -> TemplateValue {
        skipSpace()
        guard i < s.count else { throw fail("unexpected end") }
        switch s[i] {
        case "{":
            depth += 1
            defer { depth -= 1 }
            if depth > 512 { throw fail("nesting too deep") }
            i += 1
            var obj = TemplateObject()
            skipSpace()
            if i < s.count, s[i] == "}" {
                i += 1
                return .object(obj)
            }
            while true {
                skipSpace()
                guard i < s.count, s[i] == "\"" else { throw fail("expected string key") }
                let key = try parseString()
                skipSpace()
                guard i < s.count, s[i] == ":" else { throw fail("expected ':'") }
                i += 1
                obj[key] = try parseValue()
                skipSpace()
                guard i < s.count else { throw fail("unexpected end") }
                if s[i] == "," { i += 1; continue }
                if s[i] == "}" { i += 1; return .object(obj) }
                throw fail("expected ',' or '}'")
            }
        case "[":
            depth += 1
            defer { depth -= 1 }
            if depth > 512 { throw fail("nesting too deep") }
            i += 1
            var items: [TemplateValue] = []
            skipSpace()
            if i < s.count, s[i] == "]" {
                i += 1
                return .array(items)
            }
            while true {
                items.append(try parseValue())
                skipSpace()
                guard i < s.count else { throw fail("unexpected end") }
                if s[i] == "," { i += 1; continue }
                if s[i] == "]" { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case "\"": return .string(try parseString())
        case "t": return try literal("true", .bool(true))
        case "f": return try literal("false", .bool(false))
        case "n": return try literal("null", .none)
        default: return try parseNumber()
        }
    }

    private mutating func parseNumber() throws -> TemplateValue {
        let start = i
        var isInt = true
        if i < s.count, s[i] == "-" { i += 1 }
        func digits() -> Int {
            let st = i
            while i < s.count, s[i].value >= 48, s[i].value <= 57 { i += 1 }
            return i - st
        }
        guard digits() > 0 else { throw fail("invalid number") }
        if i < s.count, s[i] == "." {
            i += 1
            isInt = false
            guard digits() > 0 else { throw fail("invalid number") }
        }
        if i < s.count, s[i] == "e" || s[i] == "E" {
            i += 1
            isInt = false
            if i < s.count, s[i] == "+" || s[i] == "-" { i += 1 }
            guard digits() > 0 else { throw fail("invalid number") }
        }
        let text = String(jinjaScalars: s[start..<i])
        if isInt, let v = Int(text) { return .int(v) }
        guard let d = Double(text) else { throw fail("invalid number") }
        return .double(d)
    }

    private mutating func parseString() throws -> String {
        i += 1  // opening quote
        var out = String.UnicodeScalarView()
        func hex4() throws -> UInt32 {
            guard i + 4 <= s.count else { throw fail("bad \\u escape") }
            var v: UInt32 = 0
            for k in 0..<4 {
                guard let d = Int(String(Character(s[i + k])), radix: 16) else { throw fail("bad \\u escape") }
                v = v * 16 + UInt32(d)
            }
            i += 4
            return v
        }
        while true {
            guard i < s.count else { throw fail("unterminated string") }
            let c = s[i]
            i += 1
            if c == "\"" { break }
            if c.value < 0x20 { throw fail("control character in string") }
            if c != "\\" {
                out.append(c)
                continue
            }
            guard i < s.count else { throw fail("unterminated string") }
            let e = s[i]
            i += 1
            switch e {
            case "\"": out.append("\"")
            case "\\": out.append("\\")
            case "/": out.append("/")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "u":
                var v = try hex4()
                if v >= 0xD800 && v < 0xDC00, i + 1 < s.count, s[i] == "\\", s[i + 1] == "u" {
                    let save = i
                    i += 2
                    let low = try hex4()
                    if low >= 0xDC00 && low < 0xE000 {
                        v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        i = save
                    }
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default: throw fail("bad escape")
            }
        }
        return String(out)
    }
}
