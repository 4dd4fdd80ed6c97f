import ArgumentParser
import Engine

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a text file by llama.cpp's method; prints PPL = x last.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .shortAndLong, help: "Text file to score.")
    var file: String

    @Option(help: "Tokens per chunk.")
    var ctx: Int = 512

    func run() throws {
        var options = modelOptions
        options.contextSize = max(options.contextSize ?? ctx, ctx)
        options.batchSize = max(options.batchSize, min(ctx, 512))
        let engine = try InferenceEngine(options)
        let text = String(decoding: try readFile(file), as: UTF8.self)
        let tokens = engine.tokenize(text, addSpecial: false)
        let t0 = monotonicSeconds()
        let result = try engine.perplexity(tokens: tokens, context: ctx) { chunk, running in
            Console.error("[\(chunk + 1)] \(fmt(running, 4))")
        }
        let seconds = monotonicSeconds() - t0
        Console.error("\(tokens.count) tokens, \(result.chunks) chunks of \(ctx), \(result.scoredTokens) scored, \(fmt(seconds, 2)) s")
        print("PPL = \(fmt(result.perplexity, 4))")
    }
}
