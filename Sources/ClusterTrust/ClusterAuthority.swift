import Crypto
import Foundation
import SwiftASN1
import X509

/// What a cluster member is allowed to be. It is written into each member's certificate (as the
/// subject's organizational unit), so a peer learns it from the TLS handshake, not from a claim
/// the peer makes itself.
public enum ClusterRole: String, Sendable, CaseIterable, Codable {
    /// The control plane: registry, placement, route plans.
    case hub
    /// A pipeline stage: serves StarStream and connects to the next stage.
    case node
    /// Anything that drives sequences through node 0: the gateway, `generate --hub`, benches.
    case gateway
}

/// Why a credential could not be made, read, or trusted.
public enum TrustError: Error, CustomStringConvertible, Equatable {
    case missingFile(String)
    case unreadable(path: String, reason: String)
    case invalid(String)
    case notIssuedByCluster(String)
    case wrongRole(expected: String, found: String)
    case insecureNotLoopback(String)

    public var description: String {
        switch self {
        case let .missingFile(path): "missing \(path) (make a cluster with `pangalactic init --dir DIR`)"
        case let .unreadable(path, reason): "cannot read \(path): \(reason)"
        case let .invalid(message): message
        case let .notIssuedByCluster(what): "\(what) was not issued by this cluster's authority"
        case let .wrongRole(expected, found): "the peer's certificate is for a \(found), not a \(expected)"
        case let .insecureNotLoopback(address):
            "--insecure (plain TCP) is refused on \(address): only loopback addresses may go without TLS"
        }
    }
}

/// A cluster's certificate authority: the one key that signs every member's certificate. It
/// lives where `pangalactic init` ran (beside the hub); members hold only its certificate.
public struct ClusterAuthority: Sendable {
    public static let certificateFile = "ca.pem"
    public static let keyFile = "ca.key.pem"

    /// The self-signed root every member trusts.
    public let certificate: Certificate
    let privateKey: P256.Signing.PrivateKey

    init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// A new authority with a fresh P-256 key, valid for `validityDays`.
    public static func create(clusterName: String = "pangalactic", validityDays: Int = 3650) throws -> ClusterAuthority {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("PanGalactic")
            CommonName("\(clusterName) cluster authority")
        }
        let now = Date()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(Double(validityDays) * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: .init(key))
        return ClusterAuthority(certificate: certificate, privateKey: key)
    }

    /// A certificate for `publicKey` naming `name` in role `role`, good for client and server use
    /// (a node is both), with no host names: peers are identified by chain and role, since nodes
    /// are reached by whatever address the hub hands out.
    public func issue(name: String, role: ClusterRole, publicKey: Certificate.PublicKey, validityDays: Int = 365) throws -> Certificate {
        guard !name.isEmpty, name.utf8.count <= 64 else { throw TrustError.invalid("member name must be 1–64 bytes") }
        let now = Date()
        let subject = try DistinguishedName {
            OrganizationName("PanGalactic")
            OrganizationalUnitName(role.rawValue)
            CommonName(name)
        }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(Double(validityDays) * 86400),
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: .init(privateKey))
    }

    /// Signs a member's certificate signing request, after checking that the request is signed
    /// by the key it names (the member holds the private key that goes with the certificate).
    public func sign(_ request: CertificateSigningRequest, role: ClusterRole, validityDays: Int = 365) throws -> Certificate {
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw TrustError.invalid("the certificate request's signature does not match its key")
        }
        guard let name = request.subject.commonName else { throw TrustError.invalid("the certificate request names no member") }
        return try issue(name: name, role: role, publicKey: request.publicKey, validityDays: validityDays)
    }

    /// A new member: a fresh key and a certificate for it (for `serve`'s local members and for
    /// `pangalactic issue`; a joining node makes its own key and sends only a request).
    public func makeMember(name: String, role: ClusterRole, validityDays: Int = 365) throws -> MemberCredentials {
        let key = P256.Signing.PrivateKey()
        let certificate = try issue(name: name, role: role, publicKey: .init(key.publicKey), validityDays: validityDays)
        return try MemberCredentials(authority: self.certificate, certificate: certificate, privateKey: key)
    }

    /// SHA-256 of the authority certificate's DER bytes: what a join token pins.
    public var fingerprint: [UInt8] { (try? certificate.derBytes).map { Array(SHA256.hash(data: $0)) } ?? [] }

    /// Writes `ca.pem` and `ca.key.pem` (owner-only) into `directory`, creating it.
    public func save(to directory: String) throws {
        try CredentialFiles.makeDirectory(directory)
        try CredentialFiles.write(certificate.serializeAsPEM().pemString, to: directory + "/" + Self.certificateFile, secret: false)
        try CredentialFiles.write(privateKey.pemRepresentation, to: directory + "/" + Self.keyFile, secret: true)
    }

    /// Reads the authority that `pangalactic init` wrote into `directory`.
    public static func load(from directory: String) throws -> ClusterAuthority {
        let certificatePath = directory + "/" + certificateFile
        let keyPath = directory + "/" + keyFile
        let certificate = try CredentialFiles.readCertificate(certificatePath)
        let key: P256.Signing.PrivateKey
        do { key = try P256.Signing.PrivateKey(pemRepresentation: try CredentialFiles.read(keyPath)) } catch let error as TrustError {
            throw error
        } catch { throw TrustError.unreadable(path: keyPath, reason: "\(error)") }
        guard Certificate.PublicKey(key.publicKey) == certificate.publicKey else {
            throw TrustError.invalid("\(keyPath) is not the key of \(certificatePath)")
        }
        return ClusterAuthority(certificate: certificate, privateKey: key)
    }
}

