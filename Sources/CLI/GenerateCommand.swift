import ArgumentParser
import Engine
import Sampling
import Tokenizer

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a prompt or a chat message, streaming it.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .shortAndLong, help: "Raw prompt text (special tokens are parsed).")
    var prompt: String?

    @Option(help: "A user message, wrapped in the model's chat template.")
    var chat: String?

    @Option(help: "System message for --chat.")
    var system: String?

    @Option(name: .short, help: "Tokens to generate at most.")
    var n: Int = 128

    @Option(name: .customLong("temp"), help: "Temperature; 0 is greedy.")
    var temperature: Float = 0.8

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 42

    @Option(name: .customLong("top-k")) var topK: Int = 40
    @Option(name: .customLong("top-p")) var topP: Float = 0.95
    @Option(name: .customLong("min-p")) var minP: Float = 0.05
    @Option(name: .customLong("repeat-penalty")) var repeatPenalty: Float = 1.0
    @Option(name: .customLong("frequency-penalty")) var frequencyPenalty: Float = 0
    @Option(name: .customLong("presence-penalty")) var presencePenalty: Float = 0

    @Flag(help: "Print timing to stderr.")
    var verbose = false

    func validate() throws {
        guard (prompt == nil) != (chat == nil) else { throw ValidationError("give exactly one of --prompt and --chat") }
        guard (0 ... 1 << 20).contains(n) else { throw ValidationError("-n must be within 0...1048576") }
    }

    func run() throws {
        let engine = try InferenceEngine(modelOptions)
        let text: String
        if let chat {
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: chat))
            text = try engine.renderChat(messages)
        } else {
            text = prompt ?? ""
        }
        let tokens = engine.tokenize(text)
        let sampling = SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                          repetitionPenalty: repeatPenalty, frequencyPenalty: frequencyPenalty,
                                          presencePenalty: presencePenalty, seed: seed)
        let stats = try engine.generate(prompt: tokens, maxTokens: n, sampling: sampling) { _, piece in
            Console.write(piece)
            return true
        }
        Console.write("\n")
        let summary = "prompt \(stats.promptTokens) tokens at \(fmt(stats.prefillTokensPerSecond)) tok/s; " +
            "generated \(stats.generatedTokens) tokens at \(fmt(stats.decodeTokensPerSecond)) tok/s; finish: \(stats.finishReason.rawValue)"
        if verbose { Console.error(summary) }
    }
}

func fmt(_ x: Double, _ digits: Int = 1) -> String {
    var p = 1.0
    for _ in 0 ..< digits { p *= 10 }
    let r = (x * p).rounded() / p
    return "\(r)"
}
