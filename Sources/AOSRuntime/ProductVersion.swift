/// The project's one version: what `aos-agent`, `aos-controller` and `aosctl` print for
/// `--version`, what agents announce (`AgentVersion.current`), the version of every Debian
/// package and of the Cinder driver's wheel (scripts/build-packages.sh reads it from this file,
/// Tests/packaging and Tests/cinder check the others against it). Bump it here to release.
public enum ProductVersion {
    public static let current = "0.1.0"
}