extension DistinguishedName {
    /// The first common name, as text.
    var commonName: String? { firstValue(of: .RDNAttributeType.commonName) }
    /// The first organizational unit, as text (a member's role).
    var organizationalUnit: String? { firstValue(of: .RDNAttributeType.organizationalUnitName) }

    private func firstValue(of type: ASN1ObjectIdentifier) -> String? {
        for rdn in self {
            for attribute in rdn where attribute.type == type {
                if let text = String(attribute.value) { return text }
            }
        }
        return nil
    }
}

extension Certificate {
    /// The certificate's DER encoding.
    public var derBytes: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(self)
            return serializer.serializedBytes
        }
    }

    /// The member name and role a cluster certificate carries, or nil for a certificate that is
    /// not a member's (no role, or an unknown one).
    public var clusterMember: (name: String, role: ClusterRole)? {
        guard let unit = subject.organizationalUnit, let role = ClusterRole(rawValue: unit), let name = subject.commonName else { return nil }
        return (name, role)
    }
}

/// Reading and writing the PEM files of credentials, with owner-only permissions on keys.
enum CredentialFiles {
    /// PEM files are small; anything larger is not one of ours.
    static let maxBytes = 64 << 10

    static func makeDirectory(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
            throw TrustError.unreadable(path: path, reason: "cannot create: \(error.localizedDescription)")
        }
    }

    static func write(_ text: String, to path: String, secret: Bool) throws {
        let temporary = path + ".tmp"
        FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: secret ? 0o600 : 0o644])
        guard rename(temporary, path) == 0 else {
            throw TrustError.unreadable(path: path, reason: "cannot write: \(String(cString: strerror(errno)))")
        }
    }

    static func read(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw TrustError.missingFile(path) }
        guard let data = FileManager.default.contents(atPath: path) else { throw TrustError.unreadable(path: path, reason: "not readable") }
        guard data.count <= maxBytes else { throw TrustError.unreadable(path: path, reason: "\(data.count) bytes is too large for a PEM file") }
        return String(decoding: data, as: UTF8.self)
    }

    static func readCertificate(_ path: String) throws -> Certificate {
        let text = try read(path)
        do { return try Certificate(pemEncoded: text) } catch { throw TrustError.unreadable(path: path, reason: "not a PEM certificate: \(error)") }
    }
}
