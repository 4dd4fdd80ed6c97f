import Crypto
import Foundation
import X509

/// A join token: `pgj1.ID.SECRET.PIN`. The id names the token to the hub, the secret keys the
/// proof a joiner sends (the secret itself never crosses the wire), and the pin is the SHA-256
/// of the cluster authority's certificate, so the joiner can tell the real cluster's
/// certificates from anyone else's before it trusts them.
public struct JoinToken: Sendable, Equatable, CustomStringConvertible {
    public static let prefix = "pgj1"
    public let id: String
    public let secret: [UInt8]
    public let authorityFingerprint: [UInt8]

    public init(id: String, secret: [UInt8], authorityFingerprint: [UInt8]) {
        self.id = id
        self.secret = secret
        self.authorityFingerprint = authorityFingerprint
    }

    /// A new random token for `authority`.
    public static func generate(for authority: ClusterAuthority) -> JoinToken {
        var generator = SystemRandomNumberGenerator()
        let id = (0 ..< 4).map { _ in String(format: "%02x", UInt8.random(in: 0 ... 255, using: &generator)) }.joined()
        let secret = (0 ..< 16).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
        return JoinToken(id: id, secret: secret, authorityFingerprint: authority.fingerprint)
    }

    /// Parses the text form; nil for anything else (without saying which part was wrong, as
    /// the text is a secret).
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == Self.prefix, parts[1].count == 8, parts[1].allSatisfy(\.isHexDigit),
              let secret = Base64URL.decode(String(parts[2])), secret.count == 16,
              let pin = Base64URL.decode(String(parts[3])), pin.count == 32 else { return nil }
        self.init(id: String(parts[1]).lowercased(), secret: secret, authorityFingerprint: pin)
    }

    public var description: String {
        "\(Self.prefix).\(id).\(Base64URL.encode(secret)).\(Base64URL.encode(authorityFingerprint))"
    }

    /// The proof of possession for one enrollment: it binds the hub's one-time nonce, the role
    /// asked for and the exact request, so it can be used neither twice nor for another key.
    public static func proof(secret: [UInt8], nonce: [UInt8], role: String, request: [UInt8]) -> [UInt8] {
        var message = Array("pangalactic-enroll-v1".utf8)
        message += nonce
        message += Array(role.utf8)
        message += Array(SHA256.hash(data: request))
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
    }
}

/// URL-safe base64 without padding.
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> [UInt8]? {
        guard text.count <= 256 else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}

/// The tokens a hub accepts, kept in the authority's folder (`join-tokens.json`, owner-only):
/// id, secret, expiry and the roles each may enroll.
public struct JoinTokenRecord: Codable, Sendable, Equatable {
    public var id: String
    public var secret: String
    public var expires: Date
    public var roles: [ClusterRole]
}

public enum JoinTokenFile {
    public static let name = "join-tokens.json"

    /// Adds a new token to `directory`'s file (dropping expired ones) and returns it.
    public static func create(in directory: String, authority: ClusterAuthority, lifetime: TimeInterval,
                              roles: [ClusterRole] = [.node, .gateway]) throws -> (JoinToken, Date) {
        let token = JoinToken.generate(for: authority)
        let expires = Date().addingTimeInterval(lifetime)
        var records = try load(from: directory).filter { $0.expires > Date() }
        records.append(JoinTokenRecord(id: token.id, secret: Base64URL.encode(token.secret), expires: expires, roles: roles))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try CredentialFiles.write(String(decoding: try encoder.encode(records), as: UTF8.self), to: directory + "/" + name, secret: true)
        return (token, expires)
    }

    /// The records in `directory` (none when there is no file).
    public static func load(from directory: String) throws -> [JoinTokenRecord] {
        let path = directory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let text = try CredentialFiles.read(path)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do { return try decoder.decode([JoinTokenRecord].self, from: Data(text.utf8)) } catch {
            throw TrustError.unreadable(path: path, reason: "not a join token list: \(error)")
        }
    }
}
