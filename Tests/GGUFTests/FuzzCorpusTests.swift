import GGUF
import Testing
import TestSupport

/// Replays the GGUF reader's fuzz corpus (scripts/fuzz gguf-reader): each file is refused with
/// a typed error, or parses to tensors inside the file and a header that survives a round trip.
@Suite struct GGUFFuzzCorpusTests {
    @Test func theCorpusParsesOrIsRefusedWithATypedError() throws {
        let inputs = FuzzCorpus.inputs("gguf-reader")
        #expect(inputs.count >= 2, "the seed corpus is missing")
        var parsed = 0
        for (name, bytes) in inputs {
            let file: GGUFFile
            do { file = try GGUFFile(bytes: bytes) } catch { continue }
            parsed += 1
            for tensor in file.tensors { #expect(tensor.fileRange.upperBound <= file.fileSize, "\(name): \(tensor.name)") }
            let header = file.metadataOnlyBytes()
            let again = try GGUFFile(bytes: header)
            #expect(again.metadataOnlyBytes() == header, "\(name): the header changed on a round trip")
        }
        #expect(parsed >= 2, "the seeds parse")
    }
}
