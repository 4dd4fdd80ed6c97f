import ClusterTrust
import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SwiftASN1
import Synchronization
import Testing
import X509

@Suite struct ClusterTrustTests {
    static func temporaryDirectory() -> String {
        NSTemporaryDirectory() + "pangalactic-trust-test-\(UInt64.random(in: 1 ... .max))"
    }

    @Test func anAuthorityIssuesMembersThatLoadBackWithOwnerOnlyKeys() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let authority = try ClusterAuthority.create(clusterName: "t")
        try authority.save(to: directory)
        let reloaded = try ClusterAuthority.load(from: directory)
        #expect(reloaded.certificate == authority.certificate)
        #expect(authority.fingerprint.count == 32)

        let member = try reloaded.makeMember(name: "n1", role: .node)
        try member.save(to: directory + "/n1")
        let loaded = try MemberCredentials.load(from: directory + "/n1")
        #expect(loaded.name == "n1")
        #expect(loaded.role == .node)
        #expect(loaded.certificate == member.certificate)
        #expect(loaded.certificate.issuer == authority.certificate.subject)
        for file in [ClusterAuthority.keyFile, "n1/" + MemberCredentials.keyFile] {
            let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/" + file)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(file) is readable by others")
        }
        #expect(MemberCredentials.exist(in: directory + "/n1"))
        #expect(!MemberCredentials.exist(in: directory + "/none"))
        #expect(throws: TrustError.missingFile(directory + "/none/ca.pem")) { try MemberCredentials.load(from: directory + "/none") }
    }

    @Test func aCertificateFromAnotherAuthorityOrWithAnotherKeyIsRefused() throws {
        let ours = try ClusterAuthority.create(clusterName: "ours")
        let theirs = try ClusterAuthority.create(clusterName: "theirs")
        let stranger = try theirs.makeMember(name: "x", role: .node)
        #expect(throws: TrustError.notIssuedByCluster("the member certificate")) {
            _ = try MemberCredentials(authority: ours.certificate, certificate: stranger.certificate, privateKey: .init())
        }
        let member = try ours.makeMember(name: "y", role: .node)
        #expect(throws: TrustError.invalid("the member key does not match its certificate")) {
            _ = try MemberCredentials(authority: ours.certificate, certificate: member.certificate, privateKey: .init())
        }
    }

    @Test func aSigningRequestGetsACertificateForItsOwnKeyAndName() throws {
        let authority = try ClusterAuthority.create()
        let key = P256.Signing.PrivateKey()
        let request = try CertificateSigningRequest(version: .v1, subject: try DistinguishedName { CommonName("joiner") },
                                                    privateKey: .init(key), attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
        let certificate = try authority.sign(request, role: .gateway)
        let member = try MemberCredentials(authority: authority.certificate, certificate: certificate, privateKey: key)
        #expect(member.name == "joiner")
        #expect(member.role == .gateway)
    }

    @Test func joinTokensRoundTripAndRejectGarbage() throws {
        let token = JoinToken.generate(for: try ClusterAuthority.create())
        #expect(JoinToken(token.description) == token)
        for bad in ["", "pgj1", "pgj1.zz.yy.xx", "pgj2" + token.description.dropFirst(4), token.description + ".x",
                    String(token.description.dropLast(3))] {
            #expect(JoinToken(bad) == nil, "\(bad)")
        }
    }

    /// Every way an enrollment can be wrong is refused, with the reason in the error (which the
    /// hub logs), and the nonce is spent either way.
    @Test func enrollmentRefusesWrongExpiredReplayedAndMisdirectedRequests() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let authority = try ClusterAuthority.create()
        try authority.save(to: directory)
        let (token, _) = try JoinTokenFile.create(in: directory, authority: authority, lifetime: 600, roles: [.node])
        let (expired, _) = try JoinTokenFile.create(in: directory, authority: authority, lifetime: -1)
        let hub = EnrollmentAuthority(authority: authority, directory: directory)
        let joiner = try EnrollmentRequest(token: token, role: .node, name: "n")

        func attempt(id: String? = nil, role: String = "node", request: [UInt8]? = nil, proof: (([UInt8]) -> [UInt8])? = nil,
                     nonce: [UInt8]? = nil) throws(EnrollmentError) -> Certificate {
            let n = nonce ?? hub.challenge()
            let p = proof?(n) ?? JoinToken.proof(secret: token.secret, nonce: n, role: role, request: request ?? joiner.request)
            return try hub.enroll(tokenID: id ?? token.id, nonce: n, role: role, request: request ?? joiner.request, proof: p).certificate
        }
        let certificate = try attempt()
        #expect(try joiner.credentials(certificate: certificate.derBytes, authority: authority.certificate.derBytes).name == "n")
        #expect(throws: EnrollmentError.unknownNonce) { _ = try attempt(nonce: Array(repeating: 7, count: 32)) }
        #expect(throws: EnrollmentError.unknownToken("00000000")) { _ = try attempt(id: "00000000") }
        #expect(throws: EnrollmentError.expiredToken(expired.id)) {
            let n = hub.challenge()
            _ = try hub.enroll(tokenID: expired.id, nonce: n, role: "node", request: joiner.request,
                               proof: JoinToken.proof(secret: expired.secret, nonce: n, role: "node", request: joiner.request))
        }
        #expect(throws: EnrollmentError.badProof(token.id)) { _ = try attempt(proof: { JoinToken.proof(secret: [UInt8](repeating: 1, count: 16), nonce: $0, role: "node", request: joiner.request) }) }
        // The proof covers the role and the request: neither can be swapped after the fact.
        #expect(throws: EnrollmentError.badProof(token.id)) { _ = try attempt(role: "gateway", proof: { joiner.proof(nonce: $0) }) }
        let other = try EnrollmentRequest(token: token, role: .node, name: "other")
        #expect(throws: EnrollmentError.badProof(token.id)) { _ = try attempt(request: other.request, proof: { joiner.proof(nonce: $0) }) }
        // This token admits nodes only, and no token admits a hub.
        #expect(throws: EnrollmentError.roleNotAllowed("gateway")) { _ = try attempt(role: "gateway") }
        #expect(throws: EnrollmentError.roleNotAllowed("hub")) { _ = try attempt(role: "hub") }
        #expect(throws: EnrollmentError.badRequest("not a PKCS #10 request")) { _ = try attempt(request: [1, 2, 3]) }
        // A joiner refuses an answer signed by an authority other than the one its token pins.
        let impostor = try ClusterAuthority.create(clusterName: "impostor")
        let forged = try impostor.sign(try CertificateSigningRequest(derEncoded: joiner.request), role: .node)
        #expect(throws: TrustError.self) { _ = try joiner.credentials(certificate: forged.derBytes, authority: impostor.certificate.derBytes) }
    }

    @Test func plainTCPIsAllowedOnLoopbackOnly() throws {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"] {
            #expect(TransportSecurity.isLoopback(host), "\(host)")
            try TransportSecurity.insecure.requireAllowed(host: host)
        }
        for host in ["0.0.0.0", "10.0.0.5", "::", "example.com", "127.0.0.1.example.com", "1127.0.0.1"] {
            #expect(!TransportSecurity.isLoopback(host), "\(host)")
            #expect(throws: TrustError.insecureNotLoopback(host)) { try TransportSecurity.insecure.requireAllowed(host: host) }
        }
        let member = try ClusterAuthority.create().makeMember(name: "n", role: .node)
        try TransportSecurity.mutualTLS(member).requireAllowed(host: "10.0.0.5")
    }

    /// A live TLS server that accepts nodes only and echoes what they send.
    @Test func onlyPeersWithTheClustersCertificateAndAnAcceptedRoleGetThrough() async throws {
        let authority = try ClusterAuthority.create()
        let server = TransportSecurity.mutualTLS(try authority.makeMember(name: "server", role: .node))
        let refusals = Mutex<[String]>([])
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try server.addHandlers(to: channel.pipeline.syncOperations, side: .server, accepting: [.node]) { reason in
                        refusals.withLock { $0.append(reason) }
                    }
                    try channel.pipeline.syncOperations.addHandler(Echo())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { listener.close(promise: nil) }
        let port = try #require(listener.localAddress?.port)

        #expect(try await Self.exchange(port: port, group: group, security: .mutualTLS(try authority.makeMember(name: "n2", role: .node))) == "hello")
        #expect(try await Self.exchange(port: port, group: group, security: .mutualTLS(try authority.makeMember(name: "gw", role: .gateway))) == nil)
        let other = try ClusterAuthority.create(clusterName: "other")
        #expect(try await Self.exchange(port: port, group: group, security: .mutualTLS(try other.makeMember(name: "n3", role: .node))) == nil)
        // Plain TCP gets at most a TLS alert back, never the echo.
        #expect(try await Self.exchange(port: port, group: group, security: .insecure) != "hello")
        // A client refuses a server from another authority as well.
        let rogue = TransportSecurity.mutualTLS(try other.makeMember(name: "rogue", role: .node))
        let rogueListener = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try rogue.addHandlers(to: channel.pipeline.syncOperations, side: .server, accepting: [.node]) { _ in }
                    try channel.pipeline.syncOperations.addHandler(Echo())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { rogueListener.close(promise: nil) }
        let roguePort = try #require(rogueListener.localAddress?.port)
        #expect(try await Self.exchange(port: roguePort, group: group, security: .mutualTLS(try authority.makeMember(name: "n4", role: .node))) == nil)

        let reasons = refusals.withLock { $0 }
        #expect(reasons.contains { $0.contains("gateway gw") }, "\(reasons)")
        #expect(reasons.filter { $0.contains("TLS") }.count >= 2, "\(reasons)")
    }

    /// Sends "hello" and returns the echo, or what came back before the connection closed (nil:
    /// nothing). Fails if the connection neither echoes nor closes within 5 s.
    static func exchange(port: Int, group: EventLoopGroup, security: TransportSecurity) async throws -> String? {
        let received = Collector()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try security.addHandlers(to: channel.pipeline.syncOperations, side: .client, accepting: [.node]) { _ in }
                    try channel.pipeline.syncOperations.addHandler(received)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        // A refused peer may find the connection closed before it writes.
        try? await channel.writeAndFlush(ByteBuffer(string: "hello")).get()
        // The echo, the connection's end, or the deadline: whichever comes first.
        channel.closeFuture.whenComplete { _ in received.settled.succeed() }
        let deadline = channel.eventLoop.scheduleTask(in: .seconds(5)) { received.settled.fail(ExchangeTimeout()) }
        defer { deadline.cancel() }
        do { try await received.settled.futureResult.get() } catch {
            try? await channel.close()
            throw error
        }
        try? await channel.close()
        return received.text.withLock { $0 }
    }

    final class Echo: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }

    struct ExchangeTimeout: Error, CustomStringConvertible {
        var description: String { "the connection neither echoed nor closed within 5 s" }
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let text = Mutex<String?>(nil)
        /// Succeeds when the whole echo is in (or the connection closes).
        let settled = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            let count = text.withLock { t -> Int in
                t = (t ?? "") + String(buffer: buffer)
                return t?.count ?? 0
            }
            if count >= 5 { settled.succeed() }
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}

