#!/usr/bin/env bash
# The README's "run" command: the whole system on one machine, on its embedded defaults.
#
#   scripts/demo.sh              set up, build, start a private RabbitMQ, a controller and two
#                                agents (host-a, host-b: simulated LVM sharing one simulated VG),
#                                walk through a short aosctl session, then keep running until
#                                Ctrl-C (or SIGTERM), which stops everything cleanly
#   scripts/demo.sh --once       the same, but stop everything after the session
#   scripts/demo.sh --no-setup   skip scripts/setup.sh (dependencies already installed)
#   scripts/demo.sh --no-build   use the binaries already built
#
# Environment: AOS_DEMO_SCRATCH=DIR builds in DIR (swift --scratch-path; default .build),
# AOS_DEMO_DIR=DIR keeps the run's files (config, logs, broker, simulated VG) in DIR instead of
# a fresh temporary directory, which is removed at the end unless AOS_DEMO_KEEP=1.
# Exit status: 0 after a clean run or stop, 1 when a stage failed, 2 on bad usage.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

once=0 setup=1 build=1
for arg in "$@"; do
    case "$arg" in
    --once) once=1 ;;
    --no-setup) setup=0 ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

SCRATCH="${AOS_DEMO_SCRATCH:-$ROOT/.build}"
if [[ -n "${AOS_DEMO_DIR:-}" ]]; then
    DIR="$AOS_DEMO_DIR"; mkdir -p "$DIR"; KEEP=1
else
    DIR="$(mktemp -d /tmp/aos-demo.XXXXXX)"; KEEP="${AOS_DEMO_KEEP:-0}"
fi
VG=vg0
PIDS=()            # controller and agents, stopped by pid
BROKER_STARTED=0
CLEANED=0

