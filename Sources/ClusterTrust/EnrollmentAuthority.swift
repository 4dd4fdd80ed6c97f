import Crypto
import Foundation
import SwiftASN1
import Synchronization
import X509

/// Why an enrollment was refused. The joiner hears only "refused"; the hub's log says why.
public enum EnrollmentError: Error, CustomStringConvertible, Equatable {
    case unknownToken(String)
    case expiredToken(String)
    case roleNotAllowed(String)
    case unknownNonce
    case badProof(String)
    case badRequest(String)

    public var description: String {
        switch self {
        case let .unknownToken(id): "no join token \(id)"
        case let .expiredToken(id): "join token \(id) has expired"
        case let .roleNotAllowed(role): "the token does not admit a \(role)"
        case .unknownNonce: "the nonce is unknown, used already or expired (a replayed or late enrollment)"
        case let .badProof(id): "the proof does not match join token \(id) (wrong token)"
        case let .badRequest(why): "bad certificate request: \(why)"
        }
    }
}

/// The hub's side of enrollment: one-time nonces, token checks, and signing. The tokens are
/// read from the authority's folder on every enrollment, so `pangalactic token` can add one
/// while the hub runs.
public final class EnrollmentAuthority: Sendable {
    public let authority: ClusterAuthority
    private let directory: String
    /// Outstanding nonces and when each expires (at most `maxNonces`; the oldest goes first).
    private let nonces = Mutex<[(nonce: [UInt8], expires: Date)]>([])
    public static let maxNonces = 1024
    public static let nonceLifetime: TimeInterval = 60
    /// A certificate request is a few hundred bytes; more is not one.
    public static let maxRequestBytes = 8192

    public init(authority: ClusterAuthority, directory: String) {
        self.authority = authority
        self.directory = directory
    }

    /// A fresh 32-byte nonce, remembered for one use.
    public func challenge() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let nonce = (0 ..< 32).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
        let now = Date()
        nonces.withLock { list in
            list.removeAll { $0.expires <= now }
            if list.count >= Self.maxNonces { list.removeFirst(list.count - Self.maxNonces + 1) }
            list.append((nonce, now.addingTimeInterval(Self.nonceLifetime)))
        }
        return nonce
    }

    /// Checks the proof and signs the request. The nonce is spent whatever the outcome, so a
    /// captured request can never be sent again.
    public func enroll(tokenID: String, nonce: [UInt8], role: String, request: [UInt8], proof: [UInt8])
        throws(EnrollmentError) -> (certificate: Certificate, authority: Certificate) {
        let now = Date()
        let known = nonces.withLock { list -> Bool in
            guard let i = list.firstIndex(where: { $0.nonce == nonce }) else { return false }
            let entry = list.remove(at: i)
            return entry.expires > now
        }
        guard known else { throw .unknownNonce }
        guard request.count <= Self.maxRequestBytes else { throw .badRequest("\(request.count) bytes") }
        let records: [JoinTokenRecord]
        do { records = try JoinTokenFile.load(from: directory) } catch { throw .unknownToken(tokenID) }
        guard let record = records.first(where: { $0.id == tokenID.lowercased() }), let secret = Base64URL.decode(record.secret) else {
            throw .unknownToken(String(tokenID.prefix(16)))
        }
        guard record.expires > now else { throw .expiredToken(record.id) }
        let expected = JoinToken.proof(secret: secret, nonce: nonce, role: role, request: request)
        guard proof.count == expected.count, Self.constantTimeEqual(proof, expected) else { throw .badProof(record.id) }
        guard let memberRole = ClusterRole(rawValue: role), memberRole != .hub, record.roles.contains(memberRole) else {
            throw .roleNotAllowed(String(role.prefix(16)))
        }
        let csr: CertificateSigningRequest
        do { csr = try CertificateSigningRequest(derEncoded: request) } catch { throw .badRequest("not a PKCS #10 request") }
        do {
            return (try authority.sign(csr, role: memberRole), authority.certificate)
        } catch {
            throw .badRequest("\(error)")
        }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0 && a.count == b.count
    }
}

/// The joiner's side: a fresh key, a request naming the member, the proof, and the check of
/// what comes back against the token's pin.
public struct EnrollmentRequest: Sendable {
    public let token: JoinToken
    public let role: ClusterRole
    public let name: String
    let privateKey: P256.Signing.PrivateKey
    /// The DER request sent to the hub.
    public let request: [UInt8]

    public init(token: JoinToken, role: ClusterRole, name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 64 else { throw TrustError.invalid("member name must be 1–64 bytes") }
        self.token = token
        self.role = role
        self.name = name
        privateKey = P256.Signing.PrivateKey()
        let csr = try CertificateSigningRequest(version: .v1, subject: try DistinguishedName { CommonName(name) },
                                                privateKey: .init(privateKey), attributes: .init(), signatureAlgorithm: .ecdsaWithSHA256)
        var serializer = DER.Serializer()
        try serializer.serialize(csr)
        request = serializer.serializedBytes
    }

    /// The proof for the hub's `nonce`.
    public func proof(nonce: [UInt8]) -> [UInt8] {
        JoinToken.proof(secret: token.secret, nonce: nonce, role: role.rawValue, request: request)
    }

    /// The credentials from the hub's answer, after checking that the authority is the one the
    /// token pins and that the certificate it signed is for this key, name and role.
    public func credentials(certificate: [UInt8], authority: [UInt8]) throws -> MemberCredentials {
        guard Array(SHA256.hash(data: authority)) == token.authorityFingerprint else {
            throw TrustError.notIssuedByCluster("the authority the hub sent (its fingerprint is not the token's)")
        }
        let root: Certificate, leaf: Certificate
        do {
            root = try Certificate(derEncoded: authority)
            leaf = try Certificate(derEncoded: certificate)
        } catch { throw TrustError.invalid("the hub's answer holds no certificates: \(error)") }
        let credentials = try MemberCredentials(authority: root, certificate: leaf, privateKey: privateKey)
        guard credentials.name == name, credentials.role == role else {
            throw TrustError.invalid("the hub issued a certificate for \(credentials.role.rawValue) \(credentials.name), not \(role.rawValue) \(name)")
        }
        return credentials
    }
}

