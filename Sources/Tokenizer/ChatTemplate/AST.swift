// Syntax tree for the Jinja subset.

enum JinjaBinaryOp: Sendable {
    case add, sub, mul, div, floorDiv, mod, pow, and, or
}

enum JinjaCompareOp: Sendable {
    case eq, ne, lt, le, gt, ge, `in`, notIn
}

enum JinjaLiteral: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

struct JinjaKeyword: Sendable {
    var name: String
    var value: JinjaExpr
}

struct JinjaCallArgs: Sendable {
    var positional: [JinjaExpr] = []
    var keywords: [JinjaKeyword] = []
}

struct JinjaFilterCall: Sendable {
    var name: String
    var args: JinjaCallArgs
    var pos: JinjaPos
}

indirect enum JinjaExprKind: Sendable {
    case literal(JinjaLiteral)
    case name(String)
    case list([JinjaExpr])
    case tuple([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    case getattr(JinjaExpr, String)
    case getitem(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr?, JinjaExpr?, JinjaExpr?)
    case call(JinjaExpr, JinjaCallArgs)
    case filter(JinjaExpr, JinjaFilterCall)
    case test(JinjaExpr, name: String, args: JinjaCallArgs, negated: Bool)
    case neg(JinjaExpr)
    case pos(JinjaExpr)
    case not(JinjaExpr)
    case binary(JinjaBinaryOp, JinjaExpr, JinjaExpr)
    case concat([JinjaExpr])
    case compare(JinjaExpr, [(JinjaCompareOp, JinjaExpr)])
    case conditional(test: JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
}

struct JinjaExpr: Sendable {
    var kind: JinjaExprKind
    var pos: JinjaPos
}

indirect enum JinjaAssignTarget: Sendable {
    case name(String)
    case namespaceAttr(String, String)
    case tuple([JinjaAssignTarget])
}

struct JinjaMacroDef: Sendable {
    var name: String
    var params: [String]
    var defaults: [JinjaExpr]  // aligned to the last `defaults.count` params
    var body: [JinjaNode]
    var pos: JinjaPos
}

indirect enum JinjaNodeKind: Sendable {
    case text(String)
    case output(JinjaExpr)
    case ifStmt(branches: [(JinjaExpr, [JinjaNode])], otherwise: [JinjaNode])
    case forStmt(target: JinjaAssignTarget, iter: JinjaExpr, filter: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode])
    case set(JinjaAssignTarget, JinjaExpr)
    case setBlock(JinjaAssignTarget, filters: [JinjaFilterCall], body: [JinjaNode])
    case macro(JinjaMacroDef)
    case callBlock(call: JinjaExpr, callerParams: [String], callerDefaults: [JinjaExpr], body: [JinjaNode])
    case filterBlock(filters: [JinjaFilterCall], body: [JinjaNode])
    case with(assignments: [(JinjaAssignTarget, JinjaExpr)], body: [JinjaNode])
    case scope([JinjaNode])
    case breakLoop
    case continueLoop
}

struct JinjaNode: Sendable {
    var kind: JinjaNodeKind
    var pos: JinjaPos
}
