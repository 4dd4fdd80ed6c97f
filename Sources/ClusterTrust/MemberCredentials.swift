import Crypto
import Foundation
import NIOSSL
import X509

/// What one member of a cluster holds: its private key, its certificate (naming it and its role),
/// and the authority's certificate it trusts. From these come the TLS contexts of both planes.
public struct MemberCredentials: Sendable {
    public static let certificateFile = "member.pem"
    public static let keyFile = "member.key.pem"

    /// The cluster's root: a peer is trusted when its certificate chains to this.
    public let authority: Certificate
    public let certificate: Certificate
    let privateKey: P256.Signing.PrivateKey
    /// The member's name (certificate common name).
    public let name: String
    /// The member's role (certificate organizational unit).
    public let role: ClusterRole
    /// TLS 1.3 contexts with this member's certificate, trusting only the cluster's authority.
    /// Made once: building a context parses keys and certificates.
    public let serverContext: NIOSSLContext
    public let clientContext: NIOSSLContext

    /// Checks that `certificate` was signed by `authority`, belongs to `privateKey`, and names a
    /// member, then builds the TLS contexts.
    public init(authority: Certificate, certificate: Certificate, privateKey: P256.Signing.PrivateKey) throws {
        guard authority.publicKey.isValidSignature(certificate.signature, for: certificate), certificate.issuer == authority.subject else {
            throw TrustError.notIssuedByCluster("the member certificate")
        }
        guard Certificate.PublicKey(privateKey.publicKey) == certificate.publicKey else {
            throw TrustError.invalid("the member key does not match its certificate")
        }
        guard let member = certificate.clusterMember else { throw TrustError.invalid("the certificate names no cluster role") }
        self.authority = authority
        self.certificate = certificate
        self.privateKey = privateKey
        name = member.name
        role = member.role
        certificatePEM = try certificate.serializeAsPEM().pemString
        authorityPEM = try authority.serializeAsPEM().pemString
        privateKeyPEM = privateKey.pemRepresentation
        let chain = try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem)
        let root = try NIOSSLCertificate(bytes: Array(authorityPEM.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)

        var server = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(chain)], privateKey: .privateKey(key))
        server.minimumTLSVersion = .tlsv13
        server.trustRoots = .certificates([root])
        server.certificateVerification = .noHostnameVerification
        serverContext = try NIOSSLContext(configuration: server)

        var client = TLSConfiguration.makeClientConfiguration()
        client.minimumTLSVersion = .tlsv13
        client.certificateChain = [.certificate(chain)]
        client.privateKey = .privateKey(key)
        client.trustRoots = .certificates([root])
        client.certificateVerification = .noHostnameVerification
        clientContext = try NIOSSLContext(configuration: client)
    }

    /// PEM text of the three parts, for files and for the gRPC transport's configuration.
    public let authorityPEM: String
    public let certificatePEM: String
    public let privateKeyPEM: String

    /// When the certificate stops being valid.
    public var notValidAfter: Date { certificate.notValidAfter }

    /// Writes `ca.pem`, `member.pem` and `member.key.pem` (owner-only) into `directory`.
    public func save(to directory: String) throws {
        try CredentialFiles.makeDirectory(directory)
        try CredentialFiles.write(authorityPEM, to: directory + "/" + ClusterAuthority.certificateFile, secret: false)
        try CredentialFiles.write(certificatePEM, to: directory + "/" + Self.certificateFile, secret: false)
        try CredentialFiles.write(privateKeyPEM, to: directory + "/" + Self.keyFile, secret: true)
    }

    /// Reads a member's credentials from `directory` (as `save` or `pangalactic init` wrote them).
    public static func load(from directory: String) throws -> MemberCredentials {
        let authority = try CredentialFiles.readCertificate(directory + "/" + ClusterAuthority.certificateFile)
        let certificate = try CredentialFiles.readCertificate(directory + "/" + certificateFile)
        let keyPath = directory + "/" + keyFile
        let key: P256.Signing.PrivateKey
        do { key = try P256.Signing.PrivateKey(pemRepresentation: try CredentialFiles.read(keyPath)) } catch let error as TrustError {
            throw error
        } catch { throw TrustError.unreadable(path: keyPath, reason: "\(error)") }
        return try MemberCredentials(authority: authority, certificate: certificate, privateKey: key)
    }

    /// Whether `directory` holds a member's credentials.
    public static func exist(in directory: String) -> Bool {
        [ClusterAuthority.certificateFile, certificateFile, keyFile].allSatisfy { FileManager.default.fileExists(atPath: directory + "/" + $0) }
    }
}
