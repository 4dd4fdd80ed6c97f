// Global functions, Python string/dict/list methods, Python math helpers and %-formatting.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Binds positional and keyword arguments to named parameters (Python-style), reporting
/// unexpected keywords or too many arguments. Missing parameters are nil.
func jinjaBindArgs(_ function: String, _ params: [String], _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
              pos: JinjaPos) throws -> [JinjaValue?] {
    func err(_ m: String) -> ChatTemplateError { .runtime(message: m, line: pos.line, column: pos.column) }
    if args.count > params.count {
        throw err("\(function)() takes at most \(params.count) argument(s) (\(args.count) given)")
    }
    var out = [JinjaValue?](repeating: nil, count: params.count)
    for (i, a) in args.enumerated() { out[i] = a }
    for (k, v) in kwargs {
        guard let idx = params.firstIndex(of: k) else {
            throw err("\(function)() got an unexpected keyword argument '\(k)'")
        }
        if out[idx] != nil { throw err("\(function)() got multiple values for argument '\(k)'") }
        out[idx] = v
    }
    return out
}

extension Optional where Wrapped == JinjaValue {
    /// Treats an explicit `none` like a missing argument (Python `None` defaults).
    var orNil: JinjaValue? {
        if case .none? = self { return nil }
        return self
    }
}

enum PyMath {
    static func mod(_ x: Double, _ y: Double) -> Double {
        var m = x.truncatingRemainder(dividingBy: y)
        if m != 0 {
            if (y < 0) != (m < 0) { m += y }
        } else {
            m = Double(signOf: y, magnitudeOf: 0)
        }
        return m
    }

    static func floorDiv(_ x: Double, _ y: Double) -> Double {
        var m = x.truncatingRemainder(dividingBy: y)
        var div = (x - m) / y
        if m != 0 {
            if (y < 0) != (m < 0) {
                m += y
                div -= 1
            }
        }
        if div != 0 {
            var f = div.rounded(.down)
            if div - f > 0.5 { f += 1 }
            return f
        }
        return Double(signOf: x / y, magnitudeOf: 0)
    }

    static func pow(_ x: Double, _ y: Double) -> Double {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        return cPow(x, y)
        #else
        return .nan
        #endif
    }

