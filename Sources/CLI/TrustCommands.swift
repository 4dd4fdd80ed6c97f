import ArgumentParser
import ClusterTrust
import ControlPlane
import Foundation

/// How a command secures both planes: `--tls-dir` with the member's credentials (mutual TLS),
/// or `--insecure` for plain TCP, which every component refuses on a non-loopback address.
struct SecurityOptions: ParsableArguments {
    @Option(name: .customLong("tls-dir"),
            help: "This member's credentials: ca.pem, member.pem, member.key.pem (from `pangalactic init` or `pangalactic issue`). Default: $PANGALACTIC_TLS_DIR.")
    var tlsDirectory: String?

    @Flag(help: "Plain TCP on both planes, without TLS or certificates: refused on any address but loopback.")
    var insecure = false

    @Option(name: .customLong("token"),
            help: "Join token from the hub (pgj1.…; default: $PANGALACTIC_JOIN_TOKEN): with no credentials in --tls-dir yet, enroll with the hub and keep them there.")
    var joinToken: String?

    @Option(name: .customLong("enroll"), help: "The hub's enrollment address, HOST:PORT (default: the hub's host and port + 1).")
    var enrollAddress: String?

    /// Where a member keeps enrolled credentials when no --tls-dir is given.
    static func defaultDirectory(name: String) -> String {
        let home = ProcessEnvironment.value("HOME") ?? "."
        let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
        return home + "/.config/pangalactic/members/" + safe
    }

    /// The transport security for a member in one of `roles`, or a clear error when neither
    /// credentials nor `--insecure` were given, or the credentials are for another role. With a
    /// join token and no credentials yet, the member first enrolls with the hub at `hub` as
    /// `enroll` named `name`.
    func security(roles: Set<ClusterRole>, enroll: (role: ClusterRole, name: String, hub: String)? = nil) throws -> TransportSecurity {
        if insecure {
            guard tlsDirectory == nil, joinToken == nil else { throw ValidationError("--insecure takes no --tls-dir or --token") }
            return .insecure
        }
        let tokenText = joinToken ?? ProcessEnvironment.value("PANGALACTIC_JOIN_TOKEN")
        var directory = tlsDirectory ?? ProcessEnvironment.value("PANGALACTIC_TLS_DIR")
        if let tokenText, let enroll {
            let folder = directory ?? Self.defaultDirectory(name: enroll.name)
            directory = folder
            if !MemberCredentials.exist(in: folder) {
                guard let token = JoinToken(tokenText) else { throw ValidationError("--token is not a join token (pgj1.…)") }
                guard let (host, port) = enrollAddress.flatMap(ControlAddress.parse)
                    ?? ControlAddress.parse(enroll.hub).map({ ($0.host, $0.port + 1) }) else {
                    throw ValidationError("--enroll takes HOST:PORT")
                }
                let credentials = try runBlocking {
                    try await Enrollment.join(host: host, port: port, token: token, role: enroll.role, name: enroll.name)
                }
                try credentials.save(to: folder)
                Console.error("enrolled as \(enroll.role.rawValue) \(enroll.name); credentials in \(folder), valid until \(credentials.notValidAfter)")
            }
        }
        guard let directory else {
            throw ValidationError("give --token TOKEN (from the hub), --tls-dir DIR (from `pangalactic init` or `issue`), or --insecure for plain TCP on loopback")
        }
        let credentials = try MemberCredentials.load(from: directory)
        guard roles.contains(credentials.role) else {
            throw ValidationError("\(directory) holds credentials of \(credentials.role.rawValue) \(credentials.name); this command needs a \(roles.map(\.rawValue).sorted().joined(separator: " or "))")
        }
        return .mutualTLS(credentials)
    }
}

