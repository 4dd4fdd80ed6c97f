#if canImport(Glibc)
import Glibc
#endif

/// Free TCP ports on 127.0.0.1 for tests that start nodes (bind to port 0, read it back, release).
public enum LoopbackPort {
    public struct Unavailable: Error {}

    public static func free() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Unavailable() }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw Unavailable() }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
