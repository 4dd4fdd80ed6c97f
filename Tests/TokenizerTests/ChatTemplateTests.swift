import Foundation
import Testing
import Tokenizer

// MARK: - Helpers

private func render(_ source: String, _ context: [String: TemplateValue] = [:]) throws -> String {
    try ChatTemplate(source: source).render(context: context)
}

private struct FixtureCase {
    var label: String
    var messages: [TemplateValue]
    var addGenerationPrompt: Bool
    var bosToken: String
    var eosToken: String
    var extra: [String: TemplateValue]
    var fixedTime: Int64?
    var expected: String?
    var raises: String?
}

private func loadCases(_ json: String) throws -> [FixtureCase] {
    guard case let .array(items) = try TemplateValue(json: json) else { return [] }
    return items.compactMap { item -> FixtureCase? in
        guard case let .object(o) = item else { return nil }
        func str(_ k: String) -> String? {
            if case let .string(s)? = o[k] { return s }
            return nil
        }
        var extra: [String: TemplateValue] = [:]
        if case let .object(e)? = o["extra"] {
            for (k, v) in e { extra[k] = v }
        }
        var messages: [TemplateValue] = []
        if case let .array(m)? = o["messages"] { messages = m }
        var fixed: Int64? = nil
        if case let .int(t)? = o["fixed_time"] { fixed = Int64(t) }
        var addGen = true
        if case let .bool(b)? = o["add_generation_prompt"] { addGen = b }
        return FixtureCase(label: str("label") ?? "", messages: messages, addGenerationPrompt: addGen,
                           bosToken: str("bos_token") ?? "", eosToken: str("eos_token") ?? "", extra: extra,
                           fixedTime: fixed, expected: str("expected"), raises: str("raises"))
    }
}

private func checkFixtures(_ source: String, _ casesJSON: String, minimumCases: Int) throws {
    let template = try ChatTemplate(source: source)
    let cases = try loadCases(casesJSON)
    #expect(cases.count >= minimumCases)
    for c in cases {
        var t = template
        t.fixedTime = c.fixedTime
        let tt = t
        if let raises = c.raises {
            #expect(throws: ChatTemplateError.raised(raises), "\(c.label)") {
                try tt.render(messageValues: c.messages, addGenerationPrompt: c.addGenerationPrompt,
                              bosToken: c.bosToken, eosToken: c.eosToken, extra: c.extra)
            }
        } else {
            let out = try tt.render(messageValues: c.messages, addGenerationPrompt: c.addGenerationPrompt,
                                    bosToken: c.bosToken, eosToken: c.eosToken, extra: c.extra)
            #expect(out == c.expected, "\(c.label)")
        }
    }
}

/// Renders `[ChatMessage]` through the public convenience API (the path the engine uses).
private func checkReference(_ source: String, _ casesJSON: String) throws {
    let template = try ChatTemplate(source: source)
    let cases = try loadCases(casesJSON)
    #expect(cases.count == 5)
    for c in cases {
        let messages = c.messages.compactMap { m -> ChatMessage? in
            guard case let .object(o) = m, case let .string(role)? = o["role"], case let .string(content)? = o["content"]
            else { return nil }
            return ChatMessage(role: role, content: content)
        }
        #expect(messages.count == c.messages.count)
        let out = try template.render(messages: messages, addGenerationPrompt: c.addGenerationPrompt)
        #expect(out == c.expected)
    }
}

// MARK: - Real model templates

@Suite struct ChatTemplateModelTests {
    @Test func smolLM2MatchesLlamaCppReference() throws {
        try checkReference(ChatTemplateFixtures.smollm2Template, ChatTemplateFixtures.smollm2ReferenceCases)
    }

    @Test func qwenMatchesLlamaCppReference() throws {
        try checkReference(ChatTemplateFixtures.qwenTemplate, ChatTemplateFixtures.qwenReferenceCases)
    }

    @Test func qwenToolsAndToolCalls() throws {
        try checkFixtures(ChatTemplateFixtures.qwenTemplate, ChatTemplateFixtures.qwenCases, minimumCases: 6)
    }

    @Test func llama3() throws {
        try checkFixtures(ChatTemplateFixtures.llama3Template, ChatTemplateFixtures.llama3Cases, minimumCases: 6)
    }

    @Test func llama31WithToolsAndBuiltinTools() throws {
        try checkFixtures(ChatTemplateFixtures.llama31Template, ChatTemplateFixtures.llama31Cases, minimumCases: 11)
    }

