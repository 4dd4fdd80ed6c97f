// Runtime values of the interpreter, with Python semantics for printing, truthiness and equality.

/// Insertion-ordered dictionary of runtime values.
struct JinjaObject {
    private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    init() {}

    subscript(key: String) -> JinjaValue? { storage[key] }

    mutating func set(_ key: String, _ value: JinjaValue) {
        if storage.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    var count: Int { keys.count }

    var entries: [(String, JinjaValue)] {
        keys.compactMap { k in storage[k].map { (k, $0) } }
    }

    var values: [JinjaValue] { keys.compactMap { storage[$0] } }
}

final class JinjaNamespace {
    var attrs = JinjaObject()
}

final class JinjaMacro {
    let def: JinjaMacroDef
    let scope: JinjaScope
    /// For `{% call %}` bodies: the caller is a macro whose name is "caller".
    init(def: JinjaMacroDef, scope: JinjaScope) {
        self.def = def
        self.scope = scope
    }
}

final class JinjaLoop {
    let items: [JinjaValue]
    let index0: Int
    init(items: [JinjaValue], index0: Int) {
        self.items = items
        self.index0 = index0
    }
}

indirect enum JinjaCallable {
    case global(String)
    case method(JinjaValue, String)
    case macro(JinjaMacro, caller: JinjaValue?)
    case cycle(Int)
}

enum JinjaValue {
    /// Jinja's Undefined; the string is the hint used in error messages.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    /// A Python tuple: behaves like a list but prints with parentheses and is not equal to one.
    case tuple([JinjaValue])
    case object(JinjaObject)
    case namespace(JinjaNamespace)
    case callable(JinjaCallable)
    case loop(JinjaLoop)

    init(_ t: TemplateValue) {
        switch t {
        case .none: self = .none
        case let .bool(b): self = .bool(b)
        case let .int(i): self = .int(i)
        case let .double(d): self = .double(d)
        case let .string(s): self = .string(s)
        case let .array(a): self = .array(a.map(JinjaValue.init))
        case let .object(o):
            var v = JinjaObject()
            for (k, x) in o { v.set(k, JinjaValue(x)) }
            self = .object(v)
        }
    }

    /// Converts with a depth guard so hostile input cannot exhaust the stack.
    static func checked(_ t: TemplateValue, depth: Int = 0, limit: Int) throws -> JinjaValue {
        if depth > limit { throw ChatTemplateError.recursionLimitExceeded(limit: limit) }
        switch t {
        case let .array(a):
            return .array(try a.map { try checked($0, depth: depth + 1, limit: limit) })
        case let .object(o):
            var v = JinjaObject()
            for (k, x) in o { v.set(k, try checked(x, depth: depth + 1, limit: limit)) }
            return .object(v)
        default:
            return JinjaValue(t)
        }
    }

    /// Items of a list or tuple.
    var sequenceItems: [JinjaValue]? {
        switch self {
        case let .array(a), let .tuple(a): return a
        default: return nil
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    var isNone: Bool {
        if case .none = self { return true }
        return false
    }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .double(d): return d != 0
        case let .string(s): return !s.isEmpty
        case let .array(a), let .tuple(a): return !a.isEmpty
        case let .object(o): return o.count > 0
        case .namespace, .callable, .loop: return true
        }
    }

    /// Python type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .tuple: return "tuple"
        case .object: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        case .loop: return "LoopContext"
        }
    }

    /// Numeric view (bool counts as int, like Python).
    var asNumber: JinjaValue? {
        switch self {
        case let .bool(b): return .int(b ? 1 : 0)
        case .int, .double: return self
        default: return nil
        }
    }
}

// MARK: - Python-style text conversion

enum PyFormat {
    /// `repr(float)` / `str(float)` in Python 3.
    static func float(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description gives the shortest round-tripping digits; re-layout them the way
        // Python's repr does (scientific when the exponent is < -4 or >= 16).
        var text = "\(d)"
        var negative = false
        if text.hasPrefix("-") {
            negative = true
            text.removeFirst()
        }
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        var intPart = Substring(mantissa)
        var fracPart = Substring("")
        if let dot = mantissa.firstIndex(of: ".") {
            intPart = mantissa[..<dot]
            fracPart = mantissa[mantissa.index(after: dot)...]
        }
        var digits = Array(intPart + fracPart)
        var decpt = intPart.count + exponent
        while let f = digits.first, f == "0" {
            digits.removeFirst()
            decpt -= 1
        }
        while let l = digits.last, l == "0" { digits.removeLast() }
        if digits.isEmpty { return negative ? "-0.0" : "0.0" }
        var out = negative ? "-" : ""
        if decpt > -4 && decpt <= 16 {
            if decpt <= 0 {
                out += "0." + String(repeating: "0", count: -decpt) + String(digits)
            } else if decpt >= digits.count {
                out += String(digits) + String(repeating: "0", count: decpt - digits.count) + ".0"
            } else {
                out += String(digits[..<decpt]) + "." + String(digits[decpt...])
            }
        } else {
            out += String(digits[0])
            if digits.count > 1 { out += "." + String(digits[1...]) }
            let x = decpt - 1
            let mag = String(abs(x))
            out += "e" + (x < 0 ? "-" : "+") + (mag.count < 2 ? "0" + mag : mag)
        }
        return out
    }