    /// C printf formatting of one argument.
    static func cFormat(_ spec: String, _ arg: CVarArg) -> String {
        var buffer = [CChar](repeating: 0, count: 128)
        var n = withVaList([arg]) { vsnprintf(&buffer, buffer.count, spec, $0) }
        if n < 0 { return "" }
        if Int(n) >= buffer.count {
            buffer = [CChar](repeating: 0, count: Int(n) + 1)
            n = withVaList([arg]) { vsnprintf(&buffer, buffer.count, spec, $0) }
        }
        return String(decoding: buffer.prefix(Int(max(n, 0))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Python's round(x, ndigits) for floats: correctly rounded, ties to even.
    static func round(_ x: Double, _ digits: Int) -> Double {
        if !x.isFinite { return x }
        if digits >= 0 {
            if digits > 330 { return x }
            return Double(cFormat("%.\(digits)f", x)) ?? x
        }
        if digits < -330 { return Double(signOf: x, magnitudeOf: 0) }
        let scale = cPow(10, Double(-digits))
        let r = (x / scale).rounded(.toNearestOrEven) * scale
        return r
    }
}

#if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
@inline(__always) private func cPow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
#endif

// MARK: - printf-style formatting (`"%s" % x`, `| format`)

enum JinjaPercentFormat {
    static func format(_ fmt: String, _ arg: JinjaValue, pos: JinjaPos, renderer: JinjaRenderer) throws -> String {
        switch arg {
        case let .tuple(items): return try format(fmt, items: items, mapping: nil, pos: pos, renderer: renderer)
        case let .object(o): return try format(fmt, items: [arg], mapping: o, pos: pos, renderer: renderer)
        default: return try format(fmt, items: [arg], mapping: nil, pos: pos, renderer: renderer)
        }
    }

    static func format(_ fmt: String, items: [JinjaValue], mapping: JinjaObject?, pos: JinjaPos,
                       renderer: JinjaRenderer) throws -> String {
        func err(_ m: String) -> ChatTemplateError { renderer.runtime(m, pos) }
        let s = Array(fmt.unicodeScalars)
        var out = ""
        var i = 0
        var next = 0
        while i < s.count {
            let c = s[i]
            if c != "%" {
                out.unicodeScalars.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < s.count else { throw err("incomplete format") }
            var key: String? = nil
            if s[i] == "(" {
                var j = i + 1
                while j < s.count && s[j] != ")" { j += 1 }
                guard j < s.count else { throw err("incomplete format key") }
                key = String(jinjaScalars: s[(i + 1)..<j])
                i = j + 1
            }
            var flags = ""
            while i < s.count, "-+ #0".unicodeScalars.contains(s[i]) {
                flags.unicodeScalars.append(s[i])
                i += 1
            }
            var width = ""
            while i < s.count, s[i].properties.numericType == .decimal, s[i].isASCII {
                width.unicodeScalars.append(s[i])
                i += 1
            }
            var precision: String? = nil
            if i < s.count, s[i] == "." {
                i += 1
                var p = ""
                while i < s.count, s[i].isASCII, s[i].value >= 48, s[i].value <= 57 {
                    p.unicodeScalars.append(s[i])
                    i += 1
                }
                precision = p.isEmpty ? "0" : p
            }
            while i < s.count, "hlL".unicodeScalars.contains(s[i]) { i += 1 }
            guard i < s.count else { throw err("incomplete format") }
            let type = s[i]
            i += 1
            if type == "%" {
                out += "%"
                continue
            }
            if let w = Int(width) { try renderer.checkCount(w) }
            if let p = precision, let pv = Int(p) { try renderer.checkCount(pv) }
            let value: JinjaValue
            if let key {
                guard let mapping else { throw err("format requires a mapping") }
                guard let v = mapping[key] else { throw err("KeyError: '\(key)'") }
                value = v
            } else {
                guard next < items.count else { throw err("not enough arguments for format string") }
                value = items[next]
                next += 1
            }
            let spec = "%" + flags + width + (precision.map { "." + $0 } ?? "")
            switch type {
            case "s", "r", "a":
                var text = type == "s" ? PyFormat.str(value) : PyFormat.repr(value)
                if let p = precision, let pv = Int(p) { text = String(jinjaScalars: text.unicodeScalars.prefix(pv)) }
                let pad = max(0, (Int(width) ?? 0) - text.unicodeScalars.count)
                let padding = String(repeating: " ", count: pad)
                out += flags.contains("-") ? text + padding : padding + text
            case "d", "i", "u":
                let n: Int
                switch value.asNumber {
                case let .int(x)?: n = x
                case let .double(d)?:
                    guard d.isFinite, abs(d) < 9.2e18 else { throw err("cannot convert float to integer") }
                    n = Int(d)
                default: throw err("%\(Character(type)) format: a real number is required, not \(value.typeName)")
                }
                out += PyMath.cFormat(spec + "ld", n)
            case "x", "X", "o":
                guard case let .int(n)? = value.asNumber else {
                    throw err("%\(Character(type)) format: an integer is required, not \(value.typeName)")
                }
                let body = PyMath.cFormat(spec.jinjaReplacing("+", "").jinjaReplacing(" ", "")
                                          + "l" + String(Character(type)), n.magnitude)
                out += (n < 0 ? "-" : "") + body
            case "f", "F", "e", "E", "g", "G":
                guard let x = value.asNumber else {
                    throw err("must be real number, not \(value.typeName)")
                }
                out += PyMath.cFormat(spec + String(Character(type)), x.doubleValue)
            case "c":
                if case let .int(n)? = value.asNumber, let u = Unicode.Scalar(UInt32(clamping: max(0, n))) {
                    out.unicodeScalars.append(u)
                } else if case let .string(t) = value, t.unicodeScalars.count == 1 {
                    out += t
                } else {
                    throw err("%c requires int or char")
                }
            default:
                throw err("unsupported format character '\(Character(type))'")
            }
            _ = try renderer.checkSize(out)
        }
        if mapping == nil && next < items.count {
            throw err("not all arguments converted during string formatting")
        }
        return out
    }
}

extension String {
    func jinjaReplacing(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty else { return self }
        return PyString.replace(self, target, replacement, count: -1, limit: Int.max)
    }
}

// MARK: - Python string algorithms (code point based)

enum PyString {
    static func find(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar], from: Int = 0, to: Int? = nil) -> Int {
        let end = to ?? hay.count
        if needle.isEmpty { return from <= end ? from : -1 }
        guard end - from >= needle.count else { return -1 }
        var i = from
        while i + needle.count <= end {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return -1
    }

    static func rfind(_ hay: [Unicode.Scalar], _ needle: [Unicode.Scalar], from: Int = 0, to: Int? = nil) -> Int {
        let end = to ?? hay.count
        if needle.isEmpty { return end >= from ? end : -1 }
        var i = end - needle.count
        while i >= from {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i -= 1
        }
        return -1
    }

    /// Python str.replace; stops early once the result exceeds `limit` scalars (the caller's
    /// size check then fails) so hostile inputs cannot balloon memory.
    static func replace(_ s: String, _ old: String, _ new: String, count: Int, limit: Int) -> String {
        let hay = Array(s.unicodeScalars)
        let needle = Array(old.unicodeScalars)
        let rep = Array(new.unicodeScalars)
        var out: [Unicode.Scalar] = []
        var done = 0
        if needle.isEmpty {
            for c in hay {
                if out.count > limit { break }
                if count < 0 || done < count {
                    out += rep
                    done += 1
                }
                out.append(c)
            }
            if count < 0 || done < count { out += rep }
            return String(jinjaScalars: out)
        }
        var i = 0
        while i < hay.count {
            if out.count > limit { break }
            if (count < 0 || done < count), i + needle.count <= hay.count,
               hay[i..<(i + needle.count)].elementsEqual(needle) {
                out += rep
                i += needle.count
                done += 1
            } else {
                out.append(hay[i])
                i += 1
            }
        }
        return String(jinjaScalars: out)
    }

    static func split(_ s: String, _ sep: String?, maxsplit: Int) -> [String] {
        let a = Array(s.unicodeScalars)
        var parts: [String] = []
        if let sep {
            let n = Array(sep.unicodeScalars)
            var start = 0
            var i = 0
            while i + n.count <= a.count {
                if (maxsplit < 0 || parts.count < maxsplit) && a[i..<(i + n.count)].elementsEqual(n) {
                    parts.append(String(jinjaScalars: a[start..<i]))
                    i += n.count
                    start = i
                } else {
                    i += 1
                }
            }
            parts.append(String(jinjaScalars: a[start...]))
            return parts
        }
        var i = 0
        while i < a.count {
            while i < a.count && isPyWhitespace(a[i]) { i += 1 }
            if i >= a.count { break }
            if maxsplit >= 0 && parts.count >= maxsplit {
                var end = a.count
                while end > i && isPyWhitespace(a[end - 1]) { end -= 1 }
                parts.append(String(jinjaScalars: a[i..<end]))
                break
            }
            var j = i
            while j < a.count && !isPyWhitespace(a[j]) { j += 1 }
            parts.append(String(jinjaScalars: a[i..<j]))
            i = j
        }
        return parts
    }

    static func rsplit(_ s: String, _ sep: String?, maxsplit: Int) -> [String] {
        if maxsplit < 0 { return split(s, sep, maxsplit: -1) }
        let a = Array(s.unicodeScalars)
        var parts: [String] = []
        if let sep {
            let n = Array(sep.unicodeScalars)
            var end = a.count
            var i = a.count - n.count
            while i >= 0 {
                if parts.count < maxsplit && a[i..<(i + n.count)].elementsEqual(n) {
                    parts.append(String(jinjaScalars: a[(i + n.count)..<end]))
                    end = i
                    i -= n.count
                } else {
                    i -= 1
                }
            }
            parts.append(String(jinjaScalars: a[0..<end]))
            return parts.reversed()
        }
        var j = a.count
        while j > 0 {
            while j > 0 && isPyWhitespace(a[j - 1]) { j -= 1 }
            if j == 0 { break }
            if parts.count >= maxsplit {
                var start = 0
                while start < j && isPyWhitespace(a[start]) { start += 1 }
                parts.append(String(jinjaScalars: a[start..<j]))
                break
            }
            var i = j
            while i > 0 && !isPyWhitespace(a[i - 1]) { i -= 1 }
            parts.append(String(jinjaScalars: a[i..<j]))
            j = i
        }
        return parts.reversed()
    }

    static func isLineBreak(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: return true
        default: return false
        }
    }

    static func splitlines(_ s: String, keepends: Bool) -> [String] {
        let a = Array(s.unicodeScalars)
        var out: [String] = []
        var start = 0
        var i = 0
        while i < a.count {
            if isLineBreak(a[i]) {
                var end = i + 1
                if a[i] == "\r" && i + 1 < a.count && a[i + 1] == "\n" { end += 1 }
                out.append(String(jinjaScalars: a[start..<(keepends ? end : i)]))
                start = end
                i = end
            } else {
                i += 1
            }
        }
        if start < a.count { out.append(String(jinjaScalars: a[start...])) }
        return out
    }

    static func upper(_ s: String) -> String { s.uppercased() }
    static func lower(_ s: String) -> String { s.lowercased() }

    static func titlecase(_ c: Unicode.Scalar) -> String { c.properties.titlecaseMapping }

    /// Python str.title().
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for c in s.unicodeScalars {
            if c.properties.isCased {
                out += previousCased ? c.properties.lowercaseMapping : c.properties.titlecaseMapping
                previousCased = true
            } else {
                out.unicodeScalars.append(c)
                previousCased = false
            }
        }
        return out
    }

    /// Python str.capitalize() (3.8+: first character title-cased, rest lower-cased).
    static func capitalize(_ s: String) -> String {
        var out = ""
        for (i, c) in s.unicodeScalars.enumerated() {
            out += i == 0 ? c.properties.titlecaseMapping : c.properties.lowercaseMapping
        }
        return out
    }

    /// Jinja's `title` filter: capitalize words split at whitespace, '-', and opening brackets.
    static func jinjaTitle(_ s: String) -> String {
        let a = Array(s.unicodeScalars)
        var out = ""
        var i = 0
        func isSep(_ c: Unicode.Scalar) -> Bool { isPyWhitespace(c) || "-({[<".unicodeScalars.contains(c) }
        while i < a.count {
            var j = i
            let sep = isSep(a[i])
            while j < a.count && isSep(a[j]) == sep { j += 1 }
            let chunk = a[i..<j]
            if let first = chunk.first {
                out += first.properties.uppercaseMapping
                for c in chunk.dropFirst() { out += c.properties.lowercaseMapping }
            }
            i = j
        }
        return out
    }
}

// MARK: - Global functions

enum JinjaGlobals {
    static let names: Set<String> = ["range", "namespace", "dict", "raise_exception", "strftime_now"]

    /// Jinja's sandbox limit on range().
    static let maxRange = 100_000

    static func call(_ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], pos: JinjaPos,
                     renderer r: JinjaRenderer) throws -> JinjaValue {
        switch name {
        case "range":
            if !kwargs.isEmpty { throw r.runtime("range() takes no keyword arguments", pos) }
            var ints: [Int] = []
            for a in args {
                guard case let .int(i)? = (try r.require(a, pos)).asNumber else {
                    throw r.runtime("'\(a.typeName)' object cannot be interpreted as an integer", pos)
                }
                ints.append(i)
            }
            var start = 0, stop = 0, step = 1
            switch ints.count {
            case 1: stop = ints[0]
            case 2: start = ints[0]; stop = ints[1]
            case 3: start = ints[0]; stop = ints[1]; step = ints[2]
            default: throw r.runtime("range expected 1 to 3 arguments, got \(ints.count)", pos)
            }
            if step == 0 { throw r.runtime("range() arg 3 must not be zero", pos) }
            let span = step > 0 ? stop.subtractingReportingOverflow(start) : start.subtractingReportingOverflow(stop)
            if span.overflow { throw r.runtime("range too big, maximum size for range is \(maxRange)", pos) }
            let mag = step.magnitude
            let count = span.partialValue <= 0 ? 0 : Int((UInt(span.partialValue) + mag - 1) / mag)
            if count > maxRange { throw r.runtime("range too big, maximum size for range is \(maxRange)", pos) }
            var out: [JinjaValue] = []
            out.reserveCapacity(count)
            var v = start
            for _ in 0..<count {
                out.append(.int(v))
                v = v &+ step
            }
            return .array(out)
        case "namespace", "dict":
            var o = JinjaObject()
            if args.count > 1 { throw r.runtime("\(name) expected at most 1 positional argument", pos) }
            if let first = args.first {
                switch first {
                case let .object(src): for (k, v) in src.entries { o.set(k, v) }
                case let .array(pairs), let .tuple(pairs):
                    for p in pairs {
                        guard let kv = p.sequenceItems, kv.count == 2 else {
                            throw r.runtime("\(name) sequence elements must be pairs", pos)
                        }
                        o.set(r.dictKey(kv[0]), kv[1])
                    }
                default: throw r.runtime("'\(first.typeName)' object is not iterable", pos)
                }
            }
            for (k, v) in kwargs { o.set(k, v) }
            if name == "dict" { return .object(o) }
            let ns = JinjaNamespace()
            ns.attrs = o
            return .namespace(ns)
        case "raise_exception":
            let message = args.first.map { PyFormat.str($0) } ?? ""
            throw ChatTemplateError.raised(message)
        case "strftime_now":
            let bound = try jinjaBindArgs("strftime_now", ["format"], args, kwargs, pos: pos)
            guard case let .string(fmt)? = bound[0] else {
                throw r.runtime("strftime_now() requires a format string", pos)
            }
            return .string(try r.checkSize(JinjaDateFormat.strftime(fmt, fixedTime: r.fixedTime)))
        default:
            throw r.runtime("'\(name)' is not callable", pos)
        }
    }
}

enum JinjaDateFormat {
    static func strftime(_ format: String, fixedTime: Int64?) -> String {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        var t = time_t(fixedTime ?? Int64(time(nil)))
        var parts = tm()
        if fixedTime != nil {
            gmtime_r(&t, &parts)
        } else {
            localtime_r(&t, &parts)
        }
        if format.isEmpty { return "" }
        var size = 256
        while size <= 1 << 16 {
            var buffer = [CChar](repeating: 0, count: size)
            let n = cStrftime(&buffer, size, format, &parts)
            if n > 0 {
                return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            size *= 4
        }
        return ""
        #else
        return ""
        #endif
    }
}

#if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
@inline(__always)
private func cStrftime(_ buffer: UnsafeMutablePointer<CChar>, _ size: Int, _ format: String,
                            _ parts: UnsafePointer<tm>) -> Int {
    strftime(buffer, size, format, parts)
}
#endif

// MARK: - Methods of str, dict and list

enum JinjaMethods {
    static let string: Set<String> = [
        "strip", "lstrip", "rstrip", "upper", "lower", "title", "capitalize", "swapcase", "startswith",
        "endswith", "split", "rsplit", "splitlines", "replace", "find", "rfind", "index", "rindex", "count",
        "join", "format", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower", "isnumeric",
        "isdecimal", "zfill", "center", "ljust", "rjust", "removeprefix", "removesuffix", "partition",
        "rpartition", "casefold", "expandtabs", "encode", "istitle",
    ]
    static let dict: Set<String> = [
        "items", "keys", "values", "get", "copy", "pop", "update", "setdefault", "clear", "popitem", "fromkeys",
    ]
    static let list: Set<String> = [
        "index", "count", "copy", "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear",
    ]

