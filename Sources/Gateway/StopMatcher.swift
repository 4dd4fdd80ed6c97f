/// Finds stop strings in streamed text that arrives in arbitrary pieces. A stop string may span
/// several tokens or end inside one; the text before it is released, the stop string and
/// everything after it are not. Text that could still be the start of a stop string is held
/// back until the next piece decides.
public struct StopMatcher: Sendable {
    public let stops: [String]
    private var held = ""
    public private(set) var stopped = false

    public init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
    }

    /// Adds `piece`; returns the text that is now safe to release. After a stop string was found
    /// it returns what preceded it and then only "".
    public mutating func feed(_ piece: String) -> String {
        guard !stopped else { return "" }
        guard !stops.isEmpty else { return piece }
        held += piece
        // The earliest stop string anywhere in the held text ends the stream there.
        var cut: String.Index?
        for stop in stops {
            if let r = held.range(of: stop), cut.map({ r.lowerBound < $0 }) ?? true { cut = r.lowerBound }
        }
        if let cut {
            stopped = true
            defer { held = "" }
            return String(held[..<cut])
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        let keep = stops.map { Self.overlap(held, $0) }.max() ?? 0
        let releaseEnd = held.index(held.endIndex, offsetBy: -keep)
        let out = String(held[..<releaseEnd])
        held = String(held[releaseEnd...])
        return out
    }

    /// What is left when the stream ends without a stop string.
    public mutating func finish() -> String {
        defer { held = "" }
        return stopped ? "" : held
    }

    /// The length (in characters) of the longest suffix of `text` that is a proper prefix of `stop`.
    static func overlap(_ text: String, _ stop: String) -> Int {
        let limit = min(text.count, stop.count - 1)
        guard limit > 0 else { return 0 }
        for length in stride(from: limit, through: 1, by: -1) where text.hasSuffix(stop.prefix(length)) {
            return length
        }
        return 0
    }
}
