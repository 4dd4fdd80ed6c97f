// Recursive-descent parser following Jinja2's grammar and operator precedence.

struct JinjaParser {
    private var tokens: [JinjaToken]
    private var p = 0
    private var depth = 0
    private var loopDepth = 0
    private let maxDepth: Int

    init(tokens: [JinjaToken], maxDepth: Int) {
        self.tokens = tokens
        self.maxDepth = maxDepth
    }

    // MARK: - Token helpers

    private var current: JinjaToken { tokens[min(p, tokens.count - 1)] }

    private func peek(_ offset: Int = 1) -> JinjaToken { tokens[min(p + offset, tokens.count - 1)] }

    private mutating func advance() { if p < tokens.count - 1 { p += 1 } }

    private func fail(_ message: String, _ pos: JinjaPos? = nil) -> ChatTemplateError {
        let at = pos ?? current.pos
        return .syntax(message: message, line: at.line, column: at.column)
    }

    private func describe(_ t: JinjaToken) -> String {
        switch t.kind {
        case .data: return "template data"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "end of statement block"
        case let .name(n): return "'\(n)'"
        case .string: return "string"
        case let .integer(v): return "integer \(v)"
        case let .float(v): return "float \(v)"
        case let .op(o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    private func isOp(_ op: String) -> Bool {
        if case let .op(o) = current.kind { return o == op }
        return false
    }

    private func isName(_ name: String) -> Bool {
        if case let .name(n) = current.kind { return n == name }
        return false
    }

    private mutating func skipOp(_ op: String) -> Bool {
        if isOp(op) { advance(); return true }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        if isName(name) { advance(); return true }
        return false
    }

    private mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw fail("expected '\(op)', got \(describe(current))") }
    }

    private mutating func expectName(_ name: String) throws {
        guard skipName(name) else { throw fail("expected '\(name)', got \(describe(current))") }
    }

    private mutating func expectIdentifier() throws -> String {
        guard case let .name(n) = current.kind else {
            throw fail("expected a name, got \(describe(current))")
        }
        advance()
        return n
    }

    private mutating func expectBlockEnd() throws {
        guard case .blockEnd = current.kind else {
            throw fail("expected end of statement block, got \(describe(current))")
        }
        advance()
    }

    private mutating func enter() throws {
        depth += 1
        if depth > maxDepth { throw fail("template nested too deeply (limit \(maxDepth))") }
    }

    private mutating func leave() { depth -= 1 }

    /// One more link of a left-nested chain (`a + b + c`, `x.y.z`, `f()()`): each link deepens
    /// the tree that evaluation and release walk recursively, so a chain counts against the
    /// nesting limit as nested brackets do (a 100,000-term `1+1+…` is an error, not a stack
    /// overflow).
    /// The caller gives the links back (`depth -= links`) when its chain ends, so operands
    /// parsed later in the chain count the links above them.
    private mutating func link(_ links: inout Int) throws {
        links += 1
        depth += 1
        if depth > maxDepth { throw fail("expression chain too long (nesting limit \(maxDepth))") }
    }

    // MARK: - Statements

    mutating func parseTemplate() throws -> [JinjaNode] {
        let body = try subparse(endTags: [])
        if case .eof = current.kind { return body }
        if case let .name(tag) = current.kind {
            throw fail("unexpected tag '\(tag)'")
        }
        throw fail("unexpected \(describe(current))")
    }

    /// Parses nodes until EOF or a block tag whose name is in `endTags`; leaves the stream on
    /// that tag name.
    private mutating func subparse(endTags: Set<String>) throws -> [JinjaNode] {
        var body: [JinjaNode] = []
        while true {
            let token = current
            switch token.kind {
            case let .data(text):
                body.append(JinjaNode(kind: .text(text), pos: token.pos))
                advance()
            case .variableBegin:
                advance()
                let expr = try parseTuple()
                guard case .variableEnd = current.kind else {
                    throw fail("expected end of print statement, got \(describe(current))")
                }
                advance()
                body.append(JinjaNode(kind: .output(expr), pos: token.pos))
            case .blockBegin:
                advance()
                guard case let .name(tag) = current.kind else {
                    throw fail("tag name expected")
                }
                if endTags.contains(tag) { return body }
                try enter()
                body.append(contentsOf: try parseStatement(tag: tag, begin: token.pos))
                leave()
            case .eof:
                if !endTags.isEmpty {
                    let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
                    throw fail("unexpected end of template, expected \(expected)")
                }
                return body
            default:
                throw fail("unexpected \(describe(token))")
            }
        }
    }

    /// Parses `{% tag %}body{% end %}`; returns after consuming the end tag's block end.
    private mutating func parseBody(until end: String) throws -> [JinjaNode] {
        try expectBlockEnd()
        let body = try subparse(endTags: [end])
        try expectName(end)
        try expectBlockEnd()
        return body
    }

    private mutating func parseStatement(tag: String, begin: JinjaPos) throws -> [JinjaNode] {
        let pos = current.pos
        switch tag {
        case "if":
            advance()
            var branches: [(JinjaExpr, [JinjaNode])] = []
            var otherwise: [JinjaNode] = []
            var test = try parseTuple(withCondexpr: false)
            while true {
                try expectBlockEnd()
                let body = try subparse(endTags: ["elif", "else", "endif"])
                branches.append((test, body))
                if skipName("elif") {
                    test = try parseTuple(withCondexpr: false)
                    continue
                }
                if skipName("else") {
                    otherwise = try parseBody(until: "endif")
                } else {
                    try expectName("endif")
                    try expectBlockEnd()
                }
                break
            }
            return [JinjaNode(kind: .ifStmt(branches: branches, otherwise: otherwise), pos: pos)]

        case "for":
            advance()
            let target = try parseAssignTarget(extraEnd: ["in"], withNamespace: false)
            try expectName("in")
            let iter = try parseTuple(withCondexpr: false, extraEnd: ["recursive"])
            var filter: JinjaExpr? = nil
            if skipName("if") { filter = try parseExpression() }
            if isName("recursive") { throw fail("recursive loops are not supported") }
            try expectBlockEnd()
            loopDepth += 1
            let body = try subparse(endTags: ["endfor", "else"])
            loopDepth -= 1
            var otherwise: [JinjaNode] = []
            if skipName("else") {
                otherwise = try parseBody(until: "endfor")
            } else {
                try expectName("endfor")
                try expectBlockEnd()
            }
            return [JinjaNode(kind: .forStmt(target: target, iter: iter, filter: filter, body: body,
                                        otherwise: otherwise), pos: pos)]

        case "set":
            advance()
            let target = try parseAssignTarget(extraEnd: [], withNamespace: true)
            if skipOp("=") {
                let value = try parseTuple()
                try expectBlockEnd()
                return [JinjaNode(kind: .set(target, value), pos: pos)]
            }
            let filters = try parseFilterChain(startInline: false)
            let body = try parseBody(until: "endset")
            return [JinjaNode(kind: .setBlock(target, filters: filters, body: body), pos: pos)]

        case "macro":
            advance()
            let name = try expectIdentifier()
            let (params, defaults) = try parseSignature()
            let savedLoop = loopDepth
            loopDepth = 0
            let body = try parseBody(until: "endmacro")
            loopDepth = savedLoop
            return [JinjaNode(kind: .macro(JinjaMacroDef(name: name, params: params, defaults: defaults, body: body,
                                               pos: pos)), pos: pos)]

        case "call":
            advance()
            var params: [String] = []
            var defaults: [JinjaExpr] = []
            if isOp("(") { (params, defaults) = try parseSignature() }
            let call = try parseExpression()
            guard case .call = call.kind else { throw fail("expected call", call.pos) }
            let savedLoop = loopDepth
            loopDepth = 0
            let body = try parseBody(until: "endcall")
            loopDepth = savedLoop
            return [JinjaNode(kind: .callBlock(call: call, callerParams: params, callerDefaults: defaults, body: body),
                         pos: pos)]

        case "filter":
            advance()
            let filters = try parseFilterChain(startInline: true)
            let body = try parseBody(until: "endfilter")
            return [JinjaNode(kind: .filterBlock(filters: filters, body: body), pos: pos)]

        case "with":
            advance()
            var assignments: [(JinjaAssignTarget, JinjaExpr)] = []
            while true {
                if case .blockEnd = current.kind { break }
                if !assignments.isEmpty { try expectOp(",") }
                let target = try parseAssignTarget(extraEnd: [], withNamespace: false, allowTuple: false)
                try expectOp("=")
                assignments.append((target, try parseExpression()))
            }
            let body = try parseBody(until: "endwith")
            return [JinjaNode(kind: .with(assignments: assignments, body: body), pos: pos)]

        case "generation":
            // HF's AssistantTracker extension: a transparent marker block.
            advance()
            let body = try parseBody(until: "endgeneration")
            return body

        case "print":
            advance()
            var nodes: [JinjaNode] = []
            while true {
                if case .blockEnd = current.kind { break }
                if !nodes.isEmpty { try expectOp(",") }
                let e = try parseExpression()
                nodes.append(JinjaNode(kind: .output(e), pos: e.pos))
            }
            try expectBlockEnd()
            return nodes

        case "break", "continue":
            if loopDepth == 0 { throw fail("'\(tag)' outside of a loop") }
            advance()
            try expectBlockEnd()
            return [JinjaNode(kind: tag == "break" ? .breakLoop : .continueLoop, pos: pos)]

        default:
            throw fail("unknown tag '\(tag)'", pos)
        }
    }

    private mutating func parseSignature() throws -> ([String], [JinjaExpr]) {
        try expectOp("(")
        var params: [String] = []
        var defaults: [JinjaExpr] = []
        while !isOp(")") {
            if !params.isEmpty { try expectOp(",") }
            if isOp(")") { break }
            let name = try expectIdentifier()
            if skipOp("=") {
                defaults.append(try parseExpression())
            } else if !defaults.isEmpty {
                throw fail("non-default argument follows default argument")
            }
            params.append(name)
        }
        try expectOp(")")
        return (params, defaults)
    }

    private mutating func parseAssignTarget(extraEnd: Set<String>, withNamespace: Bool,
                                            allowTuple: Bool = true) throws -> JinjaAssignTarget {
        var items: [JinjaAssignTarget] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            let pos = current.pos
            let name = try expectIdentifier()
            if ["true", "false", "True", "False", "none", "None"].contains(name) {
                throw fail("can't assign to '\(name)'", pos)
            }
            if withNamespace && skipOp(".") {
                let attr = try expectIdentifier()
                items.append(.namespaceAttr(name, attr))
            } else {
                items.append(.name(name))
            }
            if allowTuple && isOp(",") { isTuple = true } else { break }
        }
        if items.isEmpty { throw fail("expected an assignment target") }
        return isTuple ? .tuple(items) : items[0]
    }