    /// `str(value)` as Jinja prints it.
    static func str(_ v: JinjaValue) -> String {
        switch v {
        case .undefined: return ""
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .double(d): return float(d)
        case let .string(s): return s
        case .array, .tuple, .object: return repr(v)
        case let .namespace(ns): return "<Namespace " + repr(.object(ns.attrs)) + ">"
        case .callable: return "<function>"
        case .loop: return "<LoopContext>"
        }
    }

    /// `repr(value)`.
    /// Nesting beyond this depth is elided ("...") instead of recursing further.
    static let maxDepth = 512

    /// Containers stop printing after this many bytes (the output limit then trips).
    static let maxReprBytes = 1 << 26

    static func repr(_ v: JinjaValue) -> String {
        var out = ""
        repr(v, into: &out, depth: 0)
        return out
    }

    private static func repr(_ v: JinjaValue, into out: inout String, depth: Int) {
        if depth > maxDepth || out.utf8.count > maxReprBytes {
            out += "..."
            return
        }
        func items(_ a: [JinjaValue], _ open: String, _ close: String) {
            out += open
            for (i, x) in a.enumerated() {
                if i > 0 { out += ", " }
                repr(x, into: &out, depth: depth + 1)
                if out.utf8.count > maxReprBytes { break }
            }
            out += close
        }
        switch v {
        case .undefined: out += "Undefined"
        case let .string(s): out += reprString(s)
        case let .array(a): items(a, "[", "]")
        case let .tuple(a): items(a, "(", a.count == 1 ? ",)" : ")")
        case let .object(o):
            out += "{"
            for (i, (k, x)) in o.entries.enumerated() {
                if i > 0 { out += ", " }
                out += reprString(k) + ": "
                repr(x, into: &out, depth: depth + 1)
                if out.utf8.count > maxReprBytes { break }
            }
            out += "}"
        default: out += str(v)
        }
    }

    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        if c == " " { return true }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator,
             .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    static func reprString(_ s: String) -> String {
        let hasSingle = s.unicodeScalars.contains("'")
        let hasDouble = s.unicodeScalars.contains("\"")
        let quote: Unicode.Scalar = (hasSingle && !hasDouble) ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            default:
                if c == quote {
                    out.append("\\")
                    out.append(c)
                } else if isPrintable(c) {
                    out.append(c)
                } else {
                    let hex = String(c.value, radix: 16)
                    let (prefix, width) = c.value < 0x100 ? ("\\x", 2) : (c.value < 0x10000 ? ("\\u", 4) : ("\\U", 8))
                    out.append(contentsOf: (prefix + String(repeating: "0", count: max(0, width - hex.count)) + hex).unicodeScalars)
                }
            }
        }
        out.append(quote)
        return String(out)
    }
}

// MARK: - Python comparisons

enum PyCompare {
    /// Python `==`.
    static func equal(_ a: JinjaValue, _ b: JinjaValue, depth: Int = 0) -> Bool {
        if depth > PyFormat.maxDepth { return false }
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(x), .string(y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case let (.array(x), .array(y)), let (.tuple(x), .tuple(y)):
            return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1, depth: depth + 1) }
        case let (.object(x), .object(y)):
            guard x.count == y.count else { return false }
            for (k, v) in x.entries {
                guard let w = y[k], equal(v, w, depth: depth + 1) else { return false }
            }
            return true
        case let (.namespace(x), .namespace(y)): return x === y
        case let (.loop(x), .loop(y)): return x === y
        default:
            if let x = a.asNumber, let y = b.asNumber {
                switch (x, y) {
                case let (.int(i), .int(j)): return i == j
                case let (.int(i), .double(d)), let (.double(d), .int(i)): return Double(exactly: i).map { $0 == d } ?? false
                case let (.double(c), .double(d)): return c == d
                default: return false
                }
            }
            return false
        }
    }

    /// Python `<` ordering; nil when the types are not orderable.
    static func less(_ a: JinjaValue, _ b: JinjaValue, depth: Int = 0) -> Bool? {
        if depth > PyFormat.maxDepth { return nil }
        switch (a, b) {
        case let (.string(x), .string(y)):
            return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars)
        case let (.array(x), .array(y)), let (.tuple(x), .tuple(y)):
            for (p, q) in zip(x, y) where !equal(p, q, depth: depth + 1) {
                return less(p, q, depth: depth + 1)
            }
            return x.count < y.count
        default:
            if let x = a.asNumber, let y = b.asNumber {
                switch (x, y) {
                case let (.int(i), .int(j)): return i < j
                case let (.int(i), .double(d)): return Double(i) < d
                case let (.double(d), .int(i)): return d < Double(i)
                case let (.double(c), .double(d)): return c < d
                default: return nil
                }
            }
            return nil
        }
    }
}

// MARK: - String helpers (Python indexing is by code point)

extension String {
    init(jinjaScalars scalars: some Sequence<Unicode.Scalar>) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self = String(view)
    }

    func pyStrip(_ chars: String?, leading: Bool, trailing: Bool) -> String {
        let set: Set<Unicode.Scalar>? = chars.map { Set($0.unicodeScalars) }
        let strip: (Unicode.Scalar) -> Bool = { c in set.map { $0.contains(c) } ?? isPyWhitespace(c) }
        let scalars = Array(unicodeScalars)
        var lo = 0
        var hi = scalars.count
        if leading { while lo < hi && strip(scalars[lo]) { lo += 1 } }
        if trailing { while hi > lo && strip(scalars[hi - 1]) { hi -= 1 } }
        return String(jinjaScalars: scalars[lo..<hi])
    }
}
