import Engine
import Foundation
import Sampling
import Testing
import Tokenizer

/// Agreement with llama.cpp on the real test models (shared/reference/README.md).
@Suite(.enabled(if: ReferenceData.available, "test models not fetched (run scripts/fetch-models)"), .serialized)
struct ReferenceTests {
    @Test(arguments: ReferenceData.models)
    func tokenizationMatchesLlamaCpp(_ m: ReferenceData.ModelCase) throws {
        let engine = try ReferenceData.engine(m)
        let ref = try ReferenceData.load(ReferenceData.Reference.self, m.referenceFile)
        for t in ref.tokenize {
            #expect(engine.tokenize(t.text, addSpecial: false) == t.tokens, "\(m.name): \(t.text.debugDescription)")
        }
        for c in ref.continuations {
            #expect(engine.tokenize(c.prompt_text) == c.prompt_tokens, "\(m.name): prompt \(c.prompt_text.debugDescription)")
            #expect(engine.tokenizer.decode(c.tokens, renderSpecial: false) == c.text, "\(m.name): decode of \(c.text.debugDescription)")
        }
    }

    @Test(arguments: ReferenceData.models)
    func chatTemplatesMatchLlamaCpp(_ m: ReferenceData.ModelCase) throws {
        let engine = try ReferenceData.engine(m)
        let templates = try ReferenceData.load(ReferenceData.Templates.self, m.templatesFile)
        for t in templates.templates {
            let messages = t.messages.map { ChatMessage(role: $0.role, content: $0.content) }
            #expect(try engine.renderChat(messages, addGenerationPrompt: t.add_generation_prompt) == t.prompt_text)
        }
        let ref = try ReferenceData.load(ReferenceData.Reference.self, m.referenceFile)
        for c in ref.continuations where c.kind == "chat" {
            guard case let .messages(list) = c.input else { continue }
            #expect(try engine.renderChat(list.map { ChatMessage(role: $0.role, content: $0.content) }) == c.prompt_text)
        }
    }

    /// Teacher-forced on llama.cpp's greedy continuations.
    ///
    /// 8-bit activation arithmetic is chaotic on these models: a 1e-6 relative change of the
    /// input moves our own top-1 probability by up to 0.1 and turned 2 of SmolLM2's 472
    /// decisive argmaxes away from llama.cpp's (docs/numerics.md). So the argmax must agree at every position where
    /// llama.cpp's top-1 beats its top-2 by at least 0.25, beyond that noise, and at 99% of the
    /// positions with a margin of 0.05 to 0.25. The top-1 probability is held to 0.03 in
    /// distribution rather than everywhere, for the same reason.
    @Test(arguments: ReferenceData.models)
    func teacherForcedTopKMatchesLlamaCpp(_ m: ReferenceData.ModelCase) throws {
        let engine = try ReferenceData.engine(m)
        let ref = try ReferenceData.load(ReferenceData.Reference.self, m.referenceFile)
        let session = engine.makeSession(logitRows: engine.batchSize)
        var decisive = 0, argmaxAgree = 0, clear = 0
        var gaps: [Double] = []
        for c in ref.continuations {
            let ours = try engine.topK(tokens: c.prompt_tokens, continuation: c.tokens, k: 5, session: session)
            try #require(ours.count == c.top.count)
            for (i, (mine, theirs)) in zip(ours, c.top).enumerated() {
                let t1 = theirs[0], t2 = theirs.count > 1 ? theirs[1] : [0, 0]
                gaps.append(abs(Double(mine[0].probability) - t1[1]))
                let margin = t1[1] - t2[1]
                guard margin >= 0.05 else { continue }
                decisive += 1
                let agrees = Int32(t1[0]) == mine[0].token
                if agrees { argmaxAgree += 1 }
                if margin >= 0.25 {
                    clear += 1
                    #expect(agrees, "\(m.name) \(c.prompt_text.prefix(30).debugDescription) pos \(i): argmax \(mine[0].token) vs \(Int(t1[0])), margin \(margin)")
                }
            }
        }
        gaps.sort()
        let within = Double(gaps.filter { $0 <= 0.03 }.count) / Double(gaps.count)
        let median = gaps[gaps.count / 2], p99 = gaps[gaps.count * 99 / 100]
        print("[reference] \(m.name): argmax agrees at \(argmaxAgree)/\(decisive) decisive positions (\(clear) with margin ≥ 0.25); top-1 probability gap median \(median), p99 \(p99), max \(gaps.last ?? 0), \(Int(within * 1000) / 10)% within 0.03 over \(gaps.count) positions")
        #expect(decisive > 0 && Double(argmaxAgree) >= 0.99 * Double(decisive))
        #expect(median <= 0.015)
        #expect(within >= 0.8)
        #expect(p99 <= 0.1)
    }

    @Test(arguments: ReferenceData.models)
    func perplexityWithinTwoPercent(_ m: ReferenceData.ModelCase) throws {
        let engine = try ReferenceData.engine(m)
        let ref = try ReferenceData.load(ReferenceData.Reference.self, m.referenceFile)
        let text = try String(contentsOf: ReferenceData.referenceDirectory.appendingPathComponent("ppl-text.txt"), encoding: .utf8)
        let result = try engine.perplexity(tokens: engine.tokenize(text, addSpecial: false), context: ref.perplexity.ctx)
        let ratio = result.perplexity / ref.perplexity.ppl
        print("[reference] \(m.name): PPL \(result.perplexity) vs llama.cpp \(ref.perplexity.ppl) (ratio \(ratio))")
        #expect(abs(ratio - 1) <= 0.02)
    }

    /// Greedy generation reproduces llama.cpp's greedy text until a near-tie. Once two
    /// candidates are within rounding noise of each other (docs/numerics.md), either choice is
    /// correct and the texts part ways; a real defect shows up as a divergence where llama.cpp
    /// was decisive. So every divergence must sit where llama.cpp's own top-1 beat its top-2 by
    /// less than 0.05.
    @Test(arguments: ReferenceData.models)
    func greedyGenerationDivergesOnlyAtNearTies(_ m: ReferenceData.ModelCase) throws {
        let engine = try ReferenceData.engine(m)
        let ref = try ReferenceData.load(ReferenceData.Reference.self, m.referenceFile)
        var exact = 0, matchedTokens = 0
        for c in ref.continuations {
            var tokens: [Int32] = []
            _ = try engine.generate(prompt: c.prompt_tokens, maxTokens: c.tokens.count, sampling: .greedy) { id, _ in
                if let id { tokens.append(id) }
                return true
            }
            guard let i = zip(tokens, c.tokens).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset else {
                #expect(tokens == c.tokens, "\(m.name): stopped early on \(c.prompt_text.debugDescription)")
                if tokens == c.tokens { exact += 1 }
                matchedTokens += tokens.count
                continue
            }
            matchedTokens += i
            let margin = c.top[i][0][1] - (c.top[i].count > 1 ? c.top[i][1][1] : 0)
            #expect(margin < 0.05, "\(m.name): diverged at token \(i) of \(c.prompt_text.debugDescription), where llama.cpp's margin was \(margin)")
        }
        print("[reference] \(m.name): greedy text identical for \(exact)/\(ref.continuations.count) prompts; \(matchedTokens) tokens identical before the first near-tie divergence")
    }
}
