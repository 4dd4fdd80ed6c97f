import ArgumentParser

@main
struct PanGalactic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pangalactic",
        abstract: "LLM inference across ordinary machines, layer by layer.",
        subcommands: [ServeCommand.self, Generate.self, Bench.self, Inspect.self, Perplexity.self, Eval.self, NodeCommand.self, HubCommand.self, StatusCommand.self, GatewayCommand.self, LoadTestCommand.self, SoakCommand.self, StoreCommand.self, PullCommand.self, InitCommand.self, IssueCommand.self, TokenCommand.self]
    )
}

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "GGUF model file (default: $PANGALACTIC_MODEL or models/SmolLM2-135M-Instruct.Q4_1.gguf).")
    var model: String?

    @Option(name: .shortAndLong, help: "Compute threads, counting the main thread.")
    var threads: Int = 2

    @Option(name: .customLong("ctx-size"), help: "Context positions per sequence (default: min(trained, 4096)).")
    var contextSize: Int?

    @Option(name: .customLong("batch-size"), help: "Tokens per forward call during prefill.")
    var batchSize: Int = 64

    static let defaultModel = "models/SmolLM2-135M-Instruct.Q4_1.gguf"

    var modelPath: String {
        model ?? ProcessEnvironment.value("PANGALACTIC_MODEL") ?? Self.defaultModel
    }

    func validate() throws {
        guard (1 ... 256).contains(threads) else { throw ValidationError("--threads must be within 1...256") }
        guard (1 ... 4096).contains(batchSize) else { throw ValidationError("--batch-size must be within 1...4096") }
        if let c = contextSize, !(8 ... 1 << 20).contains(c) { throw ValidationError("--ctx-size must be within 8...1048576") }
    }
}
