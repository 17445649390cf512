#!/usr/bin/env bash
# Instructions per RPC round trip (client and server process), counted by callgrind: a
# figure that does not move with the load of a shared machine (docs/performance.md).
#
#   bench/rpc_callgrind.sh URL [BIN_DIR] [N1] [N2]
#
# Runs the server (`aos-rpc-peer serve`, default and --dispatch-on-connection-thread) and the
# client (`aos-bench rpc --external-server`, calling task unpinned and pinned) under
# `valgrind --tool=callgrind`, each with N1 and then N2 sequential ping calls (10 warm-up,
# no throughput run), and prints (instructions(N2) - instructions(N1)) / (N2 - N1) for each:
# start-up and connection set-up cancel out. BIN_DIR defaults to .build/release.
set -euo pipefail
url="${1:?usage: bench/rpc_callgrind.sh URL [BIN_DIR] [N1] [N2]}"
bin="${2:-.build/release}"
n1="${3:-200}"
n2="${4:-1200}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

total() {  # the "summary:" line of a callgrind output file
    awk '/^summary:/ { print $2 }' "$1"
}

# run_pair SERVER_FLAG CLIENT_PIN CALLS -> "server_instructions client_instructions"
run_pair() {
    local flag="$1" pin="$2" calls="$3" topic="aos-cg-$RANDOM$RANDOM"
    local sargs=(serve --url "$url" --topic "$topic" --log-level warning)
    [ -n "$flag" ] && sargs+=("$flag")
    valgrind --tool=callgrind --callgrind-out-file="$out/server.out" "$bin/aos-rpc-peer" "${sargs[@]}" \
        >"$out/server.stdout" 2>"$out/server.log" &
    local spid=$!
    for _ in $(seq 1 600); do grep -q READY "$out/server.stdout" 2>/dev/null && break; sleep 0.1; done
    local cargs=(rpc --url "$url" --external-server "$topic" --no-floor --calls "$calls" --warmup 10
        --throughput-calls 0 --rounds 1 --settle 0)
    [ "$pin" = pinned ] && cargs+=(--pinned) || cargs+=(--no-pinned)
    valgrind --tool=callgrind --callgrind-out-file="$out/client.out" "$bin/aos-bench" "${cargs[@]}" \
        >"$out/client.stdout" 2>"$out/client.log"
    kill -TERM "$spid"
    wait "$spid" || true
    echo "$(total "$out/server.out") $(total "$out/client.out")"
}

per_call() {  # LABEL SERVER_FLAG CLIENT_PIN
    local a b
    read -r -a a <<<"$(run_pair "$2" "$3" "$n1")"
    read -r -a b <<<"$(run_pair "$2" "$3" "$n2")"
    echo "$1 ${a[0]} ${a[1]} ${b[0]} ${b[1]}"
}

d=$((n2 - n1))
def=$(per_call default "" unpinned)
pin=$(per_call pinned --dispatch-on-connection-thread pinned)
read -r _ s1 c1 s2 c2 <<<"$def"
read -r _ ps1 pc1 ps2 pc2 <<<"$pin"
# The pinned run makes its calls twice (unpinned variant, then pinned): the server served 2 x d
# calls, and the client's unpinned share is subtracted.
echo "instructions per call (callgrind, ($n2 - $n1) calls):"
echo "  server, request tasks on the global executor:     $(((s2 - s1) / d))"
echo "  server, request tasks on the connection thread:   $(((ps2 - ps1) / (2 * d)))"
echo "  client, calling task on the global executor:      $(((c2 - c1) / d))"
echo "  client, calling task on the connection thread:    $(((pc2 - pc1) / d - (c2 - c1) / d))"
