// Jinja filters (HF's `tojson` override included) and tests.

enum JinjaFilters {
    static let known: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last", "length", "list",
        "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
        "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper",
        "wordcount",
    ]

    static func apply(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                      pos: JinjaPos, renderer r: JinjaRenderer) throws -> JinjaValue {
        func bind(_ params: [String]) throws -> [JinjaValue?] {
            try jinjaBindArgs(name, params, args, kwargs, pos: pos)
        }
        func err(_ m: String) -> ChatTemplateError { r.runtime(m, pos) }
        func text(_ v: JinjaValue) -> String { PyFormat.str(v) }

        switch name {
        case "abs":
            _ = try bind([])
            switch (try r.require(value, pos)).asNumber {
            case let .int(i)?:
                if i == Int.min { throw err("integer overflow") }
                return .int(abs(i))
            case let .double(d)?: return .double(abs(d))
            default: throw err("bad operand type for abs(): '\(value.typeName)'")
            }

        case "attr":
            let b = try bind(["name"])
            let attrName = text(b[0] ?? .string(""))
            switch value {
            case .undefined(let hint): throw r.undefinedError(hint, pos)
            case .object:
                if JinjaMethods.dict.contains(attrName) { return .callable(.method(value, attrName)) }
                return .undefined("'dict object' has no attribute '\(attrName)'")
            default: return try r.getAttr(value, attrName, pos)
            }

        case "batch":
            let b = try bind(["linecount", "fill_with"])
            guard case let .int(size)? = b[0]?.asNumber, size > 0 else { throw err("batch size must be a positive integer") }
            let items = try r.iterate(value, pos)
            var out: [JinjaValue] = []
            var i = 0
            while i < items.count {
                var chunk = Array(items[i..<min(i + size, items.count)])
                if chunk.count < size, let fill = b[1].orNil {
                    chunk += Array(repeating: fill, count: size - chunk.count)
                }
                out.append(.array(chunk))
                i += size
            }
            return .array(out)

        case "capitalize":
            _ = try bind([])
            return .string(PyString.capitalize(text(value)))

        case "center":
            let b = try bind(["width"])
            let width: Int
            if let w = b[0] {
                guard case let .int(x)? = w.asNumber else { throw err("width must be an integer") }
                width = x
            } else {
                width = 80
            }
            return try JinjaMethods.call(.string(text(value)), "center", [.int(width)], [], pos: pos, renderer: r)

        case "count", "length":
            _ = try bind([])
            switch value {
            case .undefined: return .int(0)
            case let .string(s): return .int(s.unicodeScalars.count)
            case let .array(a), let .tuple(a): return .int(a.count)
            case let .object(o): return .int(o.count)
            default: throw err("object of type '\(value.typeName)' has no len()")
            }

        case "d", "default":
            let b = try bind(["default_value", "boolean"])
            let fallback = b[0] ?? .string("")
            if value.isUndefined || ((b[1]?.truthy ?? false) && !value.truthy) { return fallback }
            return value

        case "dictsort":
            let b = try bind(["case_sensitive", "by", "reverse"])
            guard case let .object(o) = try r.require(value, pos) else { throw err("dictsort requires a mapping") }
            let caseSensitive = b[0]?.truthy ?? false
            let byValue: Bool
            switch b[1] {
            case nil, .string("key")?: byValue = false
            case .string("value")?: byValue = true
            default: throw err("You can only sort by either \"key\" or \"value\"")
            }
            let pairs = o.entries
            let sorted = try stableSort(pairs, reverse: b[2]?.truthy ?? false, pos: pos, r) { pair in
                let k = byValue ? pair.1 : JinjaValue.string(pair.0)
                return caseSensitive ? k : ignoreCase(k)
            }
            return .array(sorted.map { .tuple([.string($0.0), $0.1]) })

        case "e", "escape", "forceescape":
            _ = try bind([])
            var out = ""
            for c in text(value).unicodeScalars {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(c)
                }
            }
            return .string(try r.checkSize(out))

        case "first", "last":
            _ = try bind([])
            let items = try r.iterate(value, pos)
            guard let item = name == "first" ? items.first : items.last else {
                return .undefined("No \(name) item, sequence was empty.")
            }
            return item

        case "float":
            let b = try bind(["default"])
            let fallback = b[0] ?? .double(0)
            switch value {
            case let .bool(x): return .double(x ? 1 : 0)
            case let .int(i): return .double(Double(i))
            case .double: return value
            case let .string(s):
                return PyNumber.parseFloat(s).map { .double($0) } ?? fallback
            default: return fallback
            }

        case "format":
            if !args.isEmpty && !kwargs.isEmpty { throw err("can't handle positional and keyword arguments at the same time") }
            var mapping: JinjaObject? = nil
            if !kwargs.isEmpty {
                var o = JinjaObject()
                for (k, v) in kwargs { o.set(k, v) }
                mapping = o
            }
            return .string(try JinjaPercentFormat.format(text(value), items: args, mapping: mapping, pos: pos, renderer: r))

        case "indent":
            let b = try bind(["width", "first", "blank"])
            var indention = "    "
            switch b[0] {
            case nil: break
            case let .string(s)?: indention = s
            case let v?:
                guard case let .int(w)? = v.asNumber else { throw err("indent width must be int or str") }
                try r.checkCount(w)
                indention = String(repeating: " ", count: max(0, w))
            }
            let first = b[1]?.truthy ?? false
            let blank = b[2]?.truthy ?? false
            guard case let .string(source) = try r.require(value, pos) else {
                throw err("indent expects a string, not \(value.typeName)")
            }
            let s = source + "\n"
            let lines = PyString.splitlines(s, keepends: false)
            let (extra, overflow) = lines.count.multipliedReportingOverflow(by: indention.utf8.count)
            if overflow { throw ChatTemplateError.outputLimitExceeded(limit: r.limits.maxOutputBytes) }
            try r.checkCount(s.utf8.count + extra)
            var rv: String
            if blank {
                rv = lines.joined(separator: "\n" + indention)
            } else {
                rv = lines.first ?? ""
                let rest = lines.dropFirst()
                if !rest.isEmpty {
                    rv += "\n" + rest.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n")
                }
            }
            if first { rv = indention + rv }
            return .string(try r.checkSize(rv))

        case "int":
            let b = try bind(["default", "base"])
            let fallback = b[0] ?? .int(0)
            var base = 10
            if let bv = b[1] {
                guard case let .int(x)? = bv.asNumber else { throw err("base must be an integer") }
                base = x
            }
            switch value {
            case let .bool(x): return .int(x ? 1 : 0)
            case .int: return value
            case let .double(d): return PyNumber.truncate(d).map { .int($0) } ?? fallback
            case let .string(s):
                if let i = PyNumber.parseInt(s, base: base) { return .int(i) }
                if let d = PyNumber.parseFloat(s), let i = PyNumber.truncate(d) { return .int(i) }
                return fallback
            case let .undefined(hint): throw r.undefinedError(hint, pos)
            default: return fallback
            }

        case "items":
            _ = try bind([])
            switch value {
            case .undefined: return .array([])
            case let .object(o): return .array(o.entries.map { .tuple([.string($0.0), $0.1]) })
            default: throw err("Can only get item pairs from a mapping.")
            }

        case "join":
            let b = try bind(["d", "attribute"])
            let sep = text(b[0] ?? .string(""))
            var items = try r.iterate(value, pos)
            if let attribute = b[1].orNil {
                let getter = try attributeGetter(attribute, pos: pos, r)
                items = try items.map(getter)
            }
            var out = ""
            for (i, item) in items.enumerated() {
                if i > 0 { out += sep }
                out += text(item)
                _ = try r.checkSize(out)
            }
            return .string(out)

        case "list":
            _ = try bind([])
            return .array(try r.iterate(value, pos))

        case "lower":
            _ = try bind([])
            return .string(PyString.lower(text(value)))

        case "upper":
            _ = try bind([])
            return .string(PyString.upper(text(value)))

        case "map":
            // Jinja's map/select family yields nothing for falsy input (None, 0, "").
            let items = value.truthy ? try r.iterate(value, pos) : []
            if args.isEmpty, let attrKw = kwargs.first(where: { $0.0 == "attribute" }) {
                for (k, _) in kwargs where k != "attribute" && k != "default" {
                    throw err("Unexpected keyword argument '\(k)'")
                }
                let getter = try attributeGetter(attrKw.1, pos: pos, r)
                let fallback = kwargs.first(where: { $0.0 == "default" })?.1
                return .array(try items.map { item in
                    let v = try getter(item)
                    if v.isUndefined, let fallback { return fallback }
                    return v
                })
            }
            guard case let .string(filterName)? = args.first else { throw err("map requires a filter name or attribute=") }
            guard known.contains(filterName) else { throw ChatTemplateError.unknownFilter(name: filterName, line: pos.line, column: pos.column) }
            let rest = Array(args.dropFirst())
            return .array(try items.map { try r.charge(try apply(filterName, $0, rest, kwargs, pos: pos, renderer: r)) })

        case "max", "min":
            let b = try bind(["case_sensitive", "attribute"])
            let caseSensitive = b[0]?.truthy ?? false
            let items = try r.iterate(value, pos)
            let getter = try b[1].orNil.map { try attributeGetter($0, pos: pos, r) }
            guard !items.isEmpty else {
                return .undefined("No \(name == "max" ? "largest" : "smallest") item, sequence was empty.")
            }
            var best = items[0]
            var bestKey = try keyOf(best, getter, caseSensitive)
            for item in items.dropFirst() {
                let k = try keyOf(item, getter, caseSensitive)
                guard let less = name == "max" ? PyCompare.less(bestKey, k) : PyCompare.less(k, bestKey) else {
                    throw err("'<' not supported between instances of '\(k.typeName)' and '\(bestKey.typeName)'")
                }
                if less {
                    best = item
                    bestKey = k
                }
            }
            return best

        case "reject", "select", "rejectattr", "selectattr":
            let items = value.truthy ? try r.iterate(value, pos) : []
            var rest = args
            var getter: ((JinjaValue) throws -> JinjaValue)? = nil
            if name.hasSuffix("attr") {
                guard !rest.isEmpty else { throw err("Missing parameter for attribute name") }
                getter = try attributeGetter(rest.removeFirst(), pos: pos, r)
            }
            var testName: String? = nil
            if !rest.isEmpty {
                guard case let .string(t) = rest.removeFirst() else { throw err("test name must be a string") }
                guard JinjaTests.known.contains(t) else { throw ChatTemplateError.unknownTest(name: t, line: pos.line, column: pos.column) }
                testName = t
            }
            let keep = name.hasPrefix("select")
            var out: [JinjaValue] = []
            for item in items {
                let subject = try getter.map { try $0(item) } ?? item
                let passed = try testName.map { try JinjaTests.run($0, subject, rest, kwargs, pos: pos, renderer: r) } ?? subject.truthy
                if passed == keep { out.append(item) }
            }
            return .array(out)

        case "replace":
            let b = try bind(["old", "new", "count"])
            let count: Int
            if let c = b[2].orNil {
                guard case let .int(x)? = c.asNumber else { throw err("count must be an integer") }
                count = x
            } else {
                count = -1
            }
            return .string(try r.checkSize(PyString.replace(text(value), text(b[0] ?? .string("")),
                                                            text(b[1] ?? .string("")), count: count,
                                                            limit: r.limits.maxOutputBytes)))

        case "reverse":
            _ = try bind([])
            if case let .string(s) = value { return .string(String(jinjaScalars: s.unicodeScalars.reversed())) }
            return .array(try r.iterate(try r.require(value, pos), pos).reversed())

        case "round":
            let b = try bind(["precision", "method"])
            var precision = 0
            if let p = b[0] {
                guard case let .int(x)? = p.asNumber else { throw err("precision must be an integer") }
                precision = x
            }
            let method = b[1].map(text) ?? "common"
            guard ["common", "ceil", "floor"].contains(method) else {
                throw err("method must be common, ceil or floor")
            }
            guard let number = (try r.require(value, pos)).asNumber else {
                throw err("type \(value.typeName) doesn't define __round__ method")
            }
            if method == "common" {
                switch number {
                case let .int(i):
                    if precision >= 0 { return .int(i) }
                    if precision < -18 { return .int(0) }
                    var scale = 1
                    for _ in 0..<(-precision) { scale *= 10 }
                    var q = i / scale
                    let rem = i - q * scale
                    let twice = abs(rem) * 2
                    if twice > scale || (twice == scale && q % 2 != 0) { q += rem < 0 ? -1 : 1 }
                    let (res, o) = q.multipliedReportingOverflow(by: scale)
                    if o { throw err("integer overflow") }
                    return .int(res)
                default:
                    return .double(PyMath.round(number.doubleValue, precision))
                }
            }
            let scale = PyMath.pow(10, Double(precision))
            let scaled = number.doubleValue * scale
            return .double((method == "ceil" ? scaled.rounded(.up) : scaled.rounded(.down)) / scale)

        case "safe", "string":
            _ = try bind([])
            return .string(text(value))

        case "sort":
            let b = try bind(["reverse", "case_sensitive", "attribute"])
            let caseSensitive = b[1]?.truthy ?? false
            let items = try r.iterate(value, pos)
            let getter = try b[2].orNil.map { try attributeGetter($0, pos: pos, r) }
            return .array(try stableSort(items, reverse: b[0]?.truthy ?? false, pos: pos, r) { item in
                try keyOf(item, getter, caseSensitive)
            })

        case "sum":
            let b = try bind(["attribute", "start"])
            var total = b[1] ?? .int(0)
            let getter = try b[0].orNil.map { try attributeGetter($0, pos: pos, r) }
            for item in try r.iterate(value, pos) {
                total = try r.arithmetic(.add, total, try getter.map { try $0(item) } ?? item, pos)
            }
            return total

        case "title":
            _ = try bind([])
            return .string(PyString.jinjaTitle(text(value)))

        case "tojson":
            let b = try bind(["ensure_ascii", "indent", "separators", "sort_keys"])
            var indent: String? = nil
            switch b[1].orNil {
            case nil: break
            case let .string(s)?: indent = s
            case let v?:
                guard case let .int(w)? = v.asNumber else { throw err("indent must be int or str") }
                try r.checkCount(w)
                indent = String(repeating: " ", count: max(0, w))
            }
            var itemSep = indent == nil ? ", " : ","
            var keySep = ": "
            if let seps = b[2].orNil {
                guard let pair = seps.sequenceItems, pair.count == 2,
                      case let .string(i) = pair[0], case let .string(k) = pair[1] else {
                    throw err("separators must be a (item_separator, key_separator) pair")
                }
                itemSep = i
                keySep = k
            }
            var out = ""
            do {
                try JinjaJSONWriter.dump(value, into: &out, indent: indent, itemSeparator: itemSep, keySeparator: keySep,
                                    sortKeys: b[3]?.truthy ?? false, ensureASCII: b[0]?.truthy ?? false, level: 0,
                                    maxBytes: r.limits.maxOutputBytes)
            } catch JinjaJSONWriter.Failure.notSerializable(let what) {
                if what == "output too large" { throw ChatTemplateError.outputLimitExceeded(limit: r.limits.maxOutputBytes) }
                if case let .undefined(hint) = value { throw r.undefinedError(hint, pos) }
                throw err("Object of type \(what) is not JSON serializable")
            }
            return .string(try r.checkSize(out))

        case "trim":
            let b = try bind(["chars"])
            var chars: String? = nil
            if let c = b[0].orNil { chars = text(c) }
            return .string(text(value).pyStrip(chars, leading: true, trailing: true))

        case "truncate":
            let b = try bind(["length", "killwords", "end", "leeway"])
            var length = 255
            if let l = b[0] {
                guard case let .int(x)? = l.asNumber else { throw err("length must be an integer") }
                length = x
            }
            let killwords = b[1]?.truthy ?? false
            let end = Array(text(b[2] ?? .string("...")).unicodeScalars)
            var leeway = 5
            if let lw = b[3].orNil {
                guard case let .int(x)? = lw.asNumber else { throw err("leeway must be an integer") }
                leeway = x
            }
            guard length >= end.count else { throw err("expected length >= \(end.count), got \(length)") }
            guard leeway >= 0 else { throw err("expected leeway >= 0, got \(leeway)") }
            switch value {
            case .string, .undefined: break
            case let .array(a), let .tuple(a):
                if a.count <= length + leeway { return value }
                throw err("truncate expects a string")
            case let .object(o):
                if o.count <= length + leeway { return value }
                throw err("truncate expects a string")
            default:
                throw err("object of type '\(value.typeName)' has no len()")
            }
            let s = Array(text(value).unicodeScalars)
            if s.count <= length + leeway { return .string(text(value)) }
            let head = Array(s.prefix(length - end.count))
            if killwords { return .string(String(jinjaScalars: head + end)) }
            let cut = PyString.rfind(head, [" "])
            let kept = cut >= 0 ? Array(head[..<cut]) : head
            return .string(String(jinjaScalars: kept + end))

        case "unique":
            let b = try bind(["case_sensitive", "attribute"])
            let caseSensitive = b[0]?.truthy ?? false
            let getter = try b[1].orNil.map { try attributeGetter($0, pos: pos, r) }
            // Scalars are looked up by hash (a linear scan made `range(100000)|unique` take 45 s);
            // only containers and NaN, which have no such key, are compared one by one.
            var seenScalars = Set<UniqueKey>()
            var seenOthers: [JinjaValue] = []
            var out: [JinjaValue] = []
            for item in try r.iterate(value, pos) {
                let k = try keyOf(item, getter, caseSensitive)
                if let key = UniqueKey(k) {
                    if seenScalars.insert(key).inserted { out.append(item) }
                } else if !seenOthers.contains(where: { PyCompare.equal($0, k) }) {
                    seenOthers.append(k)
                    out.append(item)
                }
            }
            return .array(out)

        case "wordcount":
            _ = try bind([])
            var count = 0
            var inWord = false
            for c in text(value).unicodeScalars {
                let isWord = c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
                if isWord && !inWord { count += 1 }
                inWord = isWord
            }
            return .int(count)

        default:
            throw ChatTemplateError.unknownFilter(name: name, line: pos.line, column: pos.column)
        }
    }

    static func ignoreCase(_ v: JinjaValue) -> JinjaValue {
        if case let .string(s) = v { return .string(PyString.lower(s)) }
        return v
    }

    private static func keyOf(_ item: JinjaValue, _ getter: ((JinjaValue) throws -> JinjaValue)?, _ caseSensitive: Bool) throws -> JinjaValue {
        let k = try getter.map { try $0(item) } ?? item
        return caseSensitive ? k : ignoreCase(k)
    }

    /// Jinja's make_attrgetter: "a.b.0" walks items (falling back to attributes); commas in
    /// `sort` attributes are not split here.
    static func attributeGetter(_ attribute: JinjaValue, pos: JinjaPos, _ r: JinjaRenderer) throws -> (JinjaValue) throws -> JinjaValue {
        let parts: [JinjaValue]
        switch attribute {
        case let .string(s):
            parts = PyString.split(s, ".", maxsplit: -1).map { part in
                if let i = Int(part), part.unicodeScalars.allSatisfy({ $0.value >= 48 && $0.value <= 57 }) {
                    return .int(i)
                }
                return .string(part)
            }
        case .int:
            parts = [attribute]
        default:
            throw r.runtime("attribute must be a string or integer", pos)
        }
        return { item in
            var v = item
            for p in parts { v = try r.getItem(v, p, pos) }
            return v
        }
    }

    private static func stableSort<T>(_ items: [T], reverse: Bool, pos: JinjaPos, _ r: JinjaRenderer,
                                      key: (T) throws -> JinjaValue) throws -> [T] {
        let keyed = try items.enumerated().map { (offset: $0.offset, key: try key($0.element), item: $0.element) }
        var failure: ChatTemplateError? = nil
        let sorted = keyed.sorted { a, b in
            guard let lt = PyCompare.less(a.key, b.key), let gt = PyCompare.less(b.key, a.key) else {
                if failure == nil {
                    failure = r.runtime("'<' not supported between instances of '\(a.key.typeName)' and '\(b.key.typeName)'", pos)
                }
                return a.offset < b.offset
            }
            if reverse {
                if gt { return true }
                if lt { return false }
            } else {
                if lt { return true }
                if gt { return false }
            }
            return a.offset < b.offset
        }
        if let failure { throw failure }
        return sorted.map { $0.item }
    }
}