    static func call(_ receiver: JinjaValue, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                     pos: JinjaPos, renderer r: JinjaRenderer) throws -> JinjaValue {
        switch receiver {
        case let .string(s): return try stringMethod(s, name, args, kwargs, pos: pos, r)
        case let .object(o): return try dictMethod(o, name, args, kwargs, pos: pos, r)
        case let .array(a), let .tuple(a): return try listMethod(a, name, args, kwargs, pos: pos, r)
        default: throw r.runtime("'\(receiver.typeName)' object has no method '\(name)'", pos)
        }
    }

    private static func immutable(_ type: String, _ name: String, _ pos: JinjaPos, _ r: JinjaRenderer) -> ChatTemplateError {
        r.runtime("access to attribute '\(name)' of '\(type)' object is unsafe (templates are immutable)", pos)
    }

    private static func dictMethod(_ o: JinjaObject, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                                   pos: JinjaPos, _ r: JinjaRenderer) throws -> JinjaValue {
        switch name {
        case "items":
            _ = try jinjaBindArgs(name, [], args, kwargs, pos: pos)
            return .array(o.entries.map { .tuple([.string($0.0), $0.1]) })
        case "keys":
            _ = try jinjaBindArgs(name, [], args, kwargs, pos: pos)
            return .array(o.keys.map { .string($0) })
        case "values":
            _ = try jinjaBindArgs(name, [], args, kwargs, pos: pos)
            return .array(o.values)
        case "copy":
            _ = try jinjaBindArgs(name, [], args, kwargs, pos: pos)
            return .object(o)
        case "get":
            let b = try jinjaBindArgs(name, ["key", "default"], args, kwargs, pos: pos)
            guard let key = b[0] else { throw r.runtime("get expected at least 1 argument", pos) }
            return o[r.dictKey(key)] ?? b[1] ?? .none
        default:
            throw immutable("dict", name, pos, r)
        }
    }

