import Foundation

/// The inputs of a fuzz target that the normal test suite replays: the committed seeds
/// (`Fuzz/corpus/TARGET`) and every input that once crashed it (`Fuzz/regressions/TARGET`).
public enum FuzzCorpus {
    public static func inputs(_ target: String, filePath: String = #filePath) -> [(name: String, bytes: [UInt8])] {
        var root = URL(fileURLWithPath: filePath)
        while root.pathComponents.count > 1, !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        var found: [(String, [UInt8])] = []
        for folder in ["Fuzz/corpus/", "Fuzz/regressions/"] {
            let directory = root.appendingPathComponent(folder + target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for name in names.sorted() {
                if let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) {
                    found.append((folder + target + "/" + name, Array(data)))
                }
            }
        }
        return found
    }
}
