import ControlPlane
import CoreMetrics
import Foundation
import Metrics
import Prometheus
import Synchronization

/// The gateway's figures, recorded through swift-metrics into a Prometheus registry of its own
/// (so several gateways can live in one process), and rendered as Prometheus text on `/metrics`.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let ttft: CoreMetrics.Timer
    private let itl: CoreMetrics.Timer
    private let requests: CoreMetrics.Counter
    private let promptTokens: CoreMetrics.Counter
    private let completionTokens: CoreMetrics.Counter
    private let queueDepth: CoreMetrics.Gauge
    private let inFlight: CoreMetrics.Gauge
    private let tokensPerSecond: CoreMetrics.Gauge
    private let errors = Mutex<[String: CoreMetrics.Counter]>([:])
    private let rate = Mutex<(tokens: Int, since: Double, perSecond: Double)>((0, 0, 0))
    /// Node figures the last scrape set, so nodes that left can be zeroed.
    private let nodeGauges = Mutex<[String: [CoreMetrics.Gauge]]>([:])

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let seconds: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                   .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10)]
        factory.durationHistogramBuckets = ["pangalactic_ttft_seconds": seconds, "pangalactic_itl_seconds": seconds]
        self.factory = factory
        ttft = CoreMetrics.Timer(label: "pangalactic_ttft_seconds", factory: factory)
        itl = CoreMetrics.Timer(label: "pangalactic_itl_seconds", factory: factory)
        requests = CoreMetrics.Counter(label: "pangalactic_requests_total", factory: factory)
        promptTokens = CoreMetrics.Counter(label: "pangalactic_prompt_tokens_total", factory: factory)
        completionTokens = CoreMetrics.Counter(label: "pangalactic_completion_tokens_total", factory: factory)
        queueDepth = CoreMetrics.Gauge(label: "pangalactic_queue_depth", factory: factory)
        inFlight = CoreMetrics.Gauge(label: "pangalactic_in_flight_sequences", factory: factory)
        tokensPerSecond = CoreMetrics.Gauge(label: "pangalactic_tokens_per_second", factory: factory)
    }

    func requestStarted(promptTokens count: Int) {
        requests.increment()
        promptTokens.increment(by: count)
    }

    func firstToken(after nanoseconds: Int64) { ttft.recordNanoseconds(nanoseconds) }
    func interToken(_ nanoseconds: Int64) { itl.recordNanoseconds(nanoseconds) }

    func tokenGenerated() {
        completionTokens.increment()
        let now = Self.seconds()
        let perSecond = rate.withLock { r -> Double? in
            r.tokens += 1
            guard now - r.since >= 1 else { return nil }
            r.perSecond = Double(r.tokens) / (now - r.since)
            r.tokens = 0
            r.since = now
            return r.perSecond
        }
        if let perSecond { tokensPerSecond.record(perSecond) }
    }

    /// An error answered to a client, by OpenAI error type (or `disconnect`).
    func error(_ type: String) {
        let counter = errors.withLock { e in
            if let c = e[type] { return c }
            let c = CoreMetrics.Counter(label: "pangalactic_errors_total", dimensions: [("type", type)], factory: factory)
            e[type] = c
            return c
        }
        counter.increment()
    }

    func queue(depth: Int, inFlight sequences: Int) {
        queueDepth.record(depth)
        inFlight.record(sequences)
    }

    /// The hub's view of each node: up, layers, KV bytes in use, hop time, sequences.
    func nodes(_ status: Pangalactic_Control_V1_ClusterStatusReply?) {
        var seen = Set<String>()
        for n in status?.nodes ?? [] {
            let dims = [("node", n.name), ("address", n.address)]
            let key = "\(n.name)@\(n.address)"
            seen.insert(key)
            let gauges = nodeGauges.withLock { g in
                if let existing = g[key] { return existing }
                let made = ["pangalactic_node_up", "pangalactic_node_layers", "pangalactic_node_first_layer", "pangalactic_node_kv_bytes",
                            "pangalactic_node_hop_ms", "pangalactic_node_active_sequences", "pangalactic_node_waiting_sequences"]
                    .map { CoreMetrics.Gauge(label: $0, dimensions: dims, factory: factory) }
                g[key] = made
                return made
            }
            let up = n.state == "active" || n.state == "standby" || n.state == "draining"
            gauges[0].record(up ? 1 : 0)
            gauges[1].record(n.hasLayers_p ? Int(n.endLayer) - Int(n.firstLayer) : 0)
            gauges[2].record(n.hasLayers_p ? Int(n.firstLayer) : -1)
            gauges[3].record(Int(n.load.kvBytes))
            gauges[4].record(n.load.hopP50Ms)
            gauges[5].record(Int(n.load.activeSequences))
            gauges[6].record(Int(n.load.waitingSequences))
        }
        nodeGauges.withLock { g in
            for (key, gauges) in g where !seen.contains(key) { gauges[0].record(0) }
        }
    }

    /// Prometheus text format.
    public func render() -> String { registry.emitToString() }

    static func seconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
