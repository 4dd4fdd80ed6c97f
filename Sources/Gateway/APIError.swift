import Foundation

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with its HTTP
/// status. Validation failures are 400s (clients retry 5xx, so a bad request is never one);
/// 5xx is kept for real server faults.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status) \(type): \(message)" }

    /// 400: the request is malformed or a value is out of range.
    public static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    public static func unauthorized(_ message: String) -> APIError {
        APIError(status: 401, message: message, type: "authentication_error", code: "invalid_api_key")
    }

    public static func modelNotFound(_ model: String) -> APIError {
        APIError(status: 404, message: "The model `\(model)` does not exist", type: "invalid_request_error", param: "model",
                 code: "model_not_found")
    }

    public static func tooLarge(_ limit: Int) -> APIError {
        APIError(status: 413, message: "The request body is larger than \(limit) bytes", type: "invalid_request_error",
                 code: "request_too_large")
    }

    /// 429 with a `Retry-After`: the queue is full.
    public static func overloaded(_ message: String) -> APIError {
        APIError(status: 429, message: message, type: "rate_limit_error", code: "rate_limit_exceeded")
    }

    /// 503: no pipeline can serve right now (the cluster cannot hold the model, or is starting).
    public static func unavailable(_ message: String) -> APIError {
        APIError(status: 503, message: message, type: "server_error", code: "service_unavailable")
    }

    public static func server(_ message: String) -> APIError {
        APIError(status: 500, message: message, type: "server_error", code: "internal_error")
    }

    /// The JSON body.
    public var json: [String: Any] {
        ["error": ["message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull()] as [String: Any]]
    }
}

/// JSON text of a value built from dictionaries, arrays, strings, numbers, booleans and NSNull.
func jsonText(_ value: Any) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.withoutEscapingSlashes, .fragmentsAllowed]) else {
        return "{}"
    }
    return String(decoding: data, as: UTF8.self)
}