    private static func listMethod(_ a: [JinjaValue], _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                                   pos: JinjaPos, _ r: JinjaRenderer) throws -> JinjaValue {
        switch name {
        case "index":
            let b = try jinjaBindArgs(name, ["value"], args, kwargs, pos: pos)
            guard let v = b[0] else { throw r.runtime("index expected 1 argument", pos) }
            guard let i = a.firstIndex(where: { PyCompare.equal($0, v) }) else {
                throw r.runtime("\(PyFormat.repr(v)) is not in list", pos)
            }
            return .int(i)
        case "count":
            let b = try jinjaBindArgs(name, ["value"], args, kwargs, pos: pos)
            guard let v = b[0] else { throw r.runtime("count expected 1 argument", pos) }
            return .int(a.filter { PyCompare.equal($0, v) }.count)
        case "copy":
            return .array(a)
        default:
            throw immutable("list", name, pos, r)
        }
    }

    private static func str(_ v: JinjaValue?, _ what: String, _ pos: JinjaPos, _ r: JinjaRenderer) throws -> String? {
        guard let v = v.orNil else { return nil }
        guard case let .string(s) = v else {
            throw r.runtime("\(what) must be str or None, not \(v.typeName)", pos)
        }
        return s
    }

    private static func int(_ v: JinjaValue?, _ what: String, _ pos: JinjaPos, _ r: JinjaRenderer) throws -> Int? {
        guard let v = v.orNil else { return nil }
        guard case let .int(i)? = v.asNumber else {
            throw r.runtime("\(what) must be an integer, not \(v.typeName)", pos)
        }
        return i
    }

