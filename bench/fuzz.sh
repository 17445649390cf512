#!/usr/bin/env bash
# Builds the RPCWire decode fuzz target with libFuzzer (swiftc -sanitize=fuzzer,address)
# and runs it for SECONDS into a corpus directory seeded from Tests/RPCWireTests/FuzzCorpus.
#   bench/fuzz.sh SECONDS [CORPUS_DIR] [extra libFuzzer flags...]
# Findings (crash-*, timeout-*, oom-*) land in the current directory's .build/fuzz/artifacts.
set -euo pipefail
seconds=${1:?usage: bench/fuzz.sh SECONDS [CORPUS_DIR] [libFuzzer flags]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.build/fuzz"
corpus=${1:-$out/corpus}
[ $# -gt 0 ] && shift
mkdir -p "$out/artifacts" "$corpus"
cp -n "$root"/Tests/RPCWireTests/FuzzCorpus/* "$corpus"/ 2>/dev/null || true
bin="$out/fuzz-rpcwire"
srcs=("$root"/Sources/RPCWire/*.swift "$root"/bench/fuzz/FuzzRPCWire.swift)
if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" -newer "$bin" 2>/dev/null)" ]; then
    echo "building $bin" >&2
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6 -module-name RPCWire \
        "${srcs[@]}" -o "$bin"
fi
exec "$bin" "$corpus" -max_total_time="$seconds" -dict="$root/bench/fuzz/rpcwire.dict" \
    -max_len=65536 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$out/artifacts/" -print_final_stats=1 "$@"
