#if canImport(Glibc)
import Glibc
#endif
import Logging

/// A logger that drops everything, so test output shows test results rather than node chatter.
/// Set `PANGALACTIC_TEST_LOGS=1` to see the logs.
public let quietLogger: Logger = {
    if let flag = getenvString("PANGALACTIC_TEST_LOGS"), flag == "1" {
        return Logger(label: "pangalactic.test", factory: { StreamLogHandler.standardError(label: $0) })
    }
    return Logger(label: "pangalactic.test", factory: { _ in SwiftLogNoOpLogHandler() })
}()

private func getenvString(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}
