#if canImport(Glibc)
import Glibc
#endif
import ClusterTrust
import ControlPlane
import StarStream

/// A `host:port` pair as given on the command line.
public struct NodeAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (IPv6 hosts in brackets: `[::1]:7000`).
    public init?(_ text: String) {
        guard let (host, port) = ControlAddress.parse(text) else { return nil }
        self.host = host
        self.port = port
    }

    /// Whether this names the local machine through the loopback interface.
    public var isLoopback: Bool { TransportSecurity.isLoopback(host) }

    /// A TCP port on 127.0.0.1 the kernel just handed out (bound to port 0, then released), for
    /// local clusters started by `bench --nodes` and the tests.
    public static func freeLoopbackPort() throws(NodeError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .network("no free port on 127.0.0.1") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw .network("no free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public var description: String { ControlAddress.format(host: host, port: port) }
}

/// Everything a pipeline node needs to start: which layers of which model it serves, where it
/// listens, where its hidden states go next, and how much it may batch and cache.
public struct NodeConfiguration: Sendable {
    public var modelPath: String
    /// Global layers `A ..< B` this node runs. The node with `A == 0` embeds tokens and talks to
    /// drivers; the node with `B == layerCount` samples.
    public var layers: Range<Int>
    public var listen: NodeAddress
    /// The next stage; the last node's next is node 0, which closes the ring.
    public var next: NodeAddress
    /// How hidden states travel to the next stage.
    public var wire: WireDType = .f16
    /// Shared secret every peer must present in its HELLO.
    public var clusterToken: String = ""
    /// Mutual TLS with the cluster's credentials, or plain TCP (loopback addresses only).
    public var security: TransportSecurity = .insecure
    /// Compute threads (the caller's included).
    public var threads: Int = 2
    /// Sequences with a KV cache at once; more wait at node 0 until one ends.
    public var maxSequences: Int = 16
    /// Positions per sequence (capped by the model's trained context).
    public var contextLength: Int = 4096
    /// Rows per batch through the layers (prompt chunks are split to fit).
    public var maxBatchTokens: Int = 256
    /// Decode micro-batches kept apart around the ring. One per stage lets every stage work at
    /// once when each brings its own cores. Stages that share cores gain nothing from that
    /// overlap and lose by reading every weight once per group, so they want 1: one batch of
    /// every ready sequence. The default is 1 when the next stage is on loopback (this machine),
    /// else one per stage, estimated from the share of layers this node holds.
    public var decodeGroups: Int?
    /// Node 0 sends a probe around the ring this often...
    public var probeIntervalSeconds: Double = 0.5
    /// ...and declares the ring broken when none has come back for this long.
    public var probeTimeoutSeconds: Double = 2.0
    /// A connection that has not completed its HELLO by then is closed.
    public var helloTimeoutSeconds: Double = 5.0
    /// A sequence that hears nothing for this long (a frame was lost, a stage hung) is freed
    /// and reported with ERROR 108, so no sequence holds a slot for ever.
    public var sequenceIdleSeconds: Double = 30
    /// Inbound connections held at once (authenticated or not); more are closed on accept.
    public var maxConnections: Int = 64
    /// An authenticated connection that sends nothing for this long is closed (drivers ping
    /// every few seconds, and node 0's probes cross every link twice a second).
    public var connectionIdleSeconds: Double = 60
    /// A peer that leaves what it is sent unread this long (the node stops reading from it as
    /// soon as its outbound buffer fills) is disconnected, and its sequences are freed.
    public var stalledPeerSeconds: Double = 10
    /// Bytes queued for one peer before the node stops reading from it.
    public var peerWriteBufferBytes: Int = 1 << 20
    /// The kernel's send buffer per inbound connection (SO_SNDBUF); nil: the kernel's default.
    public var socketSendBufferBytes: Int?
    /// Node 0: sequences that may wait for a slot; more OPENs are refused as busy.
    public var maxWaitingSequences: Int = 256
    /// Node 0: sequences one driver connection may hold at once, waiting or admitted.
    public var maxSequencesPerDriver: Int = 256
    /// Bytes of KV cache the node may hold; a sequence whose cache would go over waits (node 0)
    /// or is refused. Nil: a quarter of the memory available at start.
    public var kvBudgetBytes: Int?

    public init(modelPath: String, layers: Range<Int>, listen: NodeAddress, next: NodeAddress) {
        self.modelPath = modelPath
        self.layers = layers
        self.listen = listen
        self.next = next
    }
}

/// Why a node could not start.
public enum NodeError: Error, CustomStringConvertible {
    case model(String)
    case configuration(String)
    case network(String)

    public var description: String {
        switch self {
        case let .model(m): "model: \(m)"
        case let .configuration(m): "configuration: \(m)"
        case let .network(m): "network: \(m)"
        }
    }
}
