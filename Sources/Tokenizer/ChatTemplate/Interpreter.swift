// Tree-walking evaluator with Jinja2 scoping rules (for-loop bodies, macros and `with` blocks
// open a scope; `if` does not; each loop iteration starts from a fresh scope).

final class JinjaScope {
    var vars: [String: JinjaValue] = [:]
    let parent: JinjaScope?

    init(parent: JinjaScope?) { self.parent = parent }

    func lookup(_ name: String) -> JinjaValue? {
        var s: JinjaScope? = self
        while let c = s {
            if let v = c.vars[name] { return v }
            s = c.parent
        }
        return nil
    }
}

enum JinjaFlow {
    case normal, breakLoop, continueLoop
}

final class JinjaRenderer {
    let limits: ChatTemplateLimits
    let fixedTime: Int64?
    private var buffers: [String] = [""]
    var scope: JinjaScope
    private var iterations = 0
    private var steps = 0
    private var callDepth = 0

    /// Scopes that store a macro. A macro holds the scope that defines it while that scope holds
    /// the macro, a reference cycle; `releaseScopes()` breaks these at the end of a render.
    private var macroScopes: [JinjaScope] = []

    /// Empties the scopes that store macros so that their cycles are freed.
    func releaseScopes() {
        for s in macroScopes { s.vars.removeAll() }
        macroScopes.removeAll()
    }

    init(globals: JinjaScope, limits: ChatTemplateLimits, fixedTime: Int64?) {
        self.limits = limits
        self.fixedTime = fixedTime
        self.scope = JinjaScope(parent: globals)
    }

    // MARK: - Errors

    func runtime(_ message: String, _ pos: JinjaPos) -> ChatTemplateError {
        .runtime(message: message, line: pos.line, column: pos.column)
    }

    func undefinedError(_ hint: String, _ pos: JinjaPos) -> ChatTemplateError {
        .undefined(message: hint, line: pos.line, column: pos.column)
    }

    /// Fails with UndefinedError if `v` is undefined.
    func require(_ v: JinjaValue, _ pos: JinjaPos) throws -> JinjaValue {
        if case let .undefined(hint) = v { throw undefinedError(hint, pos) }
        return v
    }

    /// Total bytes of strings produced by operators, filters and methods; bounded so that
    /// hostile templates cannot grind through unbounded memory even when each value is small.
    private var produced = 0

    func charge(_ v: JinjaValue) throws -> JinjaValue {
        if case let .string(s) = v {
            produced += s.utf8.count
            let budget = limits.maxOutputBytes.multipliedReportingOverflow(by: 256)
            if !budget.overflow && produced > budget.partialValue {
                throw ChatTemplateError.outputLimitExceeded(limit: limits.maxOutputBytes)
            }
        }
        return v
    }

    func checkSize(_ s: String) throws -> String {
        if s.utf8.count > limits.maxOutputBytes {
            throw ChatTemplateError.outputLimitExceeded(limit: limits.maxOutputBytes)
        }
        return s
    }

    func checkCount(_ n: Int) throws {
        if n > limits.maxOutputBytes {
            throw ChatTemplateError.outputLimitExceeded(limit: limits.maxOutputBytes)
        }
    }

    func tick(_ n: Int = 1) throws {
        iterations += n
        if iterations > limits.maxLoopIterations {
            throw ChatTemplateError.iterationLimitExceeded(limit: limits.maxLoopIterations)
        }
    }

    /// Charges `n` steps of evaluation work against the render's budget.
    @inline(__always)
    func spend(_ n: Int = 1) throws {
        steps &+= n
        if steps > limits.maxSteps { throw ChatTemplateError.stepLimitExceeded(limit: limits.maxSteps) }
    }

    // MARK: - Output

    private func write(_ s: String) throws {
        let last = buffers.count - 1
        buffers[last] += s
        if buffers[last].utf8.count > limits.maxOutputBytes {
            throw ChatTemplateError.outputLimitExceeded(limit: limits.maxOutputBytes)
        }
    }

    func render(_ nodes: [JinjaNode]) throws -> String {
        _ = try exec(nodes)
        return buffers[0]
    }

    private func capture(_ nodes: [JinjaNode], in newScope: JinjaScope? = nil) throws -> (String, JinjaFlow) {
        buffers.append("")
        let saved = scope
        if let newScope { scope = newScope }
        defer {
            scope = saved
        }
        let flow = try exec(nodes)
        let text = buffers.removeLast()
        return (text, flow)
    }