/// `pangalactic init --dir DIR`: a new cluster authority, and the hub's own credentials.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make a cluster: a certificate authority (ca.pem, ca.key.pem) and the hub's credentials.",
        discussion: """
            The authority's key stays in DIR; keep it where the hub runs. Then:
              pangalactic hub --listen 0.0.0.0:7000 --tls-dir DIR/hub
              pangalactic issue --dir DIR --role node --name n1 --out n1   (copy n1/ to the node)
              pangalactic node --join HUB:7000 --listen 0.0.0.0:7101 --tls-dir n1
            """)

    @Option(help: "Folder for the authority (created; must not hold one already unless --force).")
    var dir: String

    @Option(help: "The cluster's name, written into its certificates.")
    var name: String = "pangalactic"

    @Option(help: "Days the authority's certificate is valid.")
    var days: Int = 3650

    @Flag(help: "Replace an authority already in --dir (every member's credentials become useless).")
    var force = false

    func run() throws {
        guard (1 ... 36500).contains(days) else { throw ValidationError("--days takes 1...36500") }
        if !force, FileManager.default.fileExists(atPath: dir + "/" + ClusterAuthority.keyFile) {
            throw ValidationError("\(dir) already holds a cluster authority; --force replaces it")
        }
        let authority = try ClusterAuthority.create(clusterName: name, validityDays: days)
        try authority.save(to: dir)
        let hub = try authority.makeMember(name: "hub", role: .hub)
        try hub.save(to: dir + "/hub")
        let fingerprint = authority.fingerprint.map { String(format: "%02x", $0) }.joined()
        print("cluster \(name): authority in \(dir) (sha256 \(fingerprint))")
        print("hub credentials in \(dir)/hub: pangalactic hub --tls-dir \(dir)/hub")
        print("members: pangalactic issue --dir \(dir) --role node|gateway --name NAME --out FOLDER")
    }
}

/// `pangalactic issue`: credentials for one member, signed by the cluster's authority.
struct IssueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue", abstract: "Issue a member's credentials (key and certificate) from the cluster authority in --dir.")

    @Option(help: "The cluster authority's folder (from `pangalactic init`).")
    var dir: String

    @Option(help: "The member's role: node, gateway or hub.")
    var role: String

    @Option(help: "The member's name (in its certificate and in logs).")
    var name: String

    @Option(help: "Folder to write ca.pem, member.pem and member.key.pem into.")
    var out: String

    @Option(help: "Days the certificate is valid.")
    var days: Int = 365

    func run() throws {
        guard let role = ClusterRole(rawValue: role.lowercased()) else { throw ValidationError("--role takes node, gateway or hub") }
        guard (1 ... 3650).contains(days) else { throw ValidationError("--days takes 1...3650") }
        let authority = try ClusterAuthority.load(from: dir)
        let member = try authority.makeMember(name: name, role: role, validityDays: days)
        try member.save(to: out)
        print("\(role.rawValue) \(name): credentials in \(out), valid until \(member.notValidAfter)")
    }
}

/// `pangalactic token --dir DIR`: a new join token for the cluster whose authority is in DIR.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create a join token that lets nodes and gateways enroll with the hub until it expires.")

    @Option(help: "The cluster authority's folder (from `pangalactic init`).")
    var dir: String

    @Option(help: "How long the token is good for: seconds, or with a suffix m, h or d.")
    var ttl: String = "24h"

    @Option(help: "Roles it admits, comma separated: node, gateway.")
    var roles: String = "node,gateway"

    func run() throws {
        guard let lifetime = parseDuration(ttl), lifetime > 0, lifetime <= 365 * 86400 else { throw ValidationError("--ttl takes e.g. 30m, 24h or 7d (at most 365d)") }
        let admitted = try roles.split(separator: ",").map { part -> ClusterRole in
            guard let role = ClusterRole(rawValue: part.trimmingCharacters(in: .whitespaces)), role != .hub else {
                throw ValidationError("--roles takes node and gateway")
            }
            return role
        }
        let authority = try ClusterAuthority.load(from: dir)
        let (token, expires) = try JoinTokenFile.create(in: dir, authority: authority, lifetime: lifetime, roles: admitted)
        print(token)
        Console.error("join token for \(admitted.map(\.rawValue).joined(separator: ", ")), valid until \(expires)")
    }
}

/// `90`, `30m`, `24h`, `7d` as seconds.
func parseDuration(_ text: String) -> TimeInterval? {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [(String, Double)] = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
    for (suffix, scale) in units where t.hasSuffix(suffix) {
        return Double(t.dropLast()).map { $0 * scale }
    }
    return Double(t)
}