    private func isTupleEnd(_ extraEnd: Set<String>) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd: return true
        case let .op(o): return o == ")"
        case let .name(n): return extraEnd.contains(n)
        default: return false
        }
    }

    private mutating func parseFilterChain(startInline: Bool) throws -> [JinjaFilterCall] {
        var filters: [JinjaFilterCall] = []
        var inline = startInline
        while inline || isOp("|") {
            if !inline { advance() }
            inline = false
            filters.append(try parseFilterCall())
        }
        return filters
    }

    private mutating func parseFilterCall() throws -> JinjaFilterCall {
        let pos = current.pos
        var name = try expectIdentifier()
        while skipOp(".") { name += "." + (try expectIdentifier()) }
        guard JinjaFilters.known.contains(name) else {
            throw ChatTemplateError.unknownFilter(name: name, line: pos.line, column: pos.column)
        }
        let args = isOp("(") ? try parseCallArgs() : JinjaCallArgs()
        return JinjaFilterCall(name: name, args: args, pos: pos)
    }

    // MARK: - Expressions

    mutating func parseTuple(withCondexpr: Bool = true, extraEnd: Set<String> = [],
                             explicitParens: Bool = false) throws -> JinjaExpr {
        let pos = current.pos
        var items: [JinjaExpr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            items.append(withCondexpr ? try parseExpression() : try parseOr())
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let first = items.first { return first }
            if !explicitParens { throw fail("expected an expression, got \(describe(current))") }
        }
        return JinjaExpr(kind: .tuple(items), pos: pos)
    }

    mutating func parseExpression() throws -> JinjaExpr {
        try enter()
        defer { leave() }
        var expr = try parseOr()
        var links = 0
        defer { depth -= links }
        while skipName("if") {
            try link(&links)
            let test = try parseOr()
            var otherwise: JinjaExpr? = nil
            if skipName("else") { otherwise = try parseExpression() }
            expr = JinjaExpr(kind: .conditional(test: test, then: expr, otherwise: otherwise), pos: expr.pos)
        }
        return expr
    }

    private mutating func parseOr() throws -> JinjaExpr {
        var left = try parseAnd()
        var links = 0
        defer { depth -= links }
        while skipName("or") {
            try link(&links)
            let right = try parseAnd()
            left = JinjaExpr(kind: .binary(.or, left, right), pos: left.pos)
        }
        return left
    }

    private mutating func parseAnd() throws -> JinjaExpr {
        var left = try parseNot()
        var links = 0
        defer { depth -= links }
        while skipName("and") {
            try link(&links)
            let right = try parseNot()
            left = JinjaExpr(kind: .binary(.and, left, right), pos: left.pos)
        }
        return left
    }

    private mutating func parseNot() throws -> JinjaExpr {
        if isName("not") {
            let pos = current.pos
            advance()
            try enter()
            defer { leave() }
            return JinjaExpr(kind: .not(try parseNot()), pos: pos)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> JinjaExpr {
        let expr = try parseMath1()
        var ops: [(JinjaCompareOp, JinjaExpr)] = []
        while true {
            var op: JinjaCompareOp? = nil
            if case let .op(o) = current.kind {
                switch o {
                case "==": op = .eq
                case "!=": op = .ne
                case "<": op = .lt
                case "<=": op = .le
                case ">": op = .gt
                case ">=": op = .ge
                default: break
                }
                if op != nil { advance() }
            } else if isName("in") {
                advance()
                op = .in
            } else if isName("not"), case let .name(n) = peek().kind, n == "in" {
                advance()
                advance()
                op = .notIn
            }
            guard let op else { break }
            ops.append((op, try parseMath1()))
        }
        return ops.isEmpty ? expr : JinjaExpr(kind: .compare(expr, ops), pos: expr.pos)
    }

    private mutating func parseMath1() throws -> JinjaExpr {
        var left = try parseConcat()
        var links = 0
        defer { depth -= links }
        while isOp("+") || isOp("-") {
            try link(&links)
            let op: JinjaBinaryOp = isOp("+") ? .add : .sub
            advance()
            let right = try parseConcat()
            left = JinjaExpr(kind: .binary(op, left, right), pos: left.pos)
        }
        return left
    }

    private mutating func parseConcat() throws -> JinjaExpr {
        let first = try parseMath2()
        var items = [first]
        while skipOp("~") { items.append(try parseMath2()) }
        return items.count == 1 ? first : JinjaExpr(kind: .concat(items), pos: first.pos)
    }

    private mutating func parseMath2() throws -> JinjaExpr {
        var left = try parsePow()
        var links = 0
        defer { depth -= links }
        while true {
            var op: JinjaBinaryOp? = nil
            if case let .op(o) = current.kind {
                switch o {
                case "*": op = .mul
                case "/": op = .div
                case "//": op = .floorDiv
                case "%": op = .mod
                default: break
                }
            }
            guard let op else { break }
            try link(&links)
            advance()
            let right = try parsePow()
            left = JinjaExpr(kind: .binary(op, left, right), pos: left.pos)
        }
        return left
    }

    private mutating func parsePow() throws -> JinjaExpr {
        var left = try parseUnary(withFilter: true)
        var links = 0
        defer { depth -= links }
        while skipOp("**") {
            try link(&links)
            let right = try parseUnary(withFilter: true)
            left = JinjaExpr(kind: .binary(.pow, left, right), pos: left.pos)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool) throws -> JinjaExpr {
        let pos = current.pos
        try enter()
        defer { leave() }
        var node: JinjaExpr
        if skipOp("-") {
            node = JinjaExpr(kind: .neg(try parseUnary(withFilter: false)), pos: pos)
        } else if skipOp("+") {
            node = JinjaExpr(kind: .pos(try parseUnary(withFilter: false)), pos: pos)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws -> JinjaExpr {
        let token = current
        switch token.kind {
        case let .name(n):
            advance()
            switch n {
            case "true", "True": return JinjaExpr(kind: .literal(.bool(true)), pos: token.pos)
            case "false", "False": return JinjaExpr(kind: .literal(.bool(false)), pos: token.pos)
            case "none", "None": return JinjaExpr(kind: .literal(.none), pos: token.pos)
            default: return JinjaExpr(kind: .name(n), pos: token.pos)
            }
        case let .string(s):
            advance()
            var value = s
            while case let .string(more) = current.kind {
                value += more
                advance()
            }
            return JinjaExpr(kind: .literal(.string(value)), pos: token.pos)
        case let .integer(v):
            advance()
            return JinjaExpr(kind: .literal(.int(v)), pos: token.pos)
        case let .float(v):
            advance()
            return JinjaExpr(kind: .literal(.double(v)), pos: token.pos)
        case .op("("):
            advance()
            let e = try parseTuple(explicitParens: true)
            try expectOp(")")
            return e
        case .op("["):
            advance()
            var items: [JinjaExpr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return JinjaExpr(kind: .list(items), pos: token.pos)
        case .op("{"):
            advance()
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
            }
            try expectOp("}")
            return JinjaExpr(kind: .dict(pairs), pos: token.pos)
        default:
            throw fail("unexpected \(describe(token))")
        }
    }

    private mutating func parsePostfix(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        var links = 0
        defer { depth -= links }
        while true {
            if isOp(".") || isOp("[") || isOp("(") { try link(&links) }
            if isOp(".") {
                let pos = current.pos
                advance()
                switch current.kind {
                case let .name(attr):
                    advance()
                    node = JinjaExpr(kind: .getattr(node, attr), pos: pos)
                case let .integer(i):
                    advance()
                    node = JinjaExpr(kind: .getitem(node, JinjaExpr(kind: .literal(.int(i)), pos: pos)), pos: pos)
                default:
                    throw fail("expected name or number after '.'")
                }
            } else if isOp("[") {
                let pos = current.pos
                advance()
                var args: [JinjaExpr] = []
                while !isOp("]") {
                    if !args.isEmpty { try expectOp(",") }
                    args.append(try parseSubscribed())
                }
                try expectOp("]")
                guard !args.isEmpty else { throw fail("expected subscript expression", pos) }
                let arg = args.count == 1 ? args[0] : JinjaExpr(kind: .tuple(args), pos: pos)
                node = JinjaExpr(kind: .getitem(node, arg), pos: pos)
            } else if isOp("(") {
                let pos = current.pos
                node = JinjaExpr(kind: .call(node, try parseCallArgs()), pos: pos)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscribed() throws -> JinjaExpr {
        let pos = current.pos
        var start: JinjaExpr? = nil
        if !isOp(":") {
            let e = try parseExpression()
            if !isOp(":") { return e }
            start = e
        }
        advance()  // ':'
        var stop: JinjaExpr? = nil
        var step: JinjaExpr? = nil
        if !isOp(":") && !isOp("]") && !isOp(",") { stop = try parseExpression() }
        if skipOp(":") {
            if !isOp("]") && !isOp(",") { step = try parseExpression() }
        }
        return JinjaExpr(kind: .slice(start, stop, step), pos: pos)
    }

    private mutating func parseCallArgs() throws -> JinjaCallArgs {
        let open = current.pos
        try expectOp("(")
        var args = JinjaCallArgs()
        var first = true
        while !isOp(")") {
            if !first {
                try expectOp(",")
                if isOp(")") { break }
            }
            first = false
            if isOp("*") || isOp("**") {
                throw fail("*args / **kwargs in calls are not supported")
            }
            if case let .name(key) = current.kind, case .op("=") = peek().kind {
                advance()
                advance()
                args.keywords.append(JinjaKeyword(name: key, value: try parseExpression()))
            } else {
                if !args.keywords.isEmpty {
                    throw fail("positional argument follows keyword argument", open)
                }
                args.positional.append(try parseExpression())
            }
        }
        try expectOp(")")
        return args
    }

    private mutating func parseFilterExpr(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if isOp("|") {
                advance()
                let f = try parseFilterCall()
                node = JinjaExpr(kind: .filter(node, f), pos: f.pos)
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                let pos = current.pos
                node = JinjaExpr(kind: .call(node, try parseCallArgs()), pos: pos)
            } else {
                return node
            }
        }
    }

    private mutating func parseTest(_ subject: JinjaExpr) throws -> JinjaExpr {
        let pos = current.pos
        advance()  // 'is'
        let negated = skipName("not")
        let namePos = current.pos
        var name = try expectIdentifier()
        while skipOp(".") { name += "." + (try expectIdentifier()) }
        guard JinjaTests.known.contains(name) else {
            throw ChatTemplateError.unknownTest(name: name, line: namePos.line, column: namePos.column)
        }
        var args = JinjaCallArgs()
        if isOp("(") {
            args = try parseCallArgs()
        } else {
            var takesArg = false
            switch current.kind {
            case let .name(n): takesArg = !["else", "or", "and"].contains(n)
                if n == "is" { throw fail("you cannot chain multiple tests with 'is'") }
            case .string, .integer, .float: takesArg = true
            case .op("["), .op("{"): takesArg = true
            default: takesArg = false
            }
            if takesArg {
                let arg = try parsePostfix(try parsePrimary())
                args.positional = [arg]
            }
        }
        return JinjaExpr(kind: .test(subject, name: name, args: args, negated: negated), pos: pos)
    }
}