    @Test func llama32WithStrftimeAndTools() throws {
        try checkFixtures(ChatTemplateFixtures.llama32Template, ChatTemplateFixtures.llama32Cases, minimumCases: 8)
    }

    @Test func gemma3() throws {
        try checkFixtures(ChatTemplateFixtures.gemma3Template, ChatTemplateFixtures.gemma3Cases, minimumCases: 8)
    }

    @Test func qwenWithChatMessageExtraFields() throws {
        let t = try ChatTemplate(source: ChatTemplateFixtures.qwenTemplate)
        let call: TemplateValue = ["type": "function", "function": ["name": "f", "arguments": ["b": 2, "a": 1]]]
        let messages = [
            ChatMessage(role: "user", content: "go"),
            ChatMessage(role: "assistant", content: "", extra: ["tool_calls": [call]]),
            ChatMessage(role: "tool", content: "ok"),
        ]
        let out = try t.render(messages: messages, addGenerationPrompt: true)
        #expect(out.contains("<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"b\": 2, \"a\": 1}}\n</tool_call><|im_end|>\n"))
        #expect(out.hasSuffix("<|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>\n<|im_start|>assistant\n"))
    }

    @Test func toolsFromJSONKeepKeyOrder() throws {
        let t = try ChatTemplate(source: ChatTemplateFixtures.qwenTemplate)
        let tools = try TemplateValue(json: #"[{"type":"function","function":{"name":"z","parameters":{"y":1,"x":[true,null,1.5]}}}]"#)
        let out = try t.render(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: false,
                               extra: ["tools": tools])
        #expect(out.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"z\", \"parameters\": {\"y\": 1, \"x\": [true, null, 1.5]}}}\n</tools>"))
    }
}

// MARK: - Expression semantics

@Suite struct ChatTemplateExpressionTests {
    @Test func arithmetic() throws {
        #expect(try render("{{ 1 + 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % -3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}") == "3|3|-4|-2|2|1024")
        #expect(try render("{{ 7 / 2 }}|{{ 6 / 2 }}|{{ 2 ** -1 }}|{{ 1.5 + 1 }}|{{ 3.0 * 2 }}|{{ 7.5 // 2 }}") == "3.5|3.0|0.5|2.5|6.0|3.0")
        #expect(try render("{{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}|{{ -(3) }}|{{ +4 }}|{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}") == "64|4|-3|4|7|9")
        #expect(try render("{{ true + 1 }}|{{ 10 - 2.5 }}") == "2|7.5")
    }

    @Test func floatPrintingFollowsPythonRepr() throws {
        #expect(try render("{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 1.0e-5 }}|{{ 0.0001 }}|{{ 1 / 3 }}|{{ -0.0 }}|{{ 1e100 }}")
                == "0.30000000000000004|1e+16|1000000000000000.0|1e-05|0.0001|0.3333333333333333|-0.0|1e+100")
        #expect(try render("{{ x }}|{{ y }}", ["x": 2.5e-7, "y": 123456789.125]) == "2.5e-07|123456789.125")
    }

