// swift-tools-version: 6.1
import PackageDescription

/// Kernel code is the hot path: optimize it even in debug test builds is not possible through
/// SwiftPM settings alone, so the C SIMD target carries its own -O3 and the Swift kernel targets
/// drop exclusivity checks, which cost real time inside inner loops.
let hotPathSwift: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"]),
]

let package = Package(
    name: "PanGalactic",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pangalactic", targets: ["CLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3" ..< "5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: [
        // Innermost SIMD loops, compiled per ISA level with target attributes (no package-wide -m
        // flags, so a CPU without AVX2 runs the plain C twins), with plain C reference twins.
        .target(
            name: "CKernels",
            cSettings: [.unsafeFlags(["-O3", "-ffp-contract=fast"])]
        ),
        .target(name: "GGUF", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Kernels", dependencies: ["GGUF", "CKernels"], swiftSettings: hotPathSwift),
        .target(name: "Models", dependencies: ["GGUF", "Kernels"], swiftSettings: hotPathSwift),
        .target(name: "Tokenizer", dependencies: ["GGUF"]),
        .target(name: "Sampling"),
        .target(name: "Engine", dependencies: ["GGUF", "Kernels", "Models", "Tokenizer", "Sampling"]),
        .executableTarget(
            name: "CLI",
            dependencies: [
                "Engine", "GGUF", "Kernels", "Models", "Tokenizer", "Sampling", "StarStream", "Node", "PipelineClient",
                "ControlPlane", "Hub", "Gateway", "ModelStore", "ClusterTrust",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Deterministic random data and tiny GGUF models shared by the test targets.
        .target(
            name: "TestSupport",
            dependencies: ["GGUF", "PipelineClient", "StarStream", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "TestSupport", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels", "GGUF", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "GGUF", "Kernels", "TestSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "GGUF", "TestSupport"]),
        .testTarget(name: "SamplingTests", dependencies: ["Sampling"]),
        .testTarget(
            name: "ReferenceTests",
            dependencies: [
                "Engine", "Models", "Tokenizer", "Sampling", "GGUF", "StarStream", "Node", "PipelineClient", "ControlPlane", "Hub", "ClusterTrust",
                "TestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // StarStream: the binary protocol that carries hidden states between nodes (the wire
        // format alone: frames, codec, NIO coders; drivers live in PipelineClient).
        .target(
            name: "StarStream",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        // Who belongs to a cluster: its certificate authority, members' certificates and keys,
        // mutual TLS for both planes, and the rule that plain TCP stays on loopback.
        .target(
            name: "ClusterTrust",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ClusterTrustTests",
            dependencies: [
                "ClusterTrust",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The control plane's schema: generated protobuf and gRPC code plus thin wrappers.
        .target(
            name: "ControlPlane",
            dependencies: [
                "ClusterTrust",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // The client side of a pipeline: the driver that runs requests through node 0, and the
        // cluster driver that follows the hub's route plans and replays requests on failover.
        // No kernels: the gateway links it.
        .target(
            name: "PipelineClient",
            dependencies: [
                "StarStream", "Sampling", "ControlPlane", "ClusterTrust",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The OpenAI-compatible HTTP front: chat and text completions (SSE or not), models,
        // health and Prometheus metrics over the hub's cluster. No kernels.
        .target(
            name: "Gateway",
            dependencies: [
                "PipelineClient", "ControlPlane", "Tokenizer", "GGUF", "Sampling", "StarStream", "ClusterTrust",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "PipelineClient", "Tokenizer", "GGUF", "StarStream", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        // The model store: an HTTP server of GGUF files with per-tensor SHA-256 indexes, and the
        // node side that pulls only its own tensors into a verified, content-addressed cache.
        .target(
            name: "ModelStore",
            dependencies: [
                "GGUF",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ModelStoreTests",
            dependencies: [
                "ModelStore", "GGUF", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The hub: registry, heartbeats, placement, failover re-planning, state snapshots.
        .target(
            name: "Hub",
            dependencies: [
                "ControlPlane", "ClusterTrust",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "HubTests",
            dependencies: [
                "Hub", "ControlPlane", "PipelineClient", "TestSupport", "ClusterTrust",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            ]
        ),
        // A pipeline stage: a slice of the model served over StarStream, with per-sequence KV
        // caches and batched decode; in join mode it takes its assignment from the hub.
        .target(
            name: "Node",
            dependencies: [
                "GGUF", "Kernels", "Models", "Sampling", "StarStream", "PipelineClient", "ControlPlane", "ModelStore", "ClusterTrust",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Node", "StarStream", "PipelineClient", "Hub", "ControlPlane", "Models", "GGUF", "Engine", "Sampling", "TestSupport",
                "Gateway", "Tokenizer", "ModelStore", "ClusterTrust",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "StarStreamTests",
            dependencies: [
                "StarStream",
                "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets (scripts/fuzz), built only with PANGALACTIC_FUZZ=1 and the fuzzer and
// address sanitizers, so the normal build and CI never see them.
if Context.environment["PANGALACTIC_FUZZ"] == "1" {
    package.targets += [
        .executableTarget(name: "FuzzStarStreamDecoder", dependencies: ["StarStream", .product(name: "NIOCore", package: "swift-nio")],
                          path: "Fuzz/StarStreamDecoder"),
        .executableTarget(name: "FuzzGGUFReader", dependencies: ["GGUF", "Models", "Tokenizer"], path: "Fuzz/GGUFReader"),
        .executableTarget(name: "FuzzChatTemplate", dependencies: ["Tokenizer"], path: "Fuzz/ChatTemplate"),
        .executableTarget(name: "FuzzNodeConnection",
                          dependencies: ["Node", "StarStream", "GGUF", "TestSupport", .product(name: "NIOCore", package: "swift-nio"),
                                         .product(name: "Logging", package: "swift-log")],
                          path: "Fuzz/NodeConnection"),
    ]
}
