import ArgumentParser
import Foundation
import Node
import StarStream

/// `pangalactic node`: one pipeline stage serving a range of layers over StarStream.
struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Serve a range of a model's layers as one stage of a pipeline (StarStream).",
        discussion: """
            Start one node per layer range, each pointing --next at the following stage and the \
            last one back at the first. Example with three nodes of a 30-layer model:
              pangalactic node -m M --layers 0..<10  --listen 127.0.0.1:7101 --next 127.0.0.1:7102
              pangalactic node -m M --layers 10..<20 --listen 127.0.0.1:7102 --next 127.0.0.1:7103
              pangalactic node -m M --layers 20..<30 --listen 127.0.0.1:7103 --next 127.0.0.1:7101
            then: pangalactic generate -m M --pipeline 127.0.0.1:7101 --prompt "..."
            """)

    @Option(name: .shortAndLong, help: "GGUF model file.")
    var model: String?

    @Option(help: "Layers this node serves: A..<B (or A-B, end exclusive).")
    var layers: String

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen: String

    @Option(help: "The next stage, HOST:PORT (the last node points back at node 0).")
    var next: String

    @Option(help: "Wire format of hidden states: f32, f16 or q8.")
    var wire: String = "f16"

    @Option(name: .customLong("cluster-token"), help: "Shared secret of the cluster (default: $PANGALACTIC_CLUSTER_TOKEN).")
    var clusterToken: String?

    @Option(name: .shortAndLong, help: "Compute threads, counting the scheduler thread.")
    var threads: Int = 2

    @Option(name: .customLong("max-sequences"), help: "Sequences with a KV cache at once.")
    var maxSequences: Int = 16

    @Option(name: .customLong("ctx-size"), help: "Positions per sequence (capped by the model's trained context).")
    var contextSize: Int = 4096

    @Option(name: .customLong("batch-size"), help: "Rows per batch through the layers.")
    var batchSize: Int = 256

    @Option(name: .customLong("decode-groups"),
            help: "Decode micro-batches kept apart around the ring (default: 1 when --next is on loopback, as stages that share cores cannot overlap; else one per stage, so every stage has work).")
    var decodeGroups: Int?

    func run() throws {
        guard let range = parseLayerRange(layers) else { throw ValidationError("--layers takes A..<B, e.g. 0..<12") }
        guard let listenAddress = NodeAddress(listen) else { throw ValidationError("--listen takes HOST:PORT") }
        guard let nextAddress = NodeAddress(next) else { throw ValidationError("--next takes HOST:PORT") }
        guard let dtype = parseWire(wire) else { throw ValidationError("--wire takes f32, f16 or q8") }
        guard (1 ... 256).contains(threads), (1 ... 4096).contains(maxSequences), (8 ... 1 << 20).contains(contextSize),
              (1 ... 4096).contains(batchSize), (1 ... 256).contains(decodeGroups ?? 1) else {
            throw ValidationError("--threads 1...256, --max-sequences 1...4096, --ctx-size 8...1048576, --batch-size 1...4096, --decode-groups 1...256")
        }
        var configuration = NodeConfiguration(modelPath: model ?? ProcessEnvironment.value("PANGALACTIC_MODEL") ?? ModelOptions.defaultModel,
                                              layers: range, listen: listenAddress, next: nextAddress)
        configuration.wire = dtype
        configuration.clusterToken = clusterToken ?? ProcessEnvironment.value("PANGALACTIC_CLUSTER_TOKEN") ?? ""
        configuration.threads = threads
        configuration.maxSequences = maxSequences
        configuration.contextLength = contextSize
        configuration.maxBatchTokens = batchSize
        configuration.decodeGroups = decodeGroups
        let node = try PipelineNode(configuration: configuration, log: { Console.error("node \(range): \($0)") })
        let port = try node.start()
        let kvPerSequence = 2 * range.count * node.configuration.contextLength * node.model.config.kvWidth * 4
        let rss = residentMemoryBytes().map { "\($0 >> 20) MiB" } ?? "unknown"
        Console.error("node \(range): listening on \(listenAddress.host):\(port), next \(nextAddress), wire \(wire); " +
            "shard \(node.shardBytes >> 20) MiB, KV up to \(kvPerSequence >> 20) MiB per sequence × \(maxSequences), resident \(rss)")
        if configuration.clusterToken.isEmpty {
            Console.error("node \(range): warning: no cluster token; any peer that knows the model may connect")
        }
        if ProcessEnvironment.value("PANGALACTIC_NODE_STATS") != nil {
            Thread.detachNewThread {
                var last = (0, 0, 0)
                while true {
                    Thread.sleep(forTimeInterval: 2)
                    let c = node.counters
                    let now = (c.batches.load(ordering: .relaxed), c.rows.load(ordering: .relaxed), c.computeNanoseconds.load(ordering: .relaxed))
                    let b = now.0 - last.0
                    if b > 0 {
                        Console.error("node \(range): \(b) batches, \(now.1 - last.1) rows, \(fmt(Double(now.2 - last.2) / Double(b) / 1e6, 3)) ms per batch, busy \(fmt(Double(now.2 - last.2) / 2e7, 1))%")
                    }
                    last = now
                }
            }
        }
        node.wait()
    }
}

/// `A..<B`, `A..B` is refused (ambiguous), `A-B` means `A..<B`.
func parseLayerRange(_ text: String) -> Range<Int>? {
    let parts: [Substring]
    if text.contains("..<") {
        parts = text.split(separator: "..<", omittingEmptySubsequences: false).map { $0 }
    } else if text.contains("-") {
        parts = text.split(separator: "-", omittingEmptySubsequences: false)
    } else {
        return nil
    }
    guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, a < b else { return nil }
    return a ..< b
}

func parseWire(_ text: String) -> WireDType? {
    switch text.lowercased() {
    case "f32": .f32
    case "f16": .f16
    case "q8", "q8_0": .q8
    default: nil
    }
}