    @Test func stringsAndSequences() throws {
        #expect(try render(#"{{ "a" + 'b' }}|{{ "ab" * 3 }}|{{ 3 * "x" }}|{{ "x" ~ 1 ~ none ~ true }}|{{ "a" "b" }}"#)
                == "ab|ababab|xxx|x1NoneTrue|ab")
        #expect(try render("{{ [1] + [2] }}|{{ [1, 2] * 2 }}|{{ (1, 2) }}|{{ (1,) }}|{{ [] }}") == "[1, 2]|[1, 2, 1, 2]|(1, 2)|(1,)|[]")
        #expect(try render(#"{{ none }}|{{ True }}|{{ false }}|{{ [1, "a", none, 1.5] }}|{{ {"a": [1], "b": "it's"} }}"#)
                == #"None|True|False|[1, 'a', None, 1.5]|{'a': [1], 'b': "it's"}"#)
    }

    @Test func literalEscapes() throws {
        #expect(try render(#"{{ 'a\nb' }}|{{ "t\tt" }}|{{ 'it\'s' }}|{{ "q\"q" }}|{{ '\\' }}|{{ '\x41\u00e9\U0001F600' }}|{{ '\d' }}"#)
                == "a\nb|t\tt|it's|q\"q|\\|Aé😀|\\d")
        #expect(try render("{{ 0x1F }}|{{ 0b101 }}|{{ 0o17 }}|{{ 1_000 }}|{{ 1e3 }}|{{ 2.5e-1 }}") == "31|5|15|1000|1000.0|0.25")
    }

    @Test func comparisonsAndLogic() throws {
        #expect(try render("{{ 1 < 2 < 3 }}|{{ 1 < 3 < 2 }}|{{ 'a' < 'b' }}|{{ [1, 2] < [1, 3] }}|{{ 1 == 1.0 }}|{{ 1 != 2 }}|{{ 2 >= 2 }}")
                == "True|False|True|True|True|True|True")
        #expect(try render("{{ 'a' in 'cat' }}|{{ 2 not in [1, 2] }}|{{ 'k' in {'k': 1} }}|{{ 'x' in none_var }}")
                == "True|False|True|False")
        #expect(try render("{{ 0 or 'd' }}|{{ 1 and 'd' }}|{{ none or [] }}|{{ not 0 }}|{{ not 'a' }}|{{ not true == false }}")
                == "d|d|[]|True|False|True")
        #expect(try render("{{ 'x' if true else 'y' }}|{{ 'x' if false else 'y' }}|{{ 'x' if false }}|") == "x|y||")
    }

    @Test func subscriptsAndSlices() throws {
        #expect(try render("{{ 'abc'[1] }}|{{ 'abc'[-1] }}|{{ 'abcdef'[1:3] }}|{{ 'abcdef'[::-1] }}|{{ 'abcdef'[::2] }}")
                == "b|c|bc|fedcba|ace")
        #expect(try render("{{ x[1:] }}|{{ x[:-1] }}|{{ x[-2:] }}|{{ x[5:] }}|{{ x[3:0:-2] }}|{{ x[10] }}|{{ x.0 }}", ["x": [1, 2, 3, 4]])
                == "[2, 3, 4]|[1, 2, 3]|[3, 4]|[]|[4, 2]||1")
        #expect(try render("{{ m.role }}|{{ m['content'] }}|{{ m.missing }}|{{ m.items() | list }}",
                           ["m": ["role": "user", "content": "hi"]])
                == "user|hi||[('role', 'user'), ('content', 'hi')]")
        #expect(try render("{{ s[0] }}{{ s | length }}{{ s[1:] }}", ["s": "🤗é!"]) == "🤗3é!")
    }

    @Test func methods() throws {
        #expect(try render(#"{{ "  a b  c ".split() }}|{{ "a,b,,c".split(",") }}|{{ "a,b,c".split(",", 1) }}|{{ "a,b,c".rsplit(",", 1) }}"#)
                == "['a', 'b', 'c']|['a', 'b', '', 'c']|['a', 'b,c']|['a,b', 'c']")
        #expect(try render(#"{{ "  x ".strip() }}|{{ "xxyxx".lstrip("x") }}|{{ "xxyxx".rstrip("x") }}|{{ "abc".startswith("ab") }}|{{ "abc".endswith(("x", "c")) }}"#)
                == "x|yxx|xxy|True|True")
        #expect(try render(#"{{ "a-b".replace("-", "+") }}|{{ "Ab".upper() }}{{ "Ab".lower() }}|{{ "hi there".title() }}|{{ "hELLO".capitalize() }}|{{ "x".join(["a", "b"]) }}"#)
                == "a+b|ABab|Hi There|Hello|axb")
        #expect(try render(#"{{ "{} and {name}".format(1, name="b") }}|{{ "%s=%d" % ("a", 3) }}|{{ "%.2f" % 3.14159 }}|{{ "%5s|%-3s|" % ("a", "b") }}"#)
                == "1 and b|a=3|3.14|    a|b  |")
        #expect(try render("{{ d.get('a') }}|{{ d.get('z', 5) }}|{{ d.get('z') }}|{{ d.keys() | list }}|{{ d.values() | list }}",
                           ["d": ["a": 1, "b": 2]])
                == "1|5|None|['a', 'b']|[1, 2]")
    }

    @Test func listMutationIsRejectedLikeHFSandbox() throws {
        #expect(throws: ChatTemplateError.self) { try render("{% set x = [] %}{{ x.append(1) }}") }
    }
}

// MARK: - Filters

