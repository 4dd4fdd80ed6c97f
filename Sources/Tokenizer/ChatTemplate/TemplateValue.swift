// Public value types for the chat-template renderer.

/// An insertion-ordered string-keyed dictionary. Key order is kept because `tojson` output
/// (tool schemas in particular) must match Python's `json.dumps`, which follows insertion order.
public struct TemplateObject: Sendable, Equatable, ExpressibleByDictionaryLiteral, Sequence {
    public typealias Element = (key: String, value: TemplateValue)

    public private(set) var keys: [String] = []
    private var storage: [String: TemplateValue] = [:]

    public init() {}

    public init(_ pairs: [(String, TemplateValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public init(dictionaryLiteral elements: (String, TemplateValue)...) {
        for (key, value) in elements { self[key] = value }
    }

    public subscript(key: String) -> TemplateValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// Entries in insertion order.
    public var entries: [Element] {
        keys.compactMap { key in storage[key].map { (key: key, value: $0) } }
    }

    public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }

    /// Equality follows Python's dict semantics: same keys with equal values, order ignored.
    public static func == (lhs: TemplateObject, rhs: TemplateObject) -> Bool {
        lhs.storage == rhs.storage
    }
}

/// A JSON-like value passed into a template context (messages, tools, extra variables).
public indirect enum TemplateValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([TemplateValue])
    case object(TemplateObject)
}

extension TemplateValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .none }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, TemplateValue)...) {
        self = .object(TemplateObject(elements))
    }
}

extension TemplateValue {
    /// Parses JSON text (e.g. an OpenAI-style `tools` array) keeping object key order.
    /// Integers that fit in `Int` become `.int`, other numbers `.double`.
    public init(json: String) throws {
        var parser = JinjaJSONReader(text: json)
        self = try parser.parseDocument()
    }

    /// Serializes like Python's `json.dumps(value, ensure_ascii=False)` (what `tojson` emits).
    public func jsonString(indent: Int? = nil) -> String {
        var out = ""
        JinjaJSONWriter.write(JinjaValue(self), into: &out, indent: indent.map { String(repeating: " ", count: max(0, $0)) },
                         itemSeparator: indent == nil ? ", " : ",", keySeparator: ": ",
                         sortKeys: false, ensureASCII: false, level: 0)
        return out
    }
}

/// One chat turn. `extra` carries additional message fields such as `tool_calls`, `name` or
/// `tool_call_id`; they are added after `role` and `content`. An `extra["content"]` entry
/// replaces the string content (use it for `null` content or a list of content parts).
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public var extra: TemplateObject

    public init(role: String, content: String) {
        self.role = role
        self.content = content
        self.extra = [:]
    }

    public init(role: String, content: String, extra: TemplateObject) {
        self.role = role
        self.content = content
        self.extra = extra
    }

    /// The message as the template sees it: `{"role": ..., "content": ..., ...extra}`.
    public var templateValue: TemplateValue {
        var object: TemplateObject = ["role": .string(role), "content": .string(content)]
        for (key, value) in extra { object[key] = value }
        return .object(object)
    }
}

/// Errors from parsing or rendering a chat template. Positions are 1-based line and column
/// (column counted in Unicode scalars) in the template source after newline normalization.
public enum ChatTemplateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Malformed template text.
    case syntax(message: String, line: Int, column: Int)
    /// A filter name the renderer does not know (Jinja reports this at compile time too).
    case unknownFilter(name: String, line: Int, column: Int)
    /// A test name (`x is foo`) the renderer does not know.
    case unknownTest(name: String, line: Int, column: Int)
    /// Jinja's UndefinedError: an undefined value was used in a way that needs a value.
    case undefined(message: String, line: Int, column: Int)
    /// Jinja's TypeError / ValueError / TemplateRuntimeError equivalents.
    case runtime(message: String, line: Int, column: Int)
    /// `raise_exception(message)` was called by the template.
    case raised(String)
    /// Rendered output (or an intermediate string) grew past the configured byte limit.
    case outputLimitExceeded(limit: Int)
    /// More loop iterations than the configured limit.
    case iterationLimitExceeded(limit: Int)
    /// Macro calls or data nesting went deeper than the configured limit.
    case recursionLimitExceeded(limit: Int)
    /// More evaluation work (expressions evaluated, items scanned) than the configured budget.
    case stepLimitExceeded(limit: Int)
    /// Bad input data (e.g. malformed JSON given to `TemplateValue(json:)`).
    case invalidInput(String)

    public var description: String {
        switch self {
        case let .syntax(message, line, column):
            return "template syntax error at \(line):\(column): \(message)"
        case let .unknownFilter(name, line, column):
            return "unknown filter '\(name)' at \(line):\(column)"
        case let .unknownTest(name, line, column):
            return "unknown test '\(name)' at \(line):\(column)"
        case let .stepLimitExceeded(limit):
            return "template evaluation exceeded its budget of \(limit) steps"
        case let .undefined(message, line, column):
            return "undefined value at \(line):\(column): \(message)"
        case let .runtime(message, line, column):
            return "template error at \(line):\(column): \(message)"
        case let .raised(message):
            return "template raised: \(message)"
        case let .outputLimitExceeded(limit):
            return "template output exceeded \(limit) bytes"
        case let .iterationLimitExceeded(limit):
            return "template exceeded \(limit) loop iterations"
        case let .recursionLimitExceeded(limit):
            return "template exceeded nesting depth \(limit)"
        case let .invalidInput(message):
            return "invalid input: \(message)"
        }
    }
}

/// Guards against runaway templates.
public struct ChatTemplateLimits: Sendable, Equatable {
    /// Maximum UTF-8 size of the output and of any intermediate string or capture.
    public var maxOutputBytes: Int = 1 << 20
    /// Maximum number of loop iterations (all loops of one render together).
    public var maxLoopIterations: Int = 1_000_000
    /// Maximum macro call depth.
    public var maxCallDepth: Int = 64
    /// Maximum nesting of expressions / statements when parsing, and of input data.
    public var maxNestingDepth: Int = 128
    /// Maximum evaluation work of one render: every expression evaluated and every item a
    /// membership test, filter or loop walks counts one step. Real chat templates take
    /// thousands; the budget stops a template that would keep a server busy for seconds.
    public var maxSteps: Int = 20_000_000

    public init() {}
}
