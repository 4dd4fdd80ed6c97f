import ClusterTrust
import ControlPlane
import Foundation
import GRPCCore
import Logging

/// The enrollment RPCs over `EnrollmentAuthority`. A refusal tells the caller only that it was
/// refused; the log line says why and from where.
public struct EnrollmentService: Pangalactic_Control_V1_ClusterEnrollment.SimpleServiceProtocol {
    let authority: EnrollmentAuthority
    let logger: Logger

    public init(authority: EnrollmentAuthority, logger: Logger) {
        self.authority = authority
        self.logger = logger
    }

    public func challenge(request: Pangalactic_Control_V1_ChallengeRequest, context: ServerContext) async throws -> Pangalactic_Control_V1_ChallengeReply {
        var reply = Pangalactic_Control_V1_ChallengeReply()
        reply.nonce = Data(authority.challenge())
        return reply
    }

    public func enroll(request: Pangalactic_Control_V1_EnrollRequest, context: ServerContext) async throws -> Pangalactic_Control_V1_EnrollReply {
        do {
            let (certificate, root) = try authority.enroll(tokenID: request.tokenID, nonce: Array(request.nonce), role: request.role,
                                                           request: Array(request.csrDer), proof: Array(request.proof))
            let member = certificate.clusterMember
            logger.notice("enrolled", metadata: ["peer": "\(context.remotePeer)", "role": "\(member?.role.rawValue ?? "?")",
                                                  "name": "\(member?.name ?? "?")", "token": "\(request.tokenID.prefix(16))"])
            var reply = Pangalactic_Control_V1_EnrollReply()
            reply.certificateDer = Data(try certificate.derBytes)
            reply.authorityDer = Data(try root.derBytes)
            return reply
        } catch let error as EnrollmentError {
            logger.warning("enrollment refused", metadata: ["peer": "\(context.remotePeer)", "reason": "\(error)"])
            throw RPCError(code: .permissionDenied, message: "enrollment refused")
        }
    }
}