@Suite struct ChatTemplateFilterTests {
    @Test func stringFilters() throws {
        #expect(try render(#"{{ "  hi \n" | trim }}|{{ "xxhixx" | trim("x") }}|{{ "Hello" | upper }}|{{ "Hello" | lower }}|{{ "hello wORLD" | title }}|{{ "hELLO wORLD" | capitalize }}"#)
                == "hi|hi|HELLO|hello|Hello World|Hello world")
        #expect(try render(#"{{ "a,b" | replace(",", ";") }}|{{ "aaa" | replace("a", "b", 2) }}|{{ 12 | string }}|{{ "<a>&'" | escape }}|{{ "x" | safe }}"#)
                == "a;b|bba|12|&lt;a&gt;&amp;&#39;|x")
        #expect(try render("{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ 'hello world foo bar' | truncate(9) }}|{{ 'abc' | center(7) }}|{{ 'one two' | wordcount }}")
                == "a\n  b|  a\n  b|hello...|  abc  |2")
    }

    @Test func sequenceFilters() throws {
        #expect(try render("{{ x | length }}|{{ x | count }}|{{ x | first }}|{{ x | last }}|{{ x | join('-') }}|{{ x | sum }}|{{ x | max }}|{{ x | min }}",
                           ["x": [3, 1, 2]])
                == "3|3|3|2|3-1-2|6|3|1")
        #expect(try render("{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ ['b', 'A', 'c'] | sort }}|{{ [1, 2, 3] | reverse | list }}|{{ 'abc' | reverse }}")
                == "[1, 2, 3]|[3, 2, 1]|['A', 'b', 'c']|[3, 2, 1]|cba")
        #expect(try render("{{ 'abc' | list }}|{{ [1, 2, 2, 'A', 'a'] | unique | list }}|{{ [1, 2, 3, 4, 5] | batch(2) | list }}|{{ range(3) | list }}|{{ range(10, 0, -4) | list }}")
                == "['a', 'b', 'c']|[1, 2, 'A']|[[1, 2], [3, 4], [5]]|[0, 1, 2]|[10, 6, 2]")
        #expect(try render("{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('even') | list }}|{{ [1, 2] | map('string') | join(',') }}")
                == "[1, 3]|[1, 3]|1,2")
    }

    @Test func attributeFilters() throws {
        let msgs: TemplateValue = [["role": "user", "ok": true], ["role": "assistant", "ok": false], ["role": "user", "ok": true]]
        #expect(try render("{{ m | selectattr('role', 'equalto', 'user') | list | length }}|{{ m | rejectattr('ok') | map(attribute='role') | join }}|{{ m | map(attribute='role') | unique | list }}|{{ m | map(attribute='x', default='-') | join }}",
                           ["m": msgs])
                == "2|assistant|['user', 'assistant']|---")
        #expect(try render("{{ d | items | list }}|{{ d | dictsort }}|{{ d | dictsort(by='value') }}", ["d": ["b": 1, "a": 2]])
                == "[('b', 1), ('a', 2)]|[('a', 2), ('b', 1)]|[('b', 1), ('a', 2)]")
        #expect(try render("{{ x | sort(attribute='n') | map(attribute='n') | list }}|{{ x | sum(attribute='n') }}",
                           ["x": [["n": 2], ["n": 1]]])
                == "[1, 2]|3")
    }

    @Test func numberFilters() throws {
        #expect(try render("{{ 3.7 | int }}|{{ '42' | int }}|{{ '4.5' | int }}|{{ 'x' | int(7) }}|{{ '2.5' | float }}|{{ 3 | float }}|{{ -3 | abs }}")
                == "3|42|4|7|2.5|3.0|3")
        #expect(try render("{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 2.675 | round(2) }}|{{ 3.14159 | round(2, 'floor') }}|{{ 3.1 | round(method='ceil') }}|{{ 7 | round }}")
                == "2.0|4.0|2.67|3.14|4.0|7")
    }

    @Test func defaultFilter() throws {
        #expect(try render("{{ x | default('d') }}|{{ none | default('d') }}|{{ '' | default('d', true) }}|{{ x | d('z') }}|{{ 0 | default(5) }}")
                == "d|None|d|z|0")
    }

    @Test func tojsonMatchesPythonJsonDumps() throws {
        let v: TemplateValue = ["b": [1, 2], "a": ["x": .none, "y": true, "z": 1.5], "s": "é\n\"q\"\t\\ 🤗 <&>", "e": [], "o": [:]]
        #expect(try render("{{ v | tojson }}", ["v": v])
                == #"{"b": [1, 2], "a": {"x": null, "y": true, "z": 1.5}, "s": "é\n\"q\"\t\\ 🤗 <&>", "e": [], "o": {}}"#)
        #expect(try render("{{ v | tojson(indent=2) }}", ["v": ["k": [1, ["x": []]], "e": [:]]])
                == "{\n  \"k\": [\n    1,\n    {\n      \"x\": []\n    }\n  ],\n  \"e\": {}\n}")
        #expect(try render("{{ v | tojson(sort_keys=true) }}|{{ v | tojson(separators=(',', ':')) }}|{{ v | tojson(ensure_ascii=true) }}",
                           ["v": ["z": "é", "a": 1]])
                == #"{"a": 1, "z": "é"}|{"z":"é","a":1}|{"z": "\u00e9", "a": 1}"#)
        #expect(try render("{{ '\u{1}' | tojson }}|{{ 1e20 | tojson }}|{{ 3 | tojson }}|{{ none | tojson }}") == #""\u0001"|1e+20|3|null"#)
        #expect(TemplateValue.object(["a": [1, "x"]]).jsonString() == #"{"a": [1, "x"]}"#)
    }

    @Test func unknownFilterIsRejectedAtParseTime() {
        #expect(throws: ChatTemplateError.unknownFilter(name: "nope", line: 2, column: 8)) {
            try ChatTemplate(source: "a\n{{ x | nope }}")
        }
        #expect(throws: ChatTemplateError.unknownTest(name: "nope", line: 1, column: 9)) {
            try ChatTemplate(source: "{{ x is nope }}")
        }
    }
}

