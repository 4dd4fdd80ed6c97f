import Dispatch
import GGUF
import Logging
import ModelStore
import Models
import Synchronization

/// Where a node's weights come from: a local GGUF file mapped whole, or a model store from
/// which the node pulls only the tensors of the layers it is assigned (into its verified cache,
/// then mapped from there).
enum WeightSource: Sendable {
    case file(GGUFFile)
    case store(StoreModelSource, base: GGUFFile, index: TensorIndex)

    /// The model's index (and, for a local file, its bytes): what placement and the layout need.
    var index: GGUFFile {
        switch self {
        case let .file(f): f
        case let .store(_, base, _): base
        }
    }

    /// A file holding every tensor that a stage of `layers` loads. A store-fed node fetches
    /// the ones its cache lacks first; this blocks the caller (the stage host's serial queue,
    /// never the async pool) until they are in.
    func file(for layers: Range<Int>, logger: Logger) throws(NodeError) -> GGUFFile {
        switch self {
        case let .file(f):
            return f
        case let .store(source, base, index):
            let names = TransformerModel.tensorNames(file: base, layers: layers)
            let before = source.received.tensorBytes
            let assigned = names.compactMap { base.tensor(named: $0)?.byteCount }.reduce(0, +)
            let result = Self.blocking { () async throws(StoreError) -> GGUFFile in
                try await source.load(names, base: base, index: index)
            }
            switch result {
            case let .success(file):
                logger.info("layers ready from the store", metadata: [
                    "layers": "\(layers.lowerBound)..<\(layers.upperBound)", "tensor_bytes": "\(assigned)",
                    "pulled_now": "\(source.received.tensorBytes - before)", "pulled_total": "\(source.received.total)",
                ])
                return file
            case let .failure(error):
                throw .model("pulling layers \(layers.lowerBound)..<\(layers.upperBound) from \(source.url): \(error)")
            }
        }
    }

    /// Runs `body` on the async pool and waits for it on this (non-pool) thread.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws(StoreError) -> T) -> Result<T, StoreError> {
        let box = Mutex<Result<T, StoreError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let r: Result<T, StoreError>
            do throws(StoreError) { r = .success(try await body()) } catch { r = .failure(error) }
            box.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return box.withLock { $0 } ?? .failure(.io("the pull ended without a result"))
    }
}
