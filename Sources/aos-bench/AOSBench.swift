// Benchmark commands: numbers, not assertions (docs/performance.md).
//   aos-bench rpc --url amqp://guest:guest@127.0.0.1:5672/
// starts an `aos-rpc-peer serve` process next to this binary, measures its idle
// RSS, then sequential round trips (median, p99) and throughput with N in flight, alternated
// with the C floor (bench/rpc_floor.c) on the same broker.
//   aos-bench scale --url URL --agents 2000 --interval 10
// plays N agents announcing to an aos-controller next to this binary (ScaleBench.swift).
//   aos-bench path --url URL
// caller -> aos-controller -> aos-agent round trips against the C floor (PathBench.swift).
import ArgumentParser

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aos-bench", abstract: "Benchmarks",
        subcommands: [
            RPCBench.self, WireBench.self, PublishBench.self, AdmissionBench.self, ScaleBench.self, HandlerBench.self,
            PathBench.self,
        ])
}