// MARK: - Tests (`is`)

@Suite struct ChatTemplateTestTests {
    @Test func builtinTests() throws {
        #expect(try render("{{ x is defined }}{{ x is not defined }}{{ x is undefined }}{{ none is none }}{{ n is none }}", ["n": .none])
                == "FalseTrueTrueTrueTrue")
        #expect(try render("{{ 'a' is string }}{{ 1 is number }}{{ 1.5 is number }}{{ 'a' is number }}{{ {} is mapping }}{{ [] is mapping }}")
                == "TrueTrueTrueFalseTrueFalse")
        #expect(try render("{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ [] is sequence }}{{ true is boolean }}{{ 1 is boolean }}")
                == "TrueTrueFalseTrueTrueFalse")
        #expect(try render("{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 3 is odd }}{{ 4 is even }}{{ 6 is divisibleby 3 }}")
                == "TrueFalseTrueTrueTrueTrue")
        #expect(try render("{{ 2 is equalto 2 }}{{ 2 is eq(3) }}{{ 1 is integer }}{{ 1.0 is float }}{{ 1 is in [1, 2] }}{{ 'ABC' is upper }}")
                == "TrueFalseTrueTrueTrueTrue")
    }
}

// MARK: - Statements, loops and scoping

@Suite struct ChatTemplateStatementTests {
    @Test func loopVariables() throws {
        #expect(try render("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}")
                == "1032TrueFalse3;2121FalseFalse3;3210FalseTrue3;")
        #expect(try render("{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }}:{{ loop.cycle('a', 'b') }};{% endfor %}")
                == "-2:a;1-3:b;2-:a;")
    }

    @Test func loopFeatures() throws {
        #expect(try render("{% for x in [] %}a{% else %}empty{% endfor %}") == "empty")
        #expect(try render("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}", ["d": ["b": 1, "a": [1, 2]]]) == "b=1,a=[1, 2],")
        #expect(try render("{% for k in d %}{{ k }}{% endfor %}", ["d": ["b": 1, "a": 2]]) == "ba")
        #expect(try render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}/{{ loop.index }}/{{ loop.length }} {% endfor %}") == "2/1/2 4/2/2 ")
        #expect(try render("{% for x in [1, 2, 3, 4] %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}") == "12")
        #expect(try render("{% for x in [1, 2, 3, 4] %}{% if x == 3 %}{% continue %}{% endif %}{{ x }}{% endfor %}") == "124")
        #expect(try render("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}") == "37")
    }

    @Test func scoping() throws {
        // A plain `set` inside a loop does not leak out, and each iteration starts fresh.
        #expect(try render("{% set n = 0 %}{% for x in [1, 2, 3] %}{% set n = n + x %}{{ n }}{% endfor %}|{{ n }}") == "123|0")
        #expect(try render("{% set ns = namespace(n=0) %}{% for x in [1, 2, 3] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}") == "6")
        #expect(try render("{% if true %}{% set y = 2 %}{% endif %}{{ y }}") == "2")
        #expect(try render("{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set t = 1, 2 %}{{ t }}") == "12|(1, 2)")
        #expect(try render("{% with a = 5 %}{{ a }}{% endwith %}[{{ a }}]") == "5[]")
        #expect(try render("{% set messages = messages[1:] %}{{ messages | length }}", ["messages": [1, 2, 3]]) == "2")
    }

    @Test func macrosAndBlocks() throws {
        #expect(try render("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }}")
                == "Hello, Bob! Hi, Al!")
        #expect(try render("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner{% endcall %}")
                == "<b>inner</b>")
        #expect(try render("{% set x %}captured {{ 1 + 1 }}{% endset %}[{{ x }}]|{% filter upper %}up {{ 'x' }}{% endfilter %}")
                == "[captured 2]|UP X")
        #expect(try render("{% raw %}{{ not rendered }}{% endraw %}") == "{{ not rendered }}")
    }

    @Test func globals() throws {
        #expect(throws: ChatTemplateError.raised("boom")) { try render("{{ raise_exception('boom') }}") }
        var t = try ChatTemplate(source: "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}")
        t.fixedTime = 1741910400
        #expect(try t.render(context: [:]) == "14 Mar 2025|2025-03-14 00:00")
        #expect(try render("{{ dict(a=1, b=2) }}|{{ namespace(a=1).a }}|{{ range(1, 4) | list }}") == "{'a': 1, 'b': 2}|1|[1, 2, 3]")
    }

    @Test func hfContextDefaults() throws {
        let t = try ChatTemplate(source: "{{ tools is defined }}{{ tools is none }}{{ documents is none }}{{ bos_token }}{{ add_generation_prompt }}{{ x }}")
        #expect(try t.render(messages: [], addGenerationPrompt: true, bosToken: "<s>") == "TrueTrueTrue<s>True")
        #expect(try t.render(messages: [], addGenerationPrompt: false, extra: ["tools": [1], "x": "X"]) == "TrueFalseTrueFalseX")
    }
}

