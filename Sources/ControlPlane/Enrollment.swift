import ClusterTrust
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// Joins a cluster: asks the hub's enrollment port for a nonce, sends a certificate request
/// with the token's proof, and checks the answer against the token's pin. The TLS of this one
/// connection is not verified (the joiner has no authority to check it against yet); what makes
/// it safe is that the proof is bound to the nonce and the request, and that the returned
/// certificates must match the pinned authority.
public enum Enrollment {
    public static func join(host: String, port: Int, token: JoinToken, role: ClusterRole, name: String,
                            timeoutSeconds: Double = 10) async throws -> MemberCredentials {
        let enrollment = try EnrollmentRequest(token: token, role: role, name: name)
        let transport = try HTTP2ClientTransport.Posix(
            target: HubConnection.target(host: host, port: port),
            transportSecurity: .tls(.defaults { config in
                config.serverCertificateVerification = .noVerification
            }))
        return try await withGRPCClient(transport: transport) { client in
            let stub = Pangalactic_Control_V1_ClusterEnrollment.Client(wrapping: client)
            let options = HubConnection.deadline(seconds: timeoutSeconds)
            let challenge = try await stub.challenge(.init(), options: options)
            var request = Pangalactic_Control_V1_EnrollRequest()
            request.tokenID = token.id
            request.nonce = challenge.nonce
            request.role = role.rawValue
            request.csrDer = Data(enrollment.request)
            request.proof = Data(enrollment.proof(nonce: Array(challenge.nonce)))
            let reply = try await stub.enroll(request, options: options)
            return try enrollment.credentials(certificate: Array(reply.certificateDer), authority: Array(reply.authorityDer))
        }
    }
}
