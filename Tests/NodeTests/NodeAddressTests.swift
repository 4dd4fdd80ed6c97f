import Node
import Testing

@Suite struct NodeAddressTests {
    @Test func parsesHostAndPort() {
        #expect(NodeAddress("127.0.0.1:7101") == NodeAddress(host: "127.0.0.1", port: 7101))
        #expect(NodeAddress("[::1]:7000") == NodeAddress(host: "::1", port: 7000))
        #expect(NodeAddress("node-b.lan:9000") == NodeAddress(host: "node-b.lan", port: 9000))
        for bad in ["", "7101", ":7101", "host:", "host:65536", "host:-1", "host:x"] {
            #expect(NodeAddress(bad) == nil, "\(bad)")
        }
    }

    /// A next stage on loopback shares this machine's cores, which sets the default decode groups.
    @Test func loopbackAddressesAreRecognized() {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1"] { #expect(NodeAddress(host: host, port: 1).isLoopback, "\(host)") }
        for host in ["10.0.0.2", "node-b.lan", "::2", "128.0.0.1"] { #expect(!NodeAddress(host: host, port: 1).isLoopback, "\(host)") }
    }
}
