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
    ],
    targets: [
        // Innermost SIMD loops (AVX2/FMA/F16C) with plain C reference twins.
        .target(
            name: "CKernels",
            cSettings: [.unsafeFlags(["-O3", "-mavx2", "-mfma", "-mf16c", "-ffp-contract=fast"])]
        ),
        .target(name: "GGUF"),
        .target(name: "Kernels", dependencies: ["GGUF", "CKernels"], swiftSettings: hotPathSwift),
        .target(name: "Models", dependencies: ["GGUF", "Kernels"], swiftSettings: hotPathSwift),
        .target(name: "Tokenizer", dependencies: ["GGUF"]),
        .target(name: "Sampling"),
        .target(name: "Engine", dependencies: ["GGUF", "Kernels", "Models", "Tokenizer", "Sampling"]),
        .executableTarget(
            name: "CLI",
            dependencies: [
                "Engine", "GGUF", "Kernels", "Models", "Tokenizer", "Sampling", "StarStream", "Node",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Deterministic random data and tiny GGUF models shared by the test targets.
        .target(name: "TestSupport", dependencies: ["GGUF"], path: "Tests/TestSupport"),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "TestSupport"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels", "GGUF", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "GGUF", "Kernels", "TestSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "GGUF"]),
        .testTarget(name: "SamplingTests", dependencies: ["Sampling"]),
        .testTarget(name: "ReferenceTests", dependencies: ["Engine", "Models", "Tokenizer", "Sampling", "GGUF", "StarStream", "Node"]),
        // StarStream: the binary protocol that carries hidden states between nodes.
        .target(
            name: "StarStream",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        // A pipeline stage: a slice of the model served over StarStream, with per-sequence KV
        // caches and batched decode.
        .target(
            name: "Node",
            dependencies: [
                "GGUF", "Kernels", "Models", "Sampling", "StarStream",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Node", "StarStream", "Models", "GGUF", "Engine", "Sampling", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
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