// MARK: - Whitespace control

@Suite struct ChatTemplateWhitespaceTests {
    @Test func trimAndLstripBlocks() throws {
        #expect(try render("a\n  {% if true %}\n  b\n  {% endif %}\nc") == "a\n  b\nc")
        #expect(try render("line1\n    {% for i in range(2) %}\n    item{{ i }}\n    {% endfor %}\nend\n") == "line1\n    item0\n    item1\nend")
        #expect(try render("a\n{# comment #}\nb") == "a\nb")
        #expect(try render("  {{ 'x' }}  ") == "  x  ")
    }

    @Test func explicitModifiers() throws {
        #expect(try render("a\n  {%- if true -%}\n  b\n  {%- endif -%}\nc") == "abc")
        #expect(try render("a  {{- ' x ' -}}  b") == "a x b")
        #expect(try render("a\n  {#- comment -#}  \nb") == "ab")
        #expect(try render("  {%+ if true %}x{% endif %}") == "  x")
        #expect(try render("{% if true +%}\nx{% endif %}") == "\nx")
    }

    @Test func newlinesNormalized() throws {
        #expect(try render("a\r\nb\rc\n") == "a\nb\nc")
        #expect(try render("a\n\n") == "a\n")
    }
}

// MARK: - Undefined values

@Suite struct ChatTemplateUndefinedTests {
    @Test func lenientUses() throws {
        #expect(try render("[{{ u }}]{{ u | length }}{% for a in u %}x{% endfor %}{% if not u %}F{% endif %}{{ u is defined }}{{ u == u }}")
                == "[]0FFalseTrue")
        #expect(try render("{{ m.missing is defined }}|{{ m.missing | default('d') }}|{{ m.missing }}|", ["m": [:]]) == "False|d||")
        #expect(try render("{{ u | trim }}|{{ u | upper }}|{{ u | list }}|{{ u ~ 'x' }}") == "||[]|x")
    }

    @Test func strictUsesThrowWithPosition() {
        #expect(throws: ChatTemplateError.undefined(message: "'u' is undefined", line: 1, column: 5)) { try render("{{ u.attr }}") }
        #expect(throws: ChatTemplateError.undefined(message: "'u' is undefined", line: 2, column: 4)) { try render("\n{{ u + 1 }}") }
        #expect(throws: ChatTemplateError.undefined(message: "'dict object' has no attribute 'z'", line: 1, column: 7)) {
            try render("{{ m.z.w }}", ["m": [:]])
        }
        #expect(throws: ChatTemplateError.self) { try render("{{ u() }}") }
        #expect(throws: ChatTemplateError.self) { try render("{{ u | tojson }}") }
    }
}