enum PyNumber {
    /// Python int(str, base): surrounding whitespace, sign, underscores between digits.
    static func parseInt(_ s: String, base: Int) -> Int? {
        guard base >= 2 && base <= 36 else { return nil }
        var t = s.pyStrip(nil, leading: true, trailing: true)
        var negative = false
        if t.hasPrefix("-") || t.hasPrefix("+") {
            negative = t.hasPrefix("-")
            t.removeFirst()
        }
        if base == 16 && (t.hasPrefix("0x") || t.hasPrefix("0X")) { t.removeFirst(2) }
        if base == 8 && (t.hasPrefix("0o") || t.hasPrefix("0O")) { t.removeFirst(2) }
        if base == 2 && (t.hasPrefix("0b") || t.hasPrefix("0B")) { t.removeFirst(2) }
        let scalars = Array(t.unicodeScalars)
        guard let f = scalars.first, f != "_", let l = scalars.last, l != "_" else { return nil }
        for (i, c) in scalars.enumerated() where c == "_" && scalars[i - 1] == "_" { return nil }
        let digits = String(jinjaScalars: scalars.filter { $0 != "_" })
        guard let v = Int(digits, radix: base) else { return nil }
        return negative ? (v == Int.min ? nil : -v) : v
    }

    static func parseFloat(_ s: String) -> Double? {
        let t = s.pyStrip(nil, leading: true, trailing: true)
        guard !t.isEmpty else { return nil }
        let lower = t.lowercased()
        switch lower {
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        case "nan", "+nan", "-nan": return .nan
        default: break
        }
        let allowed = Set("0123456789+-.eE_".unicodeScalars)
        guard t.unicodeScalars.allSatisfy({ allowed.contains($0) }) else { return nil }
        return Double(String(jinjaScalars: t.unicodeScalars.filter { $0 != "_" }))
    }

