import AOSAPI
import AOSAuth
import ArgumentParser
import RPCWire

#if canImport(Glibc)
import Glibc
#endif

/// `aosctl broker-setup`: the vhost, one broker user per role and their permissions, as
/// rabbitmqctl commands (docs/security.md). Prints; the operator runs them on a broker node.
struct BrokerSetupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker-setup",
        abstract: "Print the rabbitmqctl commands that create the vhost, per-role users and their permissions.",
        discussion: """
            Users: aos-admin (aosctl), aos-controller, aos-driver (the Cinder driver's broker login; its
            requests are trusted through its signing key), and aos-agent-HOST for each --hosts entry.
            Each user's password is read from DIR/USER, or generated into it (mode 0600) when missing.
            --json prints one JSON array of argument vectors (for scripts and tests).
            """)

    @Option(name: .customLong("hosts"), help: "Comma-separated host names of the agents (the [DEFAULT] host of each node).")
    var hosts: String
    @Option(help: "The vhost (the path of the transport URL).") var vhost = "aos"
    @Option(help: "oslo's control_exchange.") var exchange = "openstack"
    @Option(name: .customLong("agent-topic")) var agentTopic = "aos-agent"
    @Option(name: .customLong("controller-topic")) var controllerTopic = "aos-controller"
    @Option(name: .customLong("password-dir"), help: "Directory with one password file per user (created as needed).")
    var passwordDir: String
    @Option(name: .customLong("rabbitmqctl"), help: "The command printed in front of each line.") var rabbitmqctl = "rabbitmqctl"
    @Flag(help: "Print a JSON array of rabbitmqctl argument vectors.") var json = false

    func run() throws {
        let list = hosts.split(separator: ",").map { String($0).trimmingCharacters() }.filter { !$0.isEmpty }
        guard !list.isEmpty else { throw ValidationError("--hosts names no host") }
        for h in list where !h.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f && $0 != "/" }) {
            throw ValidationError("--hosts: '\(h)' is not a host name")
        }
        let setup = BrokerSetup(
            vhost: vhost, exchange: exchange, agentTopic: agentTopic, controllerTopic: controllerTopic,
            hosts: list)
        var passwords: [String: String] = [:]
        if mkdir(passwordDir, 0o700) != 0 && errno != EEXIST {
            stderrLine("aosctl: invalid_argument: cannot create \(passwordDir): \(String(cString: strerror(errno)))")
            throw ExitCode(CLIExitStatus.usage.rawValue)
        }
        do {
            for acct in setup.accounts {
                let path = passwordDir + "/" + acct.user
                if let existing = SecretFiles.read(path), !existing.isEmpty {
                    passwords[acct.user] = existing
                } else {
                    let p = SecretFiles.randomPassword()
                    try SecretFiles.create(path, p)
                    passwords[acct.user] = p
                }
            }
        } catch {
            stderrLine("aosctl: \(error.code): \(error.message)")
            throw ExitCode(error.status.rawValue)
        }
        let commands = setup.commands { passwords[$0] ?? "" }
        if json {
            stdoutLine(JSONWriter.serialize(.array(commands.map { .array($0.map(JSONValue.string)) })))
            return
        }
        for argv in commands {
            stdoutLine(([rabbitmqctl] + argv).map(shellQuoted).joined(separator: " "))
        }
        stderrLine("aosctl: passwords are in \(passwordDir)/USER; each program reads its own in transport_url (docs/security.md)")
    }
}

func shellQuoted(_ s: String) -> String {
    if !s.isEmpty
        && s.unicodeScalars.allSatisfy({
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,".unicodeScalars.contains($0)
        })
    {
        return s
    }
    return "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

/// `aosctl auth keygen`: an Ed25519 key pair for request signatures.
struct AuthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth", abstract: "Request-signing keys (for callers that cannot set the broker's user_id).",
        subcommands: [AuthKeygen.self])
}

struct AuthKeygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a new private key (mode 0600) and print its public key.",
        discussion: """
            Give the private key file to the Cinder driver (agent_signing_key_file in its backend
            section of cinder.conf) and put the public key in [auth] driver_public_keys of the
            controller's aos.conf.
            """)

    @Option(name: .customLong("private-key-file"), help: "Where to write the private key (must not exist).")
    var privateKeyFile: String
    @Flag(help: "Print {\"public_key\": …} as JSON.") var json = false

    func run() throws {
        let key = SigningKey.Private()
        do { try SecretFiles.create(privateKeyFile, key.base64) } catch {
            stderrLine("aosctl: \(error.code): \(error.message)")
            throw ExitCode(error.status.rawValue)
        }
        if json {
            stdoutLine(JSONWriter.serialize(["public_key": .string(key.publicKey.base64), "private_key_file": .string(privateKeyFile)]))
        } else {
            stdoutLine(key.publicKey.base64)
        }
    }
}