// MARK: - Errors and limits

@Suite struct ChatTemplateErrorTests {
    @Test func syntaxErrorsCarryPositions() {
        #expect(throws: ChatTemplateError.syntax(message: "unexpected end of template, missing '}}'", line: 1, column: 3)) {
            try ChatTemplate(source: "ab{{ x ")
        }
        #expect(throws: ChatTemplateError.syntax(message: "unexpected end of template, expected 'elif' or 'else' or 'endif'", line: 2, column: 2)) {
            try ChatTemplate(source: "{% if x %}\na")
        }
        #expect(throws: ChatTemplateError.syntax(message: "unknown tag 'frob'", line: 1, column: 4)) {
            try ChatTemplate(source: "{% frob %}")
        }
        #expect(throws: ChatTemplateError.syntax(message: "unterminated string literal", line: 1, column: 4)) {
            try ChatTemplate(source: "{{ 'abc }}")
        }
        #expect(throws: ChatTemplateError.syntax(message: "unexpected ')'", line: 1, column: 6)) {
            try ChatTemplate(source: "{{ a ) }}")
        }
        #expect(throws: ChatTemplateError.syntax(message: "'break' outside of a loop", line: 1, column: 4)) {
            try ChatTemplate(source: "{% break %}")
        }
        #expect(throws: ChatTemplateError.syntax(message: "unknown tag 'endfor'", line: 1, column: 4)) {
            try ChatTemplate(source: "{% endfor %}")
        }
        #expect(throws: ChatTemplateError.syntax(message: "missing end of comment tag", line: 1, column: 2)) {
            try ChatTemplate(source: "a{# never closed")
        }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{{ 1 + }}") }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{% for %}{% endfor %}") }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{% set = 1 %}") }
        #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{{ x.}}") }
    }

    @Test func runtimeErrors() {
        #expect(throws: ChatTemplateError.runtime(message: "division by zero", line: 1, column: 4)) { try render("{{ 1 / 0 }}") }
        #expect(throws: ChatTemplateError.self) { try render("{{ 'a' < 1 }}") }
        #expect(throws: ChatTemplateError.self) { try render("{{ 'a' + 1 }}") }
        #expect(throws: ChatTemplateError.self) { try render("{% for x in none %}{% endfor %}") }
        #expect(throws: ChatTemplateError.self) { try render("{{ 9223372036854775807 + 1 }}") }
        #expect(throws: ChatTemplateError.self) { try render("{{ range(1000000) | length }}") }
    }

    @Test func outputAndWorkLimits() throws {
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1 << 20)) {
            try render("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}")
        }
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1 << 20)) { try render("{{ 'a' * 100000000000 }}") }
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1 << 20)) {
            try render("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}")
        }
        var limits = ChatTemplateLimits()
        limits.maxLoopIterations = 1000
        let loops = try ChatTemplate(source: "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", limits: limits)
        #expect(throws: ChatTemplateError.iterationLimitExceeded(limit: 1000)) { try loops.render(context: [:]) }
        let recursive = try ChatTemplate(source: "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
        #expect(throws: ChatTemplateError.recursionLimitExceeded(limit: 64)) { try recursive.render(context: [:]) }
    }

    @Test func amplificationIsBounded() throws {
        var limits = ChatTemplateLimits()
        limits.maxOutputBytes = 1000
        func small(_ source: String) throws -> String {
            try ChatTemplate(source: source, limits: limits).render(context: [:])
        }
        let setup = "{% set s = 'x' * 1000 %}{% set l = [s] * 1000 %}"
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1000)) { try small(setup + "{{ l | map('upper') | list | length }}") }
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1000)) { try small(setup + "{{ l | join }}") }
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1000)) { try small(setup + "{{ ''.join(l) | length }}") }
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1000)) { try small(setup + "{{ s | replace('x', s) | length }}") }
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1000)) { try small(setup + "{{ ('\\n' * 999) | indent(s) | length }}") }
        #expect(throws: ChatTemplateError.outputLimitExceeded(limit: 1000)) { try small(setup + "{{ l }}") }
        #expect(try small(setup + "{{ l | length }}|{{ s | length }}") == "1000|1000")
    }

    @Test func deeplyNestedRuntimeValuesDoNotCrash() throws {
        let build = "{% set ns = namespace(x=1) %}{% for i in range(20000) %}{% set ns.x = [ns.x] %}{% endfor %}"
        let printed = try render(build + "{{ ns.x }}")
        #expect(printed.hasPrefix("[[[[") && printed.contains("..."))
        #expect(throws: ChatTemplateError.self) { try render(build + "{{ ns.x | tojson }}") }
        _ = try render(build + "{{ ns.x == ns.x }}{{ ns.x | length }}")
        // Expressions just under the parser's nesting limit still evaluate.
        let nested = "{{ " + String(repeating: "(", count: 40) + "1" + String(repeating: ")", count: 40) + " }}"
        #expect(try render(nested) == "1")
    }

    @Test func deepNestingIsRejectedNotCrashing() {
        let deep = "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}"
        #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: deep) }
        let deepIf = String(repeating: "{% if true %}", count: 1000) + String(repeating: "{% endif %}", count: 1000)
        #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: deepIf) }
        var nested: TemplateValue = 1
        for _ in 0..<1000 { nested = [nested] }
        #expect(throws: ChatTemplateError.self) { try render("{{ x }}", ["x": nested]) }
    }

    /// The template bombs of the security issue: each a typed error (or a bounded render)
    /// within a second, never a stack overflow, in parsing, rendering or freeing the tree.
    @Test func templateBombsEndQuicklyWithATypedError() throws {
        func timed(_ what: String, _ body: () throws -> Void) rethrows {
            let start = Date()
            try body()
            #expect(Date().timeIntervalSince(start) < 1, "\(what) took \(Date().timeIntervalSince(start)) s")
        }
        let terms = Array(repeating: "1", count: 100_000)
        timed("1+1+…") {
            #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{{ " + terms.joined(separator: "+") + " }}") }
        }
        timed("1*1*…") {
            #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{{ " + terms.joined(separator: "*") + " }}") }
        }
        timed("a or a or …") {
            #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{{ " + terms.joined(separator: " or ") + " }}") }
        }
        timed("x.a.a.…") {
            #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{{ x" + String(repeating: ".a", count: 100_000) + " }}") }
        }
        timed("f()()…") {
            #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{{ f" + String(repeating: "()", count: 100_000) + " }}") }
        }
        timed("x[0][0]…") {
            #expect(throws: ChatTemplateError.self) { try ChatTemplate(source: "{{ x" + String(repeating: "[0]", count: 100_000) + " }}") }
        }
        timed("a value nested a million deep") {
            #expect(throws: ChatTemplateError.self) {
                try TemplateValue(json: String(repeating: "[", count: 1_000_000) + String(repeating: "]", count: 1_000_000))
            }
        }
        timed("range(100000)|unique") { _ = try? render("{{ range(100000) | unique | list | length }}") }
        timed("a quadratic membership scan") {
            #expect(throws: ChatTemplateError.stepLimitExceeded(limit: 20_000_000)) {
                try render("{% set big = range(100000) | list %}{% for i in range(1000) %}{% if -1 in big %}{% endif %}{% endfor %}")
            }
        }
        // unique keeps Python's equality: 1 == 1.0 == true, strings by code point (the expected
        // text is what Jinja2 renders).
        #expect(try render("{{ [1, 1.0, true, 2, 'a', 'A', 'e\\u0301', '\\u00e9', none, none] | unique | list }}")
            == "[1, 2, 'a', 'e\u{301}', '\u{e9}', None]")
        // A chain as long as real templates write still parses and renders.
        #expect(try render("{{ " + Array(repeating: "1", count: 100).joined(separator: "+") + " }}") == "100")
    }

    @Test func jsonInput() throws {
        let v = try TemplateValue(json: #"{"b": [1, 2.5, "\u00e9\ud83e\udd17", null, true], "a": {}}"#)
        #expect(v == ["b": [1, 2.5, "é🤗", .none, true], "a": [:]])
        if case let .object(o) = v { #expect(o.keys == ["b", "a"]) }
        #expect(throws: ChatTemplateError.self) { try TemplateValue(json: "{\"a\": }") }
        #expect(throws: ChatTemplateError.self) { try TemplateValue(json: "[1, 2") }
    }
}
