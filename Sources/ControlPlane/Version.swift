/// The software version nodes report when they register (shown by `status`).
public enum PanGalacticVersion {
    public static let current = "0.5.0"
}