    // MARK: - Statements

    private func exec(_ nodes: [JinjaNode]) throws -> JinjaFlow {
        for node in nodes {
            let flow = try exec(node)
            if case .normal = flow { continue }
            return flow
        }
        return .normal
    }

    private func exec(_ node: JinjaNode) throws -> JinjaFlow {
        switch node.kind {
        case let .text(s):
            try write(s)
        case let .output(e):
            try write(PyFormat.str(try eval(e)))
        case let .ifStmt(branches, otherwise):
            for (test, body) in branches where try eval(test).truthy {
                return try exec(body)
            }
            return try exec(otherwise)
        case let .forStmt(target, iter, filter, body, otherwise):
            return try execFor(target: target, iter: iter, filter: filter, body: body, otherwise: otherwise,
                               pos: node.pos)
        case let .set(target, e):
            try assign(target, try eval(e), node.pos)
        case let .setBlock(target, filters, body):
            let (text, flow) = try capture(body)
            var v = JinjaValue.string(text)
            for f in filters { v = try applyFilter(f, to: v) }
            try assign(target, v, node.pos)
            return flow
        case let .macro(def):
            scope.vars[def.name] = .callable(.macro(JinjaMacro(def: def, scope: scope), caller: nil))
            macroScopes.append(scope)
        case let .callBlock(call, params, defaults, body):
            let callerDef = JinjaMacroDef(name: "caller", params: params, defaults: defaults, body: body, pos: node.pos)
            let caller = JinjaValue.callable(.macro(JinjaMacro(def: callerDef, scope: scope), caller: nil))
            guard case let .call(calleeExpr, args) = call.kind else { return .normal }
            let callee = try eval(calleeExpr)
            let (positional, keywords) = try evalArgs(args)
            let result: JinjaValue
            if case let .callable(.macro(box, _)) = callee {
                result = try callMacro(box, positional, keywords, caller: caller, pos: call.pos)
            } else {
                result = try self.call(callee, positional, keywords, pos: call.pos)
            }
            try write(PyFormat.str(result))
        case let .filterBlock(filters, body):
            let (text, flow) = try capture(body)
            var v = JinjaValue.string(text)
            for f in filters { v = try applyFilter(f, to: v) }
            try write(PyFormat.str(v))
            return flow
        case let .with(assignments, body):
            let inner = JinjaScope(parent: scope)
            for (target, e) in assignments {
                let v = try eval(e)
                let saved = scope
                scope = inner
                defer { scope = saved }
                try assign(target, v, node.pos)
            }
            let saved = scope
            scope = inner
            defer { scope = saved }
            return try exec(body)
        case let .scope(body):
            let saved = scope
            scope = JinjaScope(parent: scope)
            defer { scope = saved }
            return try exec(body)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func execFor(target: JinjaAssignTarget, iter: JinjaExpr, filter: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode],
                         pos: JinjaPos) throws -> JinjaFlow {
        var items = try iterate(try eval(iter), iter.pos)
        let outer = scope
        defer { scope = outer }
        if let filter {
            var kept: [JinjaValue] = []
            for item in items {
                try tick()
                let s = JinjaScope(parent: outer)
                scope = s
                try assign(target, item, pos)
                if try eval(filter).truthy { kept.append(item) }
                scope = outer
            }
            items = kept
        }
        if items.isEmpty {
            return try exec(otherwise)
        }
        for index in items.indices {
            try tick()
            let s = JinjaScope(parent: outer)
            s.vars["loop"] = .loop(JinjaLoop(items: items, index0: index))
            scope = s
            try assign(target, items[index], pos)
            let flow = try exec(body)
            scope = outer
            if case .breakLoop = flow { break }
        }
        return .normal
    }

    func assign(_ target: JinjaAssignTarget, _ v: JinjaValue, _ pos: JinjaPos) throws {
        switch target {
        case let .name(n):
            scope.vars[n] = v
        case let .namespaceAttr(name, attr):
            guard case let .namespace(ns) = scope.lookup(name) ?? .undefined("") else {
                throw runtime("cannot assign attribute on non-namespace object", pos)
            }
            ns.attrs.set(attr, v)
        case let .tuple(targets):
            let items = try iterate(try require(v, pos), pos)
            if items.count != targets.count {
                if items.count > targets.count {
                    throw runtime("too many values to unpack (expected \(targets.count))", pos)
                }
                throw runtime("not enough values to unpack (expected \(targets.count), got \(items.count))", pos)
            }
            for (t, item) in zip(targets, items) { try assign(t, item, pos) }
        }
    }

    /// Python iteration: lists, dict keys, string characters; undefined iterates as empty.
    func iterate(_ v: JinjaValue, _ pos: JinjaPos) throws -> [JinjaValue] {
        switch v {
        case .undefined: return []
        case let .array(a), let .tuple(a):
            try spend(a.count)
            return a
        case let .object(o):
            try spend(o.count)
            return o.keys.map { .string($0) }
        case let .string(s):
            try spend(s.utf8.count)
            return s.unicodeScalars.map { .string(String($0)) }
        case let .namespace(ns): return ns.attrs.keys.map { .string($0) }
        default: throw runtime("'\(v.typeName)' object is not iterable", pos)
        }
    }

    // MARK: - Expressions

    func eval(_ e: JinjaExpr) throws -> JinjaValue {
        try spend()
        switch e.kind {
        case let .literal(l):
            switch l {
            case .none: return .none
            case let .bool(b): return .bool(b)
            case let .int(i): return .int(i)
            case let .double(d): return .double(d)
            case let .string(s): return .string(s)
            }
        case let .name(n):
            if let v = scope.lookup(n) { return v }
            if JinjaGlobals.names.contains(n) { return .callable(.global(n)) }
            return .undefined("'\(n)' is undefined")
        case let .list(items):
            var out: [JinjaValue] = []
            out.reserveCapacity(items.count)
            for item in items { out.append(try eval(item)) }
            return .array(out)
        case let .tuple(items):
            var out: [JinjaValue] = []
            out.reserveCapacity(items.count)
            for item in items { out.append(try eval(item)) }
            return .tuple(out)
        case let .dict(pairs):
            var o = JinjaObject()
            for (k, v) in pairs {
                let key = try require(try eval(k), k.pos)
                o.set(dictKey(key), try eval(v))
            }
            return .object(o)
        case let .getattr(obj, name):
            return try getAttr(try eval(obj), name, e.pos)
        case let .getitem(obj, arg):
            let target = try eval(obj)
            if case let .slice(a, b, c) = arg.kind {
                return try slice(try require(target, e.pos), a.map(eval), b.map(eval), c.map(eval), e.pos)
            }
            return try getItem(target, try eval(arg), e.pos)
        case .slice:
            throw runtime("slice outside of subscript", e.pos)
        case let .call(calleeExpr, args):
            let callee = try eval(calleeExpr)
            let (positional, keywords) = try evalArgs(args)
            return try call(callee, positional, keywords, pos: e.pos)
        case let .filter(subject, f):
            return try applyFilter(f, to: try eval(subject))
        case let .test(subject, name, args, negated):
            let v = try eval(subject)
            let (positional, keywords) = try evalArgs(args)
            let r = try JinjaTests.run(name, v, positional, keywords, pos: e.pos, renderer: self)
            return .bool(negated ? !r : r)
        case let .neg(x):
            let v = try require(try eval(x), e.pos)
            switch v.asNumber {
            case let .int(i)?:
                let (r, o) = Int(0).subtractingReportingOverflow(i)
                if o { throw runtime("integer overflow", e.pos) }
                return .int(r)
            case let .double(d)?: return .double(-d)
            default: throw runtime("bad operand type for unary -: '\(v.typeName)'", e.pos)
            }
        case let .pos(x):
            let v = try require(try eval(x), e.pos)
            guard let n = v.asNumber else { throw runtime("bad operand type for unary +: '\(v.typeName)'", e.pos) }
            return n
        case let .not(x):
            return .bool(!(try eval(x).truthy))
        case let .binary(op, l, r):
            switch op {
            case .and:
                let left = try eval(l)
                return left.truthy ? try eval(r) : left
            case .or:
                let left = try eval(l)
                return left.truthy ? left : try eval(r)
            default:
                return try charge(try arithmetic(op, try eval(l), try eval(r), e.pos))
            }
        case let .concat(items):
            var s = ""
            for item in items {
                s += PyFormat.str(try eval(item))
                _ = try checkSize(s)
            }
            return try charge(.string(s))
        case let .compare(first, ops):
            var left = try eval(first)
            for (op, rightExpr) in ops {
                let right = try eval(rightExpr)
                if !(try compare(op, left, right, rightExpr.pos)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .conditional(test, then, otherwise):
            if try eval(test).truthy { return try eval(then) }
            if let otherwise { return try eval(otherwise) }
            return .undefined("the inline if-expression evaluated to false and no else section was defined")
        }
    }

    func dictKey(_ v: JinjaValue) -> String {
        if case let .string(s) = v { return s }
        return PyFormat.str(v)
    }

    func evalArgs(_ args: JinjaCallArgs) throws -> ([JinjaValue], [(String, JinjaValue)]) {
        var positional: [JinjaValue] = []
        for a in args.positional { positional.append(try eval(a)) }
        var keywords: [(String, JinjaValue)] = []
        for k in args.keywords { keywords.append((k.name, try eval(k.value))) }
        return (positional, keywords)
    }

    func applyFilter(_ f: JinjaFilterCall, to v: JinjaValue) throws -> JinjaValue {
        let (positional, keywords) = try evalArgs(f.args)
        return try charge(try JinjaFilters.apply(f.name, v, positional, keywords, pos: f.pos, renderer: self))
    }

    // MARK: - Attribute and item access

    func getAttr(_ v: JinjaValue, _ name: String, _ pos: JinjaPos) throws -> JinjaValue {
        switch v {
        case let .undefined(hint):
            throw undefinedError(hint, pos)
        case let .object(o):
            if JinjaMethods.dict.contains(name) { return .callable(.method(v, name)) }
            return o[name] ?? .undefined("'dict object' has no attribute '\(name)'")
        case .string:
            if JinjaMethods.string.contains(name) { return .callable(.method(v, name)) }
            return .undefined("'str object' has no attribute '\(name)'")
        case .array, .tuple:
            if JinjaMethods.list.contains(name) { return .callable(.method(v, name)) }
            return .undefined("'list object' has no attribute '\(name)'")
        case let .namespace(ns):
            return ns.attrs[name] ?? .undefined("'Namespace' object has no attribute '\(name)'")
        case let .loop(info):
            return loopAttr(info, name)
        default:
            return .undefined("'\(v.typeName) object' has no attribute '\(name)'")
        }
    }

    func getItem(_ v: JinjaValue, _ key: JinjaValue, _ pos: JinjaPos) throws -> JinjaValue {
        switch v {
        case let .undefined(hint):
            throw undefinedError(hint, pos)
        case let .object(o):
            if case let .string(k) = key {
                if let x = o[k] { return x }
                if JinjaMethods.dict.contains(k) { return .callable(.method(v, k)) }
                return .undefined("'dict object' has no attribute '\(k)'")
            }
            if key.isUndefined { throw undefinedError("dict key is undefined", pos) }
            return o[dictKey(key)] ?? .undefined("'dict object' has no element \(PyFormat.repr(key))")
        case let .array(a), let .tuple(a):
            if case let .int(i)? = key.asNumber {
                let idx = i < 0 ? i + a.count : i
                if idx >= 0 && idx < a.count { return a[idx] }
                return .undefined("'list object' has no element \(i)")
            }
            if case let .string(k) = key, JinjaMethods.list.contains(k) { return .callable(.method(v, k)) }
            return .undefined("'list object' has no element \(PyFormat.repr(key))")
        case let .string(s):
            if case let .int(i)? = key.asNumber {
                let scalars = Array(s.unicodeScalars)
                let idx = i < 0 ? i + scalars.count : i
                if idx >= 0 && idx < scalars.count { return .string(String(scalars[idx])) }
                return .undefined("'str object' has no element \(i)")
            }
            if case let .string(k) = key, JinjaMethods.string.contains(k) { return .callable(.method(v, k)) }
            return .undefined("'str object' has no element \(PyFormat.repr(key))")
        case let .namespace(ns):
            if case let .string(k) = key { return ns.attrs[k] ?? .undefined("'Namespace' object has no attribute '\(k)'") }
            return .undefined("'Namespace' object has no element \(PyFormat.repr(key))")
        case let .loop(info):
            if case let .string(k) = key { return loopAttr(info, k) }
            return .undefined("'LoopContext' object has no element \(PyFormat.repr(key))")
        default:
            return .undefined("'\(v.typeName) object' has no element \(PyFormat.repr(key))")
        }
    }

    func loopAttr(_ info: JinjaLoop, _ name: String) -> JinjaValue {
        let n = info.items.count
        let i = info.index0
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem": return i > 0 ? info.items[i - 1] : .undefined("there is no previous item")
        case "nextitem": return i + 1 < n ? info.items[i + 1] : .undefined("there is no next item")
        case "cycle": return .callable(.cycle(i))
        default: return .undefined("'LoopContext' object has no attribute '\(name)'")
        }
    }

    /// Python slice semantics over lists and strings (by code point).
    func slice(_ v: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?, _ pos: JinjaPos) throws -> JinjaValue {
        func intOrNil(_ x: JinjaValue?) throws -> Int? {
            guard let x else { return nil }
            switch x {
            case .none: return nil
            case .bool, .int:
                if case let .int(i)? = x.asNumber { return i }
                return nil
            default: throw runtime("slice indices must be integers or None", pos)
            }
        }
        let stepValue = try intOrNil(step) ?? 1
        if stepValue == 0 { throw runtime("slice step cannot be zero", pos) }
        func indices(_ count: Int) throws -> [Int] {
            let lower = stepValue > 0 ? 0 : -1
            let upper = stepValue > 0 ? count : count - 1
            func clamp(_ x: Int?, _ dflt: Int) -> Int {
                guard let x else { return dflt }
                if x < 0 { return Swift.max(x + count, lower) }
                return Swift.min(x, upper)
            }
            let a = clamp(try intOrNil(start), stepValue > 0 ? lower : upper)
            let b = clamp(try intOrNil(stop), stepValue > 0 ? upper : lower)
            var out: [Int] = []
            var i = a
            while stepValue > 0 ? i < b : i > b {
                out.append(i)
                let (next, overflow) = i.addingReportingOverflow(stepValue)
                if overflow { break }
                i = next
            }
            return out
        }
        switch v {
        case let .array(a):
            return .array(try indices(a.count).map { a[$0] })
        case let .tuple(a):
            return .tuple(try indices(a.count).map { a[$0] })
        case let .string(s):
            let scalars = Array(s.unicodeScalars)
            return .string(String(jinjaScalars: try indices(scalars.count).map { scalars[$0] }))
        default:
            throw runtime("'\(v.typeName)' object is not subscriptable", pos)
        }
    }

    // MARK: - Operators

    func arithmetic(_ op: JinjaBinaryOp, _ lhs: JinjaValue, _ rhs: JinjaValue, _ pos: JinjaPos) throws -> JinjaValue {
        let a = try require(lhs, pos)
        let b = try require(rhs, pos)
        let symbol: String
        switch op {
        case .add: symbol = "+"
        case .sub: symbol = "-"
        case .mul: symbol = "*"
        case .div: symbol = "/"
        case .floorDiv: symbol = "//"
        case .mod: symbol = "%"
        case .pow: symbol = "**"
        case .and, .or: symbol = "?"
        }
        let typeError = runtime("unsupported operand type(s) for \(symbol): '\(a.typeName)' and '\(b.typeName)'", pos)
        // Sequence operations.
        switch (op, a, b) {
        case let (.add, .string(x), .string(y)):
            return .string(try checkSize(x + y))
        case let (.add, .array(x), .array(y)):
            try checkCount(x.count + y.count)
            return .array(x + y)
        case let (.add, .tuple(x), .tuple(y)):
            try checkCount(x.count + y.count)
            return .tuple(x + y)
        case let (.mul, .string(s), _), let (.mul, _, .string(s)):
            guard case let .int(n)? = (a.isString ? b : a).asNumber else { throw typeError }
            if n <= 0 || s.isEmpty { return .string("") }
            let (total, o) = s.utf8.count.multipliedReportingOverflow(by: n)
            if o || total > limits.maxOutputBytes { throw ChatTemplateError.outputLimitExceeded(limit: limits.maxOutputBytes) }
            return .string(String(repeating: s, count: n))
        case (.mul, _, _) where a.sequenceItems != nil || b.sequenceItems != nil:
            let seq = a.sequenceItems != nil ? a : b
            let x = seq.sequenceItems ?? []
            guard case let .int(n)? = (a.sequenceItems != nil ? b : a).asNumber else { throw typeError }
            let wrap: ([JinjaValue]) -> JinjaValue = { if case .tuple = seq { return .tuple($0) } else { return .array($0) } }
            if n <= 0 || x.isEmpty { return wrap([]) }
            let (total, o) = x.count.multipliedReportingOverflow(by: n)
            if o { throw ChatTemplateError.outputLimitExceeded(limit: limits.maxOutputBytes) }
            try checkCount(total)
            return wrap(Array([[JinjaValue]](repeating: x, count: n).joined()))
        case let (.mod, .string(fmt), _):
            return .string(try checkSize(try JinjaPercentFormat.format(fmt, b, pos: pos, renderer: self)))
        default:
            break
        }
        guard let x = a.asNumber, let y = b.asNumber else { throw typeError }
        switch (x, y) {
        case let (.int(i), .int(j)):
            return try intArithmetic(op, i, j, pos)
        default:
            let p = x.doubleValue
            let q = y.doubleValue
            switch op {
            case .add: return .double(p + q)
            case .sub: return .double(p - q)
            case .mul: return .double(p * q)
            case .div:
                if q == 0 { throw runtime("float division by zero", pos) }
                return .double(p / q)
            case .floorDiv:
                if q == 0 { throw runtime("float floor division by zero", pos) }
                return .double(PyMath.floorDiv(p, q))
            case .mod:
                if q == 0 { throw runtime("float modulo", pos) }
                return .double(PyMath.mod(p, q))
            case .pow:
                if p == 0 && q < 0 { throw runtime("0.0 cannot be raised to a negative power", pos) }
                return .double(PyMath.pow(p, q))
            case .and, .or: throw typeError
            }
        }
    }

    private func intArithmetic(_ op: JinjaBinaryOp, _ i: Int, _ j: Int, _ pos: JinjaPos) throws -> JinjaValue {
        let overflow = runtime("integer overflow", pos)
        switch op {
        case .add:
            let (r, o) = i.addingReportingOverflow(j)
            if o { throw overflow }
            return .int(r)
        case .sub:
            let (r, o) = i.subtractingReportingOverflow(j)
            if o { throw overflow }
            return .int(r)
        case .mul:
            let (r, o) = i.multipliedReportingOverflow(by: j)
            if o { throw overflow }
            return .int(r)
        case .div:
            if j == 0 { throw runtime("division by zero", pos) }
            return .double(Double(i) / Double(j))
        case .floorDiv:
            if j == 0 { throw runtime("integer division or modulo by zero", pos) }
            if i == Int.min && j == -1 { throw overflow }
            var q = i / j
            if (i % j != 0) && ((i < 0) != (j < 0)) { q -= 1 }
            return .int(q)
        case .mod:
            if j == 0 { throw runtime("integer division or modulo by zero", pos) }
            if j == -1 { return .int(0) }
            var r = i % j
            if r != 0 && ((r < 0) != (j < 0)) { r += j }
            return .int(r)
        case .pow:
            if j < 0 {
                if i == 0 { throw runtime("0.0 cannot be raised to a negative power", pos) }
                return .double(PyMath.pow(Double(i), Double(j)))
            }
            var result = 1
            var base = i
            var e = j
            while e > 0 {
                if e & 1 == 1 {
                    let (r, o) = result.multipliedReportingOverflow(by: base)
                    if o { throw overflow }
                    result = r
                }
                e >>= 1
                if e > 0 {
                    let (b2, o) = base.multipliedReportingOverflow(by: base)
                    if o { throw overflow }
                    base = b2
                }
            }
            return .int(result)
        case .and, .or:
            throw runtime("invalid operator", pos)
        }
    }

    func compare(_ op: JinjaCompareOp, _ a: JinjaValue, _ b: JinjaValue, _ pos: JinjaPos) throws -> Bool {
        switch op {
        case .eq: return PyCompare.equal(a, b)
        case .ne: return !PyCompare.equal(a, b)
        case .in: return try contains(b, a, pos)
        case .notIn: return !(try contains(b, a, pos))
        case .lt, .le, .gt, .ge:
            let x = try require(a, pos)
            let y = try require(b, pos)
            let sym: String
            let result: Bool?
            switch op {
            case .lt: sym = "<"; result = PyCompare.less(x, y)
            case .gt: sym = ">"; result = PyCompare.less(y, x)
            case .le: sym = "<="; result = PyCompare.less(y, x).map { !$0 }
            default: sym = ">="; result = PyCompare.less(x, y).map { !$0 }
            }
            guard let result else {
                throw runtime("'\(sym)' not supported between instances of '\(x.typeName)' and '\(y.typeName)'", pos)
            }
            return result
        }
    }

    /// Python `needle in container`.
    func contains(_ container: JinjaValue, _ needle: JinjaValue, _ pos: JinjaPos) throws -> Bool {
        switch container {
        case .undefined: return false
        case let .string(s):
            guard case let .string(n) = needle else {
                if case let .undefined(hint) = needle { throw undefinedError(hint, pos) }
                throw runtime("'in <string>' requires string as left operand, not \(needle.typeName)", pos)
            }
            try spend(s.utf8.count)
            return n.isEmpty || s.unicodeScalars.firstRange(of: n.unicodeScalars) != nil
        case let .array(a), let .tuple(a):
            try spend(a.count)
            return a.contains { PyCompare.equal($0, needle) }
        case let .object(o):
            if case .string = needle { return o[dictKey(needle)] != nil }
            if needle.isUndefined { return false }
            return o[dictKey(needle)] != nil
        case let .namespace(ns):
            if case let .string(k) = needle { return ns.attrs[k] != nil }
            return false
        default:
            throw runtime("argument of type '\(container.typeName)' is not iterable", pos)
        }
    }

    // MARK: - Calls

    func call(_ callee: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], pos: JinjaPos) throws -> JinjaValue {
        switch callee {
        case let .callable(c):
            switch c {
            case let .global(name):
                return try JinjaGlobals.call(name, args, kwargs, pos: pos, renderer: self)
            case let .method(receiver, name):
                return try charge(try JinjaMethods.call(receiver, name, args, kwargs, pos: pos, renderer: self))
            case let .macro(box, caller):
                return try callMacro(box, args, kwargs, caller: caller, pos: pos)
            case let .cycle(index):
                if args.isEmpty { throw runtime("no items for cycling given", pos) }
                return args[index % args.count]
            }
        case let .undefined(hint):
            throw undefinedError(hint, pos)
        default:
            throw runtime("'\(callee.typeName)' object is not callable", pos)
        }
    }

    func callMacro(_ box: JinjaMacro, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], caller: JinjaValue?,
                   pos: JinjaPos) throws -> JinjaValue {
        callDepth += 1
        defer { callDepth -= 1 }
        if callDepth > limits.maxCallDepth {
            throw ChatTemplateError.recursionLimitExceeded(limit: limits.maxCallDepth)
        }
        let def = box.def
        let s = JinjaScope(parent: box.scope)
        var extraKw = JinjaObject()
        for (k, v) in kwargs {
            if def.params.contains(k) {
                s.vars[k] = v
            } else if k == "caller" {
                s.vars["caller"] = v
            } else {
                extraKw.set(k, v)
            }
        }
        var varargs: [JinjaValue] = []
        for (i, a) in args.enumerated() {
            if i < def.params.count {
                if kwargs.contains(where: { $0.0 == def.params[i] }) {
                    throw runtime("macro '\(def.name)' got multiple values for argument '\(def.params[i])'", pos)
                }
                s.vars[def.params[i]] = a
            } else {
                varargs.append(a)
            }
        }
        s.vars["varargs"] = .tuple(varargs)
        s.vars["kwargs"] = .object(extraKw)
        if let caller { s.vars["caller"] = caller }
        let saved = scope
        scope = s
        defer { scope = saved }
        let firstDefault = def.params.count - def.defaults.count
        for (i, p) in def.params.enumerated() where s.vars[p] == nil {
            if i >= firstDefault {
                s.vars[p] = try eval(def.defaults[i - firstDefault])
            } else {
                s.vars[p] = .undefined("parameter '\(p)' was not provided")
            }
        }
        let (text, _) = try capture(def.body, in: s)
        return .string(text)
    }
}

extension JinjaValue {
    var isString: Bool {
        if case .string = self { return true }
        return false
    }

    var isBoolLike: Bool {
        if case .bool = self { return true }
        return false
    }

    var doubleValue: Double {
        switch self {
        case let .int(i): return Double(i)
        case let .double(d): return d
        case let .bool(b): return b ? 1 : 0
        default: return .nan
        }
    }
}
