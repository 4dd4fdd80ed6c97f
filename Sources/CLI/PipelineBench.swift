#if canImport(Glibc)
import Glibc
#endif
import ClusterTrust
import Engine
import Foundation
import GGUF
import Models
import Node
import PipelineClient
import StarStream
import Synchronization

/// One row of `bench --nodes K --concurrency …`.
struct PipelineBenchResult: Sendable {
    var nodes: Int
    var concurrency: Int
    var perStream: Double
    var total: Double
    /// Median one-hop latency in ms (nil for the single-process engine).
    var hopMillisecondsP50: Double?
}

/// K `pangalactic node` processes on loopback, layers split evenly, a ring closed back to node 0.
final class LocalCluster: @unchecked Sendable {
    let processes: [Process]
    let ports: [Int]
    let layerRanges: [Range<Int>]
    let clusterToken: String
    /// The driver's side of the ring's security (mutual TLS with a throwaway authority, or plain TCP).
    let driverSecurity: TransportSecurity
    private let trust: LocalTrust?

    /// Starts the nodes; they load in parallel and connect to each other on their own.
    init(model: String, nodes: Int, layerCount: Int, wire: String, threads: Int, maxSequences: Int,
         contextLength: Int, decodeGroups: Int, tls: Bool = false, verbose: Bool) throws {
        guard nodes >= 1, nodes <= layerCount else {
            throw EngineError.invalidArgument("--nodes must be within 1...\(layerCount) (the model's layers)")
        }
        ports = try (0 ..< nodes).map { _ in try NodeAddress.freeLoopbackPort() }
        layerRanges = (0 ..< nodes).map { i in (layerCount * i / nodes) ..< (layerCount * (i + 1) / nodes) }
        clusterToken = "bench-\(UInt64.random(in: 1 ... .max))"
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let trust = try tls ? LocalTrust() : nil
        self.trust = trust
        driverSecurity = try trust.map { .mutualTLS(try $0.authority.makeMember(name: "bench", role: .gateway)) } ?? .insecure
        var started: [Process] = []
        for i in 0 ..< nodes {
            let p = Process()
            p.executableURL = executable
            p.arguments = ["node", "-m", model, "--layers", "\(layerRanges[i].lowerBound)..<\(layerRanges[i].upperBound)",
                           "--listen", "127.0.0.1:\(ports[i])", "--next", "127.0.0.1:\(ports[(i + 1) % nodes])",
                           "--wire", wire, "--cluster-token", clusterToken, "--threads", "\(threads)",
                           "--max-sequences", "\(maxSequences)", "--ctx-size", "\(contextLength)",
                           "--decode-groups", "\(decodeGroups)"]
            p.arguments = (p.arguments ?? []) + (try trust.map { ["--tls-dir", try $0.credentials(for: "node\(i)", role: .node)] } ?? ["--insecure"])
            if !verbose { p.standardError = FileHandle.nullDevice }
            do {
                try p.run()
            } catch {
                for q in started { q.terminate() }
                throw EngineError.invalidArgument("cannot start node \(i): \(error)")
            }
            started.append(p)
        }
        processes = started
    }

    func stop() {
        for p in processes where p.isRunning { p.terminate() }
        for p in processes { p.waitUntilExit() }
        trust?.remove()
    }

    /// Resident bytes of node `i`, if it is running.
    func residentBytes(_ i: Int) -> Int? { residentMemoryBytes(processID: processes[i].processIdentifier) }

    /// Connects a driver to node 0, retrying while the nodes load, and waits for the ring.
    func connectDriver(digest: [UInt8], seconds: Double) async throws -> PipelineDriver {
        let deadline = monotonicSeconds() + seconds
        while true {
            do {
                let driver = try await PipelineDriver.connect(host: "127.0.0.1", port: ports[0], clusterToken: clusterToken, modelDigest: digest,
                                                              security: driverSecurity)
                try await driver.waitUntilReady(seconds: max(1, deadline - monotonicSeconds()))
                return driver
            } catch {
                if monotonicSeconds() > deadline { throw error }
                if let dead = processes.first(where: { !$0.isRunning }) {
                    throw EngineError.invalidArgument("a node exited with status \(dead.terminationStatus) (run with --verbose to see why)")
                }
                try await Task.sleep(nanoseconds: 200_000_000)
            }
        }
    }
}

/// Runs `concurrency` greedy streams of `tokens` tokens each through the driver and returns
/// tok/s per stream (mean) and in total, timing from each stream's first token (which comes
/// out of the prompt) to its last, like tgN.
func measureStreams(driver: PipelineDriver, concurrency: Int, tokens: Int, vocabulary: Int, round: Int) async throws -> (Double, Double) {
    let greedy = WireSampling.greedy
    return try await withThrowingTaskGroup(of: (Double, Double, Int).self) { group in
        for s in 0 ..< concurrency {
            let prompt = [Int32((s * 7919 + round * 104_729 + 17) % vocabulary)]
            let request = PipelineRequest(prompt: prompt, maxNewTokens: tokens + 1, sampling: greedy, stopTokens: [])
            group.addTask {
                var first = 0.0, last = 0.0, count = 0
                for await event in driver.events(request) {
                    switch event {
                    case .token:
                        last = monotonicSeconds()
                        if count == 0 { first = last }
                        count += 1
                    case .done: break
                    case let .failed(error): throw error
                    }
                }
                return (first, last, count)
            }
        }
        var perStream: [Double] = []
        var firstAll = Double.infinity, lastAll = 0.0, generated = 0
        for try await (first, last, count) in group {
            guard count > 1 else { continue }
            perStream.append(Double(count - 1) / (last - first))
            firstAll = min(firstAll, first)
            lastAll = max(lastAll, last)
            generated += count - 1
        }
        let mean = perStream.reduce(0, +) / Double(max(1, perStream.count))
        return (mean, lastAll > firstAll ? Double(generated) / (lastAll - firstAll) : 0)
    }
}

/// Probes the ring every 20 ms until `stop` is set; returns the one-hop latencies in ms
/// (round trip / (K + 2) hops: driver → node 0, K ring hops, node 0 → driver).
func sampleHops(driver: PipelineDriver, nodes: Int, stop: StopFlag) async -> [Double] {
    var samples: [Double] = []
    while !stop.value.load(ordering: .relaxed) {
        if let rtt = try? await driver.probeRoundTrip(timeoutSeconds: 2) {
            samples.append(rtt * 1000 / Double(nodes + 2))
        }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
    return samples
}

func median(_ xs: [Double]) -> Double? {
    guard !xs.isEmpty else { return nil }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}
