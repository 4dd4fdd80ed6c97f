import ArgumentParser
import Engine
import Foundation
import GGUF
import Kernels
import Models

/// llama-bench-style throughput: pp (prompt processing) and tg (generation) in tokens/s.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prompt processing (ppN) and generation (tgN) speed, like llama-bench.")

    @Option(name: .shortAndLong, help: "GGUF model file.")
    var model: String?

    @Option(name: .short, help: "Prompt lengths to test, comma separated (0 skips).")
    var p: String = "128,512"

    @Option(name: .short, help: "Tokens to generate for the tg test (0 skips).")
    var n: Int = 128

    @Option(name: .short, help: "Threads, counting the main thread.")
    var t: Int = 2

    @Option(name: .short, help: "Repetitions per test.")
    var r: Int = 3

    @Flag(help: "One JSON object per test on stdout.")
    var json = false

    @Option(help: "Pipeline test: start this many node processes on loopback, layers split evenly (1 = this process's engine).")
    var nodes: Int?

    @Option(help: "Pipeline test: concurrent streams, comma separated.")
    var concurrency: String = "1,8"

    @Option(help: "Pipeline test: wire format of hidden states (f32, f16, q8).")
    var wire: String = "f16"

    @Option(name: .customLong("decode-groups"),
            help: "Pipeline test: decode micro-batches around the ring (default: one per node when every node has its own cores, else 1).")
    var decodeGroups: Int?

    @Flag(help: "Pipeline test: show the nodes' logs.")
    var verbose = false

    @Flag(help: "Pipeline test: mutual TLS between the driver and the nodes (a throwaway cluster authority) instead of plain TCP.")
    var tls = false

    @Flag(help: "Print the CPU's features, the kernel level and whether the OS grants AMX, and exit.")
    var cpu = false

    func run() throws {
        if cpu {
            print("cpu: \(CPUFeatures.names.joined(separator: " ")); kernels: \(KernelTable.active.level) (best \(ISALevel.best)); \(CPUFeatures.amxStatus)")
            return
        }
        if let nodes { return try runPipeline(nodes: nodes) }
        let prompts = try p.split(separator: ",").map { part -> Int in
            guard let v = Int(part.trimmingCharacters(in: .whitespaces)), (0 ... 4096).contains(v) else {
                throw ValidationError("-p takes prompt lengths within 0...4096")
            }
            return v
        }.filter { $0 > 0 }
        guard (0 ... 4096).contains(n), (1 ... 256).contains(t), (1 ... 100).contains(r) else {
            throw ValidationError("-n must be within 0...4096, -t within 1...256, -r within 1...100")
        }
        let path = model ?? ProcessEnvironment.value("PANGALACTIC_MODEL") ?? ModelOptions.defaultModel
        let longest = max(prompts.max() ?? 1, n + 1)
        let engine = try InferenceEngine(modelPath: path, threads: t, contextLength: longest + 16,
                                         batchSize: min(512, prompts.max() ?? 64))
        var results: [BenchmarkResult] = []
        for count in prompts { results.append(try engine.benchmarkPrefill(tokens: count, repetitions: r)) }
        if n > 0 { results.append(try engine.benchmarkDecode(tokens: n, repetitions: r)) }

        if json {
            for result in results {
                let object: [String: Any] = ["test": result.test, "tokens_per_second": result.mean, "stddev": result.standardDeviation]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        let bandwidth = measureReadBandwidth(pool: engine.pool)
        let bytesPerToken = Double(engine.weightBytesPerToken)
        let roofline = bandwidth / bytesPerToken
        print("model: \(path)")
        let table = KernelTable.active
        print("cpu: \(CPUFeatures.names.joined(separator: " ")); \(CPUFeatures.amxStatus)")
        print("kernels: \(table.level) (best here: \(ISALevel.best)\(ISALevel.requestWasCapped ? ", PANGALACTIC_ISA asked for more" : ""); " +
            "PANGALACTIC_ISA=ref|avx2|avxvnni|avx512 forces one)")
        let types = Set(engine.file.tensors.filter { $0.shape.count == 2 }.map(\.type)).sorted { "\($0)" < "\($1)" }
        for line in table.describe(types) { print("  \(line)") }
        print("threads: \(engine.pool.activeThreads), read bandwidth \(fmt(bandwidth / 1e9, 1)) GB/s, " +
            "\(fmt(bytesPerToken / 1e6, 1)) MB of weights per token, decode roofline \(fmt(roofline, 1)) tok/s")
        print("| test | t/s |")
        print("|---|---|")
        for result in results {
            var line = "| \(result.test) | \(fmt(result.mean, 2)) ± \(fmt(result.standardDeviation, 2)) |"
            if result.test.hasPrefix("tg") { line += " \(fmt(100 * result.mean / roofline, 1))% of roofline" }
            print(line)
        }
    }
}

extension Bench {
    /// `--nodes K`: decode tok/s per stream and in total at each concurrency, plus hop latency.
    func runPipeline(nodes: Int) throws {
        let levels = try concurrency.split(separator: ",").map { part -> Int in
            guard let v = Int(part.trimmingCharacters(in: .whitespaces)), (1 ... 256).contains(v) else {
                throw ValidationError("--concurrency takes stream counts within 1...256")
            }
            return v
        }
        guard !levels.isEmpty, (1 ... 4096).contains(n), (1 ... 256).contains(t), (1 ... 100).contains(r) else {
            throw ValidationError("-n must be within 1...4096, -t within 1...256, -r within 1...100")
        }
        guard parseWire(wire) != nil else { throw ValidationError("--wire takes f32, f16 or q8") }
        let path = model ?? ProcessEnvironment.value("PANGALACTIC_MODEL") ?? ModelOptions.defaultModel
        var results: [PipelineBenchResult] = []
        if nodes == 1 {
            let engine = try InferenceEngine(modelPath: path, threads: t, contextLength: n + 16, batchSize: 64)
            for c in levels {
                let (perStream, total) = try engine.benchmarkStreams(c, tokens: n, repetitions: r)
                results.append(PipelineBenchResult(nodes: 1, concurrency: c, perStream: perStream, total: total, hopMillisecondsP50: nil))
            }
        } else {
            let file = try GGUFFile(path: path)
            let config = try ModelConfig(file: file)
            let digest = try file.modelDigest()
            // Stages that share cores cannot overlap, so splitting the streams into groups would
            // only read every weight once per group.
            let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
            let groups = decodeGroups ?? (nodes * t <= cores ? nodes : 1)
            guard (1 ... 256).contains(groups) else { throw ValidationError("--decode-groups must be within 1...256") }
            let cluster = try LocalCluster(model: path, nodes: nodes, layerCount: config.layerCount, wire: wire, threads: t,
                                           maxSequences: max(levels.max() ?? 1, 1), contextLength: n + 16,
                                           decodeGroups: groups, tls: tls, verbose: verbose)
            defer { cluster.stop() }
            let (n, r, vocabulary) = (self.n, self.r, config.vocabularySize)
            results = try runBlocking {
                let driver = try await cluster.connectDriver(digest: digest, seconds: 120)
                var rows: [PipelineBenchResult] = []
                _ = try await measureStreams(driver: driver, concurrency: 1, tokens: 8, vocabulary: vocabulary, round: 99)
                for c in levels {
                    var perStream: [Double] = [], total: [Double] = [], hops: [Double] = []
                    for round in 0 ..< r {
                        let stop = StopFlag()
                        async let probing = sampleHops(driver: driver, nodes: nodes, stop: stop)
                        let (p, t) = try await measureStreams(driver: driver, concurrency: c, tokens: n, vocabulary: vocabulary, round: round)
                        stop.value.store(true, ordering: .relaxed)
                        hops += await probing
                        perStream.append(p)
                        total.append(t)
                    }
                    rows.append(PipelineBenchResult(nodes: nodes, concurrency: c, perStream: perStream.reduce(0, +) / Double(r),
                                                    total: total.reduce(0, +) / Double(r), hopMillisecondsP50: median(hops)))
                }
                await driver.close()
                return rows
            }
            if !json {
                for i in 0 ..< nodes {
                    let rss = cluster.residentBytes(i).map { "\($0 >> 20) MiB" } ?? "?"
                    print("node \(i): layers \(cluster.layerRanges[i]), resident \(rss)")
                }
            }
        }
        if json {
            for row in results {
                var object: [String: Any] = ["test": "pipeline", "nodes": row.nodes, "concurrency": row.concurrency,
                                             "tokens_per_second_per_stream": row.perStream, "tokens_per_second_total": row.total]
                object["hop_ms_p50"] = row.hopMillisecondsP50 ?? NSNull()
                if row.nodes > 1 { object["tls"] = tls }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        print("model: \(path), \(nodes) node(s), wire \(nodes > 1 ? wire : "none")\(nodes > 1 ? (tls ? " over mutual TLS" : " over plain TCP") : ""), \(t) threads per node, tg\(n)")
        print("| nodes | streams | tok/s per stream | tok/s total | hop p50 |")
        print("|---|---|---|---|---|")
        for row in results {
            let hop = row.hopMillisecondsP50.map { "\(fmt($0, 3)) ms" } ?? "-"
            print("| \(row.nodes) | \(row.concurrency) | \(fmt(row.perStream, 1)) | \(fmt(row.total, 1)) | \(hop) |")
        }
    }
}
