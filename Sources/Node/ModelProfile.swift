#if canImport(Glibc)
import Glibc
#endif
import ControlPlane
import Foundation
import GGUF
import Kernels
import Models

/// What a joining node tells the hub about its model and itself: the exact bytes per layer
/// (from the GGUF index), the digest, and a measured speed.
public enum ModelProfile {
    /// The model's layout for placement.
    public static func layout(file: GGUFFile, digest: [UInt8]) throws(NodeError) -> Pangalactic_Control_V1_ModelLayout {
        let config: ModelConfig
        do { config = try ModelConfig(file: file) } catch { throw .model("\(error)") }
        var layout = Pangalactic_Control_V1_ModelLayout()
        layout.digest = Data(digest)
        layout.name = file.metadata.string("general.name") ?? config.architectureName
        layout.architecture = config.architectureName
        layout.layerCount = UInt32(config.layerCount)
        layout.layerBytes = (0 ..< config.layerCount).map { UInt64(file.layerFootprint($0)?.bytes ?? 0) }
        layout.embeddingBytes = UInt64(file.tensor(named: "token_embd.weight")?.byteCount ?? 0)
        let output = file.tensor(named: "output.weight")
        layout.outputBytes = UInt64((file.tensor(named: "output_norm.weight")?.byteCount ?? 0) + (output?.byteCount ?? 0))
        layout.tiedEmbeddings = output == nil
        // KV caches hold F32 keys and values: 2 × kv width × 4 bytes per layer and position.
        layout.kvBytesPerLayerPosition = UInt64(2 * config.kvWidth * MemoryLayout<Float>.size)
        layout.trainedContext = UInt32(config.trainedContextLength)
        layout.fileBytes = UInt64(file.fileSize)
        return layout
    }

    /// Weight bytes per second this machine streams through a decode step: one layer of the
    /// model run on a single token again and again for about `seconds` (after a warm-up pass
    /// that faults its pages in). Decode is bound by memory bandwidth, so this predicts a
    /// stage's step time as its weight bytes over the figure.
    public static func measureSpeed(file: GGUFFile, threads: Int, seconds: Double = 0.3) throws(NodeError) -> Double {
        let model: TransformerModel
        let layerCount: Int
        do {
            layerCount = try ModelConfig(file: file).layerCount
            let layer = min(1, layerCount - 1)
            model = try TransformerModel(file: probeFile(file, layers: layer ..< layer + 1), layers: layer ..< layer + 1)
        } catch { throw .model("speed probe: \(error)") }
        let pool = ComputePool(threadCount: max(1, threads))
        let state = ForwardState(config: model.config, maxTokens: 1, contextCapacity: 64, logitRows: 1, pool: pool)
        let width = model.config.embeddingLength
        let hidden = UnsafeMutablePointer<Float>.allocate(capacity: max(1, width))
        hidden.initialize(repeating: 0.01, count: max(1, width))
        defer { hidden.deallocate() }
        let token: [Int32] = [1]
        let bytes = Double(max(1, model.shardBytes))
        func step(_ position: Int, _ cache: KVCache) throws {
            if model.isFirst {
                _ = try token.withUnsafeBufferPointer { try model.forward(.tokens($0), start: position, cache: cache, state: state) }
            } else {
                _ = try model.forward(.hidden(hidden, count: 1), start: position, cache: cache, state: state)
            }
        }
        do {
            var cache = model.makeCache(capacity: 64)
            try step(0, cache)
            let start = monotonicSeconds()
            var runs = 0
            var position = 1
            while monotonicSeconds() - start < seconds || runs < 3 {
                if position >= 64 {
                    cache = model.makeCache(capacity: 64)
                    position = 0
                }
                try step(position, cache)
                position += 1
                runs += 1
            }
            pool.rest()
            return bytes * Double(runs) / max(1e-6, monotonicSeconds() - start)
        } catch {
            throw .model("speed probe: \(error)")
        }
    }

    /// The file itself when it holds the probe layer's bytes; otherwise (a store-fed node that
    /// has fetched nothing yet) the same index with zero-filled stand-ins of the right types and
    /// sizes, so the probe costs no download. Decode kernels do not branch on weight values, so
    /// zeros run at the speed of real weights.
    static func probeFile(_ file: GGUFFile, layers: Range<Int>) throws -> GGUFFile {
        let names = TransformerModel.tensorNames(file: file, layers: layers)
        let tensors = names.compactMap { file.tensor(named: $0) }
        guard tensors.contains(where: { !file.hasData($0) }) else { return file }
        var data: [String: ByteStorage] = [:]
        for t in tensors { data[t.name] = ByteStorage.zeroed(count: t.byteCount) }
        return try file.assembled(tensorData: data, digest: [UInt8](repeating: 0, count: 32))
    }

    /// Memory the machine has available now (`MemAvailable` in /proc/meminfo), the default budget.
    public static func availableMemoryBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
        }
        return nil
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