bold() { if [[ -t 1 ]]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
say() { printf '%s\n' "$*"; }
fail() { echo "demo: error: $*" >&2; exit 1; }

# ---- stopping ------------------------------------------------------------------------------

stop_pid() {
    local pid="$1" name="$2" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do  # 10 s grace
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    echo "demo: $name (pid $pid) did not stop on SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    ((CLEANED)) && return 0
    CLEANED=1
    trap - INT TERM
    if ((${#PIDS[@]})) || ((BROKER_STARTED)); then say ""; bold "Stopping the demo…"; fi
    local i entry
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do  # agents first, then the controller
        entry="${PIDS[$i]}"
        stop_pid "${entry%%:*}" "${entry#*:}"
    done
    if ((BROKER_STARTED)); then
        "$ROOT/scripts/rabbitmq-private.sh" stop "$DIR/broker" >>"$DIR/broker.log" 2>&1 || true
    fi
    if ((KEEP)); then say "Files of this run (logs, config): $DIR"; else rm -rf "$DIR"; fi
    ((${#PIDS[@]})) && say "Stopped: controller, agents and the private RabbitMQ."
    return 0
}
trap cleanup EXIT
RUNNING=0
trap 'if ((RUNNING)); then exit 0; else exit 130; fi' INT
trap 'exit 143' TERM

# ---- progress ------------------------------------------------------------------------------

# step "what" command…: runs command with output to $DIR/<log>, shows elapsed seconds while it
# runs longer than a second, and on failure prints the log's tail.
step() {
    local what="$1" log="$DIR/$2.log"; shift 2
    local start=$SECONDS shown=0
    printf '==> %s' "$what"
    "$@" >"$log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.2
        if ((SECONDS - start >= 1)); then
            if [[ -t 1 ]]; then printf '\r==> %s … %ds' "$what" $((SECONDS - start)); shown=1
            elif ((!shown)); then printf ' …'; shown=1; fi
        fi
    done
    if wait "$pid"; then
        if [[ -t 1 ]]; then printf '\r==> %s — done in %ds\033[K\n' "$what" $((SECONDS - start))
        else printf ' done (%ds)\n' $((SECONDS - start)); fi
    else
        printf '\n'
        echo "demo: '$what' failed; last lines of $log:" >&2
        tail -n 25 "$log" >&2 || true
        KEEP=1
        exit 1
    fi
}

# wait_for_line FILE PATTERN SECONDS NAME PID
wait_for_line() {
    local file="$1" pattern="$2" timeout="$3" name="$4" pid="$5" deadline=$((SECONDS + $3))
    until grep -q "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "${file%.out}.log" >&2; KEEP=1; fail "$name exited during startup (log: ${file%.out}.log)"; }
        ((SECONDS < deadline)) || { KEEP=1; fail "$name did not get ready within ${timeout}s (log: ${file%.out}.log)"; }
        sleep 0.1
    done
}

# ---- 1. dependencies and build -------------------------------------------------------------

bold "aos demo: a controller and two agents on a simulated shared VG"
say "Files of this run: $DIR"
if ((setup)); then step "Checking/installing dependencies (scripts/setup.sh --apt)" setup "$ROOT/scripts/setup.sh" --apt; fi
command -v swift >/dev/null || fail "swift is not on PATH: install Swift 6 (https://swift.org/install)"
if ((build)); then
    step "Building aos-controller, aos-agent and aosctl (swift build; the first build takes minutes)" build \
        swift build --scratch-path "$SCRATCH"
fi
BIN="$(swift build --scratch-path "$SCRATCH" --show-bin-path 2>/dev/null | tail -n 1)"
for b in aos-controller aos-agent aosctl; do [[ -x "$BIN/$b" ]] || fail "$BIN/$b is missing: run without --no-build"; done

# ---- 2. broker, configuration, processes ---------------------------------------------------

# Own sessions (setsid) for the broker and the services: Ctrl-C reaches only this script,
# which then stops them in order.
step "Starting a private RabbitMQ (scripts/rabbitmq-private.sh)" broker \
    setsid "$ROOT/scripts/rabbitmq-private.sh" start "$DIR/broker"
BROKER_STARTED=1
URL="$(grep '^AOS_TEST_AMQP_URL=' "$DIR/broker/broker.env" | cut -d= -f2- | tr -d "'\"")"
[[ -n "$URL" ]] || fail "no broker URL in $DIR/broker/broker.env"

# The trust model as a real cloud runs it (docs/security.md): a vhost, one broker user per role
# (aosctl broker-setup), each process logging in as its own role; the Cinder driver's role is a
# signing key. The broker's guest user gets nothing.
BASE="${URL#*@}"
BASE="${BASE%%/*}"
apply_broker_setup() {  # aosctl passwords-dir: runs each rabbitmqctl argument vector, no shell
    "$1" broker-setup --hosts host-a,host-b --vhost aos --password-dir "$2" --json |
        python3 -c '
import json, subprocess, sys
for argv in json.load(sys.stdin):
    subprocess.run(["bash", sys.argv[1], "ctl", sys.argv[2], *argv], check=True, capture_output=True)
' "$ROOT/scripts/rabbitmq-private.sh" "$DIR/broker"
}
step "Creating the vhost 'aos' and one broker user per role (aosctl broker-setup)" users \
    apply_broker_setup "$BIN/aosctl" "$DIR/passwords"
role_url() { echo "amqp://$1:$(cat "$DIR/passwords/$1")@$BASE/aos"; }
DRIVER_KEY="$("$BIN/aosctl" auth keygen --private-key-file "$DIR/driver.key")"

cat >"$DIR/aos.conf" <<EOF
# Demo configuration, shared by aos-controller, both agents and aosctl. transport_url is the
# operator's (aos-admin); the controller and the agents get their own in the environment.
[DEFAULT]
transport_url = $(role_url aos-admin)

[controller]
agent_response_timeout = 60
agent_stale_after = 6
agent_down_after = 10

[agent]
volume_groups = $VG
lvm_backend = simulated
simulated_state_file = $DIR/simulated-vg.json
simulated_vg_size_gb = 100
announce_interval = 2
pv_wait_timeout = 0

[aosctl]
timeout = 30

[auth]
# enforce = true is the default: senders without a role are refused.
driver_public_keys = $DRIVER_KEY
EOF
chmod 600 "$DIR/aos.conf"  # it holds the broker password (the programs warn otherwise)

start_process() {  # name logname command…
    local name="$1" log="$DIR/$2"; shift 2
    setsid "$@" >"$log.out" 2>"$log.log" </dev/null &
    PIDS+=("$!:$name")
    LAST_PID=$!
}

printf '==> Starting the controller and two agents'
start=$SECONDS
start_process aos-controller controller env AOS_DEFAULT_TRANSPORT_URL="$(role_url aos-controller)" \
    "$BIN/aos-controller" --config "$DIR/aos.conf" --set DEFAULT.host=demo-controller
wait_for_line "$DIR/controller.out" '^READY' 30 aos-controller "$LAST_PID"
id=1
for h in host-a host-b; do
    start_process "aos-agent $h" "agent-$h" env AOS_DEFAULT_TRANSPORT_URL="$(role_url "aos-agent-$h")" \
        "$BIN/aos-agent" --config "$DIR/aos.conf" --set "DEFAULT.host=$h" \
        --set "agent.state_dir=$DIR/state-$h" --host-id "$id"
    wait_for_line "$DIR/agent-$h.out" "^READY host=$h" 60 "aos-agent $h" "$LAST_PID"
    id=$((id + 1))
done
AOSCTL=("$BIN/aosctl" --config "$DIR/aos.conf")
deadline=$((SECONDS + 30))
until [[ "$("${AOSCTL[@]}" agents 2>/dev/null | grep -cE '^host-[ab] +alive')" == 2 ]]; do
    ((SECONDS < deadline)) || { KEEP=1; fail "the controller did not see both agents within 30 s (logs in $DIR)"; }
    sleep 0.2
done
say " — done in $((SECONDS - start))s"

# ---- 3. the guided session -----------------------------------------------------------------

# run "explanation" [expect-exit] -- aosctl arguments…
run() {
    local note="$1" expect="$2"; shift 3
    if [[ -n "$note" ]]; then say ""; bold "# $note"; fi
    say "\$ aosctl $*"
    local rc t0=${EPOCHREALTIME/./}
    set +e
    "${AOSCTL[@]}" "$@" 2>&1 | sed 's/^/  /'
    rc=${PIPESTATUS[0]}
    set -e
    local ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
    if ((ms >= 1000)); then say "  (took $((ms / 1000)).$((ms % 1000 / 100))s)"; fi
    if [[ "$rc" != "$expect" ]]; then
        KEEP=1
        fail "aosctl $* exited with $rc, expected $expect (logs in $DIR)"
    fi
    [[ "$rc" == 0 ]] || say "  → exit status $rc, as expected"
}

V=volume-demo
run "Both agents announce themselves to the controller." 0 -- agents
run "Create a 1 GiB volume; it is left inactive on every host." 0 -- volume create $V --size 1G
run "Attach it to a VM on host-a: activate exclusively there." 0 -- volume activate $V --host host-a --exclusive
run "host-b cannot take it while host-a holds it: refused, naming host-a (exit 4 = conflict)." 4 -- \
    volume activate $V --host host-b --exclusive
run "Release it on host-a…" 0 -- volume deactivate $V --host host-a
run "…and activate it shared on both hosts (multi-attach)." 0 -- volume activate $V --host host-a --shared
run "" 0 -- volume activate $V --host host-b --shared
run "The controller knows where the volume is active — lvm itself cannot tell (lvs is local)." 0 -- volume show $V
run "Grow it while shared: lvextend --lockopt shupdate on one host, refresh on the other." 0 -- volume extend $V --size 2G
run "Detach from both hosts." 0 -- volume deactivate $V --host host-a
run "" 0 -- volume deactivate $V --host host-b
run "Delete it: gone under its name at once; a wipe job on an agent clears and removes the LV." 0 -- volume delete $V
run "Jobs of every agent (aosctl jobs wait ID follows one)." 0 -- jobs list
run "Capacity and lockspace health, as the Cinder scheduler sees them." 0 -- pool stats

say ""
if ((once)); then
    bold "Demo finished (--once): stopping everything."
    exit 0
fi

# shellcheck disable=SC2034  # read by the INT trap set above
RUNNING=1
bold "The system is running. Try it from another terminal:"
cat <<EOF

  alias aosctl='$BIN/aosctl --config $DIR/aos.conf'
  aosctl agents
  aosctl volume create volume-mine --size 5G
  aosctl --json volume show volume-mine
  aosctl --direct host-b locks
  aosctl --help

  The Cinder driver (oslo.messaging): agent_transport_url = $(role_url aos-driver | sed 's#^amqp://#rabbit://#')
    agent_signing_key_file = $DIR/driver.key   (its public key is in [auth] driver_public_keys)
  Broker users and passwords: $DIR/passwords (aosctl broker-setup; docs/security.md)
  Logs: $DIR/controller.log, $DIR/agent-host-a.log, $DIR/agent-host-b.log

To stop everything: press Ctrl-C here (or: kill $$).
EOF
# Wait for Ctrl-C / SIGTERM, or for a process to die unexpectedly.
while true; do
    for entry in "${PIDS[@]}"; do
        if ! kill -0 "${entry%%:*}" 2>/dev/null; then
            KEEP=1
            fail "${entry#*:} stopped unexpectedly (logs in $DIR)"
        fi
    done
    sleep 1
done
