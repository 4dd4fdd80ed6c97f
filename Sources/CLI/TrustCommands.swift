import ArgumentParser
import ClusterTrust
import Foundation

/// How a command secures both planes: `--tls-dir` with the member's credentials (mutual TLS),
/// or `--insecure` for plain TCP, which every component refuses on a non-loopback address.
struct SecurityOptions: ParsableArguments {
    @Option(name: .customLong("tls-dir"),
            help: "This member's credentials: ca.pem, member.pem, member.key.pem (from `pangalactic init` or `pangalactic issue`). Default: $PANGALACTIC_TLS_DIR.")
    var tlsDirectory: String?

    @Flag(help: "Plain TCP on both planes, without TLS or certificates: refused on any address but loopback.")
    var insecure = false

    /// The transport security for a member in one of `roles`, or a clear error when neither
    /// credentials nor `--insecure` were given, or the credentials are for another role.
    func security(roles: Set<ClusterRole>) throws -> TransportSecurity {
        if insecure {
            guard tlsDirectory == nil else { throw ValidationError("give --tls-dir or --insecure, not both") }
            return .insecure
        }
        guard let directory = tlsDirectory ?? ProcessEnvironment.value("PANGALACTIC_TLS_DIR") else {
            throw ValidationError("give --tls-dir DIR (credentials from `pangalactic init` and `pangalactic issue`), or --insecure for plain TCP on loopback")
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