    static func truncate(_ d: Double) -> Int? {
        guard d.isFinite, d > -9.2e18, d < 9.2e18 else { return nil }
        return Int(d.rounded(.towardZero))
    }
}

enum JinjaTests {
    static let known: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
        "float", "ge", "greaterthan", "gt", "in", "integer", "iterable", "le", "lessthan", "lower", "lt",
        "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined",
        "upper", "==", "!=", "<", "<=", ">", ">=",
    ]

    static func run(_ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], pos: JinjaPos,
                    renderer r: JinjaRenderer) throws -> Bool {
        func arg() throws -> JinjaValue {
            let b = try jinjaBindArgs(name, ["other"], args, kwargs, pos: pos)
            guard let other = b[0] else { throw r.runtime("test '\(name)' requires an argument", pos) }
            return other
        }
        func noArgs() throws { _ = try jinjaBindArgs(name, [], args, kwargs, pos: pos) }
        switch name {
        case "defined": try noArgs(); return !v.isUndefined
        case "undefined": try noArgs(); return v.isUndefined
        case "none": try noArgs(); return v.isNone
        case "boolean": try noArgs(); return v.isBoolLike
        case "true": try noArgs(); if case .bool(true) = v { return true }; return false
        case "false": try noArgs(); if case .bool(false) = v { return true }; return false
        case "integer": try noArgs(); if case .int = v { return true }; return false
        case "float": try noArgs(); if case .double = v { return true }; return false
        case "number": try noArgs(); return v.asNumber != nil
        case "string": try noArgs(); return v.isString
        case "mapping": try noArgs(); if case .object = v { return true }; return false
        case "iterable":
            try noArgs()
            switch v {
            case .undefined, .string, .array, .tuple, .object, .namespace: return true
            default: return false
            }
        case "sequence":
            try noArgs()
            switch v {
            case .undefined, .string, .array, .tuple, .object: return true
            default: return false
            }
        case "callable":
            try noArgs()
            switch v {
            case .callable, .undefined: return true
            default: return false
            }
        case "escaped": try noArgs(); return false
        case "lower", "upper":
            try noArgs()
            guard case let .string(s) = v else { return false }
            return (try JinjaMethods.call(.string(s), name == "lower" ? "islower" : "isupper", [], [], pos: pos, renderer: r)).truthy
        case "odd", "even":
            try noArgs()
            let rem = try r.arithmetic(.mod, v, .int(2), pos)
            return PyCompare.equal(rem, .int(name == "odd" ? 1 : 0))
        case "divisibleby":
            let rem = try r.arithmetic(.mod, v, try arg(), pos)
            return PyCompare.equal(rem, .int(0))
        case "eq", "equalto", "==": return PyCompare.equal(v, try arg())
        case "ne", "!=": return !PyCompare.equal(v, try arg())
        case "lt", "lessthan", "<": return try r.compare(.lt, v, try arg(), pos)
        case "le", "<=": return try r.compare(.le, v, try arg(), pos)
        case "gt", "greaterthan", ">": return try r.compare(.gt, v, try arg(), pos)
        case "ge", ">=": return try r.compare(.ge, v, try arg(), pos)
        case "in": return try r.contains(try arg(), v, pos)
        case "sameas":
            let other = try arg()
            switch (v, other) {
            case (.none, .none), (.undefined, .undefined): return true
            case let (.bool(a), .bool(b)): return a == b
            case let (.string(a), .string(b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
            case let (.int(a), .int(b)): return a == b && a >= -5 && a <= 256
            case let (.namespace(a), .namespace(b)): return a === b
            default: return false
            }
        case "filter":
            guard case let .string(s) = v else { return false }
            return JinjaFilters.known.contains(s)
        case "test":
            guard case let .string(s) = v else { return false }
            return known.contains(s)
        default:
            throw ChatTemplateError.unknownTest(name: name, line: pos.line, column: pos.column)
        }
    }
}

/// A scalar's identity under Python's `==`, hashable: `1 == 1.0 == True`, `-0.0 == 0.0`; an
/// integer a double cannot hold exactly equals no double. NaN equals nothing, so it has no key.
enum UniqueKey: Hashable {
    case none
    case undefined
    case number(Double)
    case integer(Int)
    /// UTF-8 bytes: Python compares strings by code point, not by canonical equivalence as
    /// Swift's `String ==` does.
    case string([UInt8])

    init?(_ v: JinjaValue) {
        switch v {
        case .none: self = .none
        case .undefined: self = .undefined
        case let .bool(b): self = .number(b ? 1 : 0)
        case let .int(i):
            if let d = Double(exactly: i) { self = .number(d) } else { self = .integer(i) }
        case let .double(d):
            guard !d.isNaN else { return nil }
            self = .number(d)
        case let .string(s): self = .string(Array(s.utf8))
        default: return nil
        }
    }
}