    private static func stringMethod(_ s: String, _ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                                     pos: JinjaPos, _ r: JinjaRenderer) throws -> JinjaValue {
        func clampRange(_ start: JinjaValue?, _ end: JinjaValue?, _ count: Int) throws -> (Int, Int) {
            var a = try int(start, "slice index", pos, r) ?? 0
            var b = try int(end, "slice index", pos, r) ?? count
            if a < 0 { a = max(0, a + count) }
            if b < 0 { b = max(0, b + count) }
            return (min(a, count), min(b, count))
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            let b = try jinjaBindArgs(name, ["chars"], args, kwargs, pos: pos)
            let chars = try str(b[0], "\(name) arg", pos, r)
            return .string(s.pyStrip(chars, leading: name != "rstrip", trailing: name != "lstrip"))
        case "upper": return .string(PyString.upper(s))
        case "lower", "casefold": return .string(PyString.lower(s))
        case "title": return .string(PyString.title(s))
        case "capitalize": return .string(PyString.capitalize(s))
        case "swapcase":
            var out = ""
            for c in s.unicodeScalars {
                if c.properties.isUppercase {
                    out += c.properties.lowercaseMapping
                } else if c.properties.isLowercase {
                    out += c.properties.uppercaseMapping
                } else {
                    out.unicodeScalars.append(c)
                }
            }
            return .string(out)
        case "startswith", "endswith":
            let b = try jinjaBindArgs(name, ["prefix", "start", "end"], args, kwargs, pos: pos)
            let hay = Array(s.unicodeScalars)
            let (lo, hi) = try clampRange(b[1], b[2], hay.count)
            var candidates: [String] = []
            switch b[0] {
            case let .string(p)?: candidates = [p]
            case let .array(items)?, let .tuple(items)?:
                for item in items {
                    guard case let .string(p) = item else {
                        throw r.runtime("tuple for \(name) must only contain str", pos)
                    }
                    candidates.append(p)
                }
            default:
                throw r.runtime("\(name) first arg must be str or a tuple of str", pos)
            }
            if lo > hi { return .bool(false) }
            let window = hay[lo..<hi]
            for p in candidates {
                let n = Array(p.unicodeScalars)
                if n.count > window.count { continue }
                if name == "startswith" ? window.prefix(n.count).elementsEqual(n) : window.suffix(n.count).elementsEqual(n) {
                    return .bool(true)
                }
            }
            return .bool(false)
        case "split", "rsplit":
            let b = try jinjaBindArgs(name, ["sep", "maxsplit"], args, kwargs, pos: pos)
            let sep = try str(b[0], "sep", pos, r)
            if sep == "" { throw r.runtime("empty separator", pos) }
            let maxsplit = try int(b[1], "maxsplit", pos, r) ?? -1
            let parts = name == "split" ? PyString.split(s, sep, maxsplit: maxsplit)
                                        : PyString.rsplit(s, sep, maxsplit: maxsplit)
            return .array(parts.map { .string($0) })
        case "splitlines":
            let b = try jinjaBindArgs(name, ["keepends"], args, kwargs, pos: pos)
            return .array(PyString.splitlines(s, keepends: b[0]?.truthy ?? false).map { .string($0) })
        case "replace":
            let b = try jinjaBindArgs(name, ["old", "new", "count"], args, kwargs, pos: pos)
            guard let old = try str(b[0], "replace arg 1", pos, r), let new = try str(b[1], "replace arg 2", pos, r) else {
                throw r.runtime("replace expected 2 arguments", pos)
            }
            let count = try int(b[2], "count", pos, r) ?? -1
            return .string(try r.checkSize(PyString.replace(s, old, new, count: count, limit: r.limits.maxOutputBytes)))
        case "find", "rfind", "index", "rindex", "count":
            let b = try jinjaBindArgs(name, ["sub", "start", "end"], args, kwargs, pos: pos)
            guard let sub = try str(b[0], "\(name) arg", pos, r) else { throw r.runtime("\(name) expected a string", pos) }
            let hay = Array(s.unicodeScalars)
            let needle = Array(sub.unicodeScalars)
            let (lo, hi) = try clampRange(b[1], b[2], hay.count)
            if name == "count" {
                if lo > hi { return .int(0) }
                if needle.isEmpty { return .int(hi - lo + 1) }
                var n = 0
                var i = lo
                while true {
                    let f = PyString.find(hay, needle, from: i, to: hi)
                    if f < 0 { break }
                    n += 1
                    i = f + needle.count
                }
                return .int(n)
            }
            let found = lo > hi ? -1 : (name.hasPrefix("r") ? PyString.rfind(hay, needle, from: lo, to: hi)
                                                         : PyString.find(hay, needle, from: lo, to: hi))
            if found < 0 && name.hasSuffix("index") { throw r.runtime("substring not found", pos) }
            return .int(found)
        case "join":
            let b = try jinjaBindArgs(name, ["iterable"], args, kwargs, pos: pos)
            var out = ""
            for (i, item) in try r.iterate(b[0] ?? .array([]), pos).enumerated() {
                guard case let .string(p) = item else {
                    throw r.runtime("sequence item \(i): expected str instance, \(item.typeName) found", pos)
                }
                if i > 0 { out += s }
                out += p
                _ = try r.checkSize(out)
            }
            return .string(out)
        case "format":
            return .string(try r.checkSize(try braceFormat(s, args, kwargs, pos: pos, r)))
        case "isdigit", "isnumeric", "isdecimal":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil })
        case "isalpha":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(isPyWhitespace))
        case "isupper", "islower":
            let cased = s.unicodeScalars.filter { $0.properties.isCased }
            if cased.isEmpty { return .bool(false) }
            return .bool(cased.allSatisfy { name == "isupper" ? !$0.properties.isLowercase : !$0.properties.isUppercase })
        case "istitle":
            return .bool(!s.isEmpty && PyString.title(s) == s && s.unicodeScalars.contains { $0.properties.isCased })
        case "zfill", "center", "ljust", "rjust":
            let b = try jinjaBindArgs(name, name == "zfill" ? ["width"] : ["width", "fillchar"], args, kwargs, pos: pos)
            guard let width = try int(b[0], "width", pos, r) else { throw r.runtime("\(name) expected width", pos) }
            try r.checkCount(width)
            let fill = b.count > 1 ? (try str(b[1], "fillchar", pos, r) ?? " ") : "0"
            guard fill.unicodeScalars.count == 1 else {
                throw r.runtime("the fill character must be exactly one character long", pos)
            }
            let len = s.unicodeScalars.count
            if width <= len { return .string(s) }
            let pad = width - len
            switch name {
            case "ljust": return .string(s + String(repeating: fill, count: pad))
            case "rjust": return .string(String(repeating: fill, count: pad) + s)
            case "center":
                let left = pad / 2 + (pad & width & 1)
                return .string(String(repeating: fill, count: left) + s + String(repeating: fill, count: pad - left))
            default:
                var body = s
                var sign = ""
                if let f = s.unicodeScalars.first, f == "-" || f == "+" {
                    sign = String(f)
                    body = String(jinjaScalars: s.unicodeScalars.dropFirst())
                }
                return .string(sign + String(repeating: "0", count: pad) + body)
            }
        case "removeprefix", "removesuffix":
            let b = try jinjaBindArgs(name, ["affix"], args, kwargs, pos: pos)
            guard let affix = try str(b[0], "\(name) arg", pos, r) else { throw r.runtime("\(name) expected a string", pos) }
            let a = Array(s.unicodeScalars)
            let n = Array(affix.unicodeScalars)
            if n.isEmpty || n.count > a.count { return .string(s) }
            if name == "removeprefix" {
                return .string(a.prefix(n.count).elementsEqual(n) ? String(jinjaScalars: a.dropFirst(n.count)) : s)
            }
            return .string(a.suffix(n.count).elementsEqual(n) ? String(jinjaScalars: a.dropLast(n.count)) : s)
        case "partition", "rpartition":
            let b = try jinjaBindArgs(name, ["sep"], args, kwargs, pos: pos)
            guard let sep = try str(b[0], "sep", pos, r), !sep.isEmpty else { throw r.runtime("empty separator", pos) }
            let a = Array(s.unicodeScalars)
            let n = Array(sep.unicodeScalars)
            let f = name == "partition" ? PyString.find(a, n) : PyString.rfind(a, n)
            if f < 0 {
                return name == "partition" ? .tuple([.string(s), .string(""), .string("")])
                                           : .tuple([.string(""), .string(""), .string(s)])
            }
            return .tuple([.string(String(jinjaScalars: a[..<f])), .string(sep), .string(String(jinjaScalars: a[(f + n.count)...]))])
        case "expandtabs":
            let b = try jinjaBindArgs(name, ["tabsize"], args, kwargs, pos: pos)
            let size = try int(b[0], "tabsize", pos, r) ?? 8
            try r.checkCount(size)
            var out = ""
            var col = 0
            for c in s.unicodeScalars {
                if c == "\t" {
                    if size > 0 {
                        let n = size - col % size
                        out += String(repeating: " ", count: n)
                        col += n
                    }
                } else {
                    out.unicodeScalars.append(c)
                    col = (c == "\n" || c == "\r") ? 0 : col + 1
                }
                _ = try r.checkSize(out)
            }
            return .string(out)
        default:
            throw r.runtime("str.\(name)() is not supported", pos)
        }
    }

    /// `str.format` with `{}`, `{0}` and `{name}` fields (no format specs or conversions).
    private static func braceFormat(_ s: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], pos: JinjaPos,
                                    _ r: JinjaRenderer) throws -> String {
        let a = Array(s.unicodeScalars)
        var out = ""
        var i = 0
        var auto = 0
        while i < a.count {
            let c = a[i]
            if c == "{" {
                if i + 1 < a.count && a[i + 1] == "{" {
                    out += "{"
                    i += 2
                    continue
                }
                var j = i + 1
                while j < a.count && a[j] != "}" { j += 1 }
                guard j < a.count else { throw r.runtime("Single '{' encountered in format string", pos) }
                let field = String(jinjaScalars: a[(i + 1)..<j])
                if field.unicodeScalars.contains(where: { $0 == ":" || $0 == "!" || $0 == "." || $0 == "[" }) {
                    throw r.runtime("format specs, conversions and attribute fields are not supported", pos)
                }
                let value: JinjaValue
                if field.isEmpty {
                    guard auto < args.count else { throw r.runtime("Replacement index \(auto) out of range", pos) }
                    value = args[auto]
                    auto += 1
                } else if let idx = Int(field) {
                    guard idx >= 0 && idx < args.count else { throw r.runtime("Replacement index \(idx) out of range", pos) }
                    value = args[idx]
                } else {
                    guard let kv = kwargs.first(where: { $0.0 == field }) else { throw r.runtime("KeyError: '\(field)'", pos) }
                    value = kv.1
                }
                out += PyFormat.str(value)
                i = j + 1
            } else if c == "}" {
                guard i + 1 < a.count && a[i + 1] == "}" else {
                    throw r.runtime("Single '}' encountered in format string", pos)
                }
                out += "}"
                i += 2
            } else {
                out.unicodeScalars.append(c)
                i += 1
            }
        }
        return out
    }
}
