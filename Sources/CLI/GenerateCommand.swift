import ArgumentParser
import ClusterTrust
import ControlPlane
import Engine
import GGUF
import Node
import Sampling
import PipelineClient
import StarStream
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

    @Option(help: "Run on a pipeline of nodes instead of in this process: node 0's HOST:PORT (-m names the same model, for the tokenizer).")
    var pipeline: String?

    @Option(help: "Run on the cluster of the hub at HOST:PORT: its current pipeline, its model's tokenizer (no --model needed); survives node failures.")
    var hub: String?

    @Option(name: .customLong("cluster-token"), help: "The pipeline's cluster token (default: $PANGALACTIC_CLUSTER_TOKEN).")
    var clusterToken: String?

    @OptionGroup var trust: SecurityOptions

    func validate() throws {
        guard (prompt == nil) != (chat == nil) else { throw ValidationError("give exactly one of --prompt and --chat") }
        guard (0 ... 1 << 20).contains(n) else { throw ValidationError("-n must be within 0...1048576") }
        guard pipeline == nil || hub == nil else { throw ValidationError("give at most one of --pipeline and --hub") }
    }

    var sampling: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP,
                           repetitionPenalty: repeatPenalty, frequencyPenalty: frequencyPenalty,
                           presencePenalty: presencePenalty, seed: seed)
    }

    func promptText(_ front: TextFrontEnd) throws -> String {
        guard let chat else { return prompt ?? "" }
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: chat))
        return try front.renderChat(messages)
    }

    func run() throws {
        if let pipeline { return try runOnPipeline(pipeline) }
        if let hub { return try runOnHub(hub) }
        let engine = try InferenceEngine(modelOptions)
        if let warning = engine.text.templateWarning { Console.error("warning: \(warning)") }
        let tokens = engine.tokenize(try promptText(engine.text))
        let sampling = self.sampling
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

extension Generate {
    /// Sends the request through a ring of `pangalactic node` processes with `PipelineDriver`.
    func runOnPipeline(_ address: String) throws {
        guard let node0 = NodeAddress(address) else { throw ValidationError("--pipeline takes HOST:PORT") }
        let (host, port) = (node0.host, node0.port)
        let file = try GGUFFile(path: modelOptions.modelPath)
        let front = try TextFrontEnd(file: file)
        if let warning = front.templateWarning { Console.error("warning: \(warning)") }
        let digest = try file.modelDigest()
        let request = try pipelineRequest(front)
        let token = ProcessEnvironment.clusterToken(clusterToken)
        let security = try trust.security(roles: [.gateway])
        let driver = try runBlocking {
            try await PipelineDriver.connect(host: host, port: port, clusterToken: token, modelDigest: digest, security: security)
        }
        try stream(request, events: driver.events(request), tokenizer: front.tokenizer)
        try runBlocking { await driver.close() }
    }
}

extension Generate {
    /// The request for a pipeline: the prompt tokenized with the model's own rules, the sampler's
    /// settings, the end-of-generation tokens and the penalty window over the prompt.
    func pipelineRequest(_ front: TextFrontEnd) throws -> PipelineRequest {
        let tokens = front.tokenize(try promptText(front))
        try sampling.validate()
        return PipelineRequest(prompt: tokens, maxNewTokens: n, sampling: WireSampling(sampling),
                               stopTokens: front.tokenizer.endOfGenerationIDs, history: Array(tokens.suffix(sampling.penaltyLastN)))
    }

    /// Runs through the hub's current pipeline with a `ClusterDriver`, which replays the request
    /// on the next plan if a node fails: the text is the same, only later.
    func runOnHub(_ address: String) throws {
        LogSetup.bootstrap()
        let security = try trust.security(roles: [.gateway])
        let connection = try HubConnection(address: address, security: security)
        defer { connection.close() }
        let info = try runBlocking { try await connection.modelInfo() }
        let front = try TextFrontEnd(file: GGUFFile(bytes: info.bytes))
        if let warning = front.templateWarning { Console.error("warning: \(warning)") }
        let request = try pipelineRequest(front)
        let token = ProcessEnvironment.clusterToken(clusterToken)
        let driver = ClusterDriver(source: HubRoutePlans(connection: connection), clusterToken: token, security: security)
        try stream(request, events: driver.events(request), tokenizer: front.tokenizer)
        try runBlocking { await driver.close() }
    }

    /// Prints a request's tokens as text while they arrive; throws its failure.
    func stream(_ request: PipelineRequest, events: AsyncStream<PipelineEvent>, tokenizer: Tokenizer) throws {
        let verbose = self.verbose
        let promptCount = request.prompt.count
        try runBlocking {
            var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
            let start = monotonicSeconds()
            var first = 0.0, last = 0.0, count = 0
            var failure: PipelineError?
            var finish = "?"
            for await event in events {
                switch event {
                case let .token(token):
                    let id = token.tokenID
                    count += 1
                    last = monotonicSeconds()
                    if count == 1 { first = last }
                    if tokenizer.isEndOfGeneration(id) { Console.write(detokenizer.finish()) } else { Console.write(detokenizer.append(id)) }
                case let .done(cause, _):
                    Console.write(detokenizer.finish())
                    finish = "\(cause)"
                case let .failed(error):
                    failure = error
                }
            }
            Console.write("\n")
            if let failure { throw failure }
            if verbose {
                let decode = count > 1 ? Double(count - 1) / (last - first) : 0
                Console.error("prompt \(promptCount) tokens, first token after \(fmt((first - start) * 1000)) ms; " +
                    "generated \(count) tokens at \(fmt(decode)) tok/s; finish: \(finish)")
            }
        }
    }
}

func fmt(_ x: Double, _ digits: Int = 1) -> String {
    var p = 1.0
    for _ in 0 ..< digits { p *= 10 }
    let r = (x * p).rounded() / p
    return "\(r)"
}
