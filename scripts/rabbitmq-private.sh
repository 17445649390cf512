#!/usr/bin/env bash
# Run a private RabbitMQ broker for tests, never touching the system service.
#
#   scripts/rabbitmq-private.sh start DIR        start a broker whose files all live under DIR
#   scripts/rabbitmq-private.sh start DIR --join DIR0  start one more node of DIR0's cluster (same
#                                               epmd and Erlang cookie; stop it before DIR0)
#   scripts/rabbitmq-private.sh stop  DIR        stop it (graceful, then by pid), and its epmd
#   scripts/rabbitmq-private.sh kill  DIR        SIGKILL the node (a crash), keeping its data
#   scripts/rabbitmq-private.sh restart DIR      start a killed node again: same name, ports, data
#   scripts/rabbitmq-private.sh ctl   DIR ARGS…  rabbitmqctl against it (stop_app, start_app,
#                                               list_queues, close_all_connections …)
#   scripts/rabbitmq-private.sh url   DIR        print its AMQP URL
#   scripts/rabbitmq-private.sh status DIR       exit 0 when its node answers
#
# The instance has its own node name (aos-test-<random>@localhost), its own AMQP port, Erlang
# distribution port and epmd port (free ports picked at start, all bound to 127.0.0.1), its own
# config, enabled-plugins file (none), Mnesia, log and pid files and Erlang cookie (HOME=DIR).
# It runs as the invoking user through /usr/lib/rabbitmq/bin (the /usr/sbin wrappers switch to the
# rabbitmq user and read /var/lib/rabbitmq's cookie).
#
# `start` writes DIR/broker.env (KEY=VALUE lines, shell-quoted) with:
#   AOS_TEST_AMQP_URL     amqp://guest:guest@127.0.0.1:PORT/
#   AOS_TEST_AMQP_PORT    the AMQP port
#   AOS_TEST_BROKER_NODE  the Erlang node name
#   AOS_TEST_BROKER_DIR   DIR
#   AOS_TEST_BROKER_CTL   absolute path of this script
#
# Environment knobs: AOS_BROKER_START_TIMEOUT (seconds, default 90), AOS_BROKER_AMQP_PORT (a fixed
# AMQP port instead of a free one), AOS_RABBITMQ_BIN (default /usr/lib/rabbitmq/bin).
set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
RMQ_BIN="${AOS_RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}"
START_TIMEOUT="${AOS_BROKER_START_TIMEOUT:-90}"

# Filled by load_state from DIR/broker.state.
NODE="" AMQP_PORT="" EPMD_PORT="" EPMD_PID="" WRAPPER_PID="" EPMD_SHARED=""
# `start DIR --join DIR0`: the node to cluster with (its directory).
JOIN_DIR=""

log() { echo "rabbitmq-private: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,16p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# N distinct free TCP ports on 127.0.0.1 (all held open while choosing, so they differ).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# A CA and a server certificate for CN/SAN "localhost", valid for a day.
make_tls_material() {
    local d="$1"
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=aos test CA" \
        -keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1 &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1 &&
    printf 'subjectAltName=DNS:localhost\n' >"$d/ext.cnf" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 1 -extfile "$d/ext.cnf" -out "$d/server.pem" >/dev/null 2>&1
}

# true when PID is alive and its command line contains WORD (guards against pid reuse).
pid_matches() {
    local pid="$1" word="$2" cmdline
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
    [[ "$cmdline" == *"$word"* ]]
}

abs_dir() {
    [[ -n "${1:-}" ]] || usage
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# Export the environment that both the server and rabbitmqctl need to find this instance.
load_state() {
    local dir="$1"
    [[ -f "$dir/broker.state" ]] || die "no broker state in $dir (was it started with '$SELF start $dir'?)"
    # shellcheck source=/dev/null
    . "$dir/broker.state"
    export HOME="$dir"
    export ERL_EPMD_PORT="$EPMD_PORT"
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_NODENAME="$NODE"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
}

ctl() {
    # `timeout` bounds a CLI call against a hung node; rabbitmqctl has its own --timeout too.
    timeout 120 "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@"
}

print_logs() {
    local dir="$1" f
    for f in "$dir/log/server.out" "$dir"/log/*.log; do
        [[ -s "$f" ]] || continue
        echo "----- tail of $f -----" >&2
        tail -n 40 "$f" >&2
    done
}

cmd_start() {
    local dir attempt attempts=2
    dir="$(abs_dir "${1:-}")"
    # A free port can be taken by someone else between choosing and binding: try again once
    # with fresh ports (unless the AMQP port is fixed).
    [[ -z "${AOS_BROKER_AMQP_PORT:-}" ]] || attempts=1
    for ((attempt = 1; attempt <= attempts; attempt++)); do
        if start_once "$dir"; then
            return 0
        fi
        ((attempt == attempts)) || log "retrying with fresh ports"
    done
    die "could not start a private broker in $dir (logs above)"
}

# Starts epmd and the node recorded in DIR/broker.state (name, ports) on DIR's Mnesia, and waits
# until it accepts AMQP connections. On failure prints why and the logs, cleans up and returns 1.
launch() {
    local dir="$1"
    load_state "$dir"
    # shellcheck disable=SC2153 # AMQP_PORT, DIST_PORT, EPMD_PORT come from broker.state
    local amqp_port="$AMQP_PORT" dist_port="$DIST_PORT" epmd_port="$EPMD_PORT" node="$NODE" deadline
    # Our own epmd on a private port, so that we can stop it and leave nothing behind (a
    # restart after `kill` finds it still running).
    if [[ -z "${EPMD_SHARED:-}" ]] && ! pid_matches "${EPMD_PID:-}" epmd; then
        setsid epmd -port "$epmd_port" -address 127.0.0.1 </dev/null >"$dir/log/epmd.out" 2>&1 &
        echo "EPMD_PID='$!'" >>"$dir/broker.state"
    fi
    deadline=$((SECONDS + 10))
    until epmd -port "$epmd_port" -names >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { print_logs "$dir"; cmd_stop "$dir"; log "epmd did not come up on port $epmd_port"; return 1; }
        sleep 0.1
    done

    (
        export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        export RABBITMQ_NODE_PORT="$amqp_port"
        export RABBITMQ_DIST_PORT="$dist_port"
        export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
        export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
        export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
        export RABBITMQ_MNESIA_BASE="$dir/mnesia"
        export RABBITMQ_LOG_BASE="$dir/log"
        export RABBITMQ_PID_FILE="$dir/rabbit.pid"
        export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        cd "$dir"
        exec setsid "$RMQ_BIN/rabbitmq-server" </dev/null >"$dir/log/server.out" 2>&1
    ) &
    echo "WRAPPER_PID='$!'" >>"$dir/broker.state"
    load_state "$dir"

    # `wait` returns once the pid file exists, the node is up and the rabbit app has started;
    # it fails early when the OS process dies.
    if ! ctl wait --timeout "$START_TIMEOUT" "$dir/rabbit.pid" >"$dir/log/wait.out" 2>&1; then
        cat "$dir/log/wait.out" >&2 || true
        print_logs "$dir"
        cmd_stop "$dir" || true
        log "broker $node failed to start (waited at most ${START_TIMEOUT}s; logs above, dir $dir)"
        return 1
    fi
    # Belt and braces: the AMQP listener must accept a connection.
    if ! python3 - "$amqp_port" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 10
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.1)
EOF
    then
        print_logs "$dir"
        cmd_stop "$dir" || true
        log "broker $node is up but its AMQP port $amqp_port does not accept connections"
        return 1
    fi
}

# One attempt; on failure prints why and the logs, cleans up and returns 1.
start_once() {
    local dir="$1" node rand amqp_port dist_port epmd_port t0 deadline
    if [[ -f "$dir/broker.state" ]]; then
        load_state "$dir"
        if pid_matches "$(cat "$dir/rabbit.pid" 2>/dev/null || true)" beam; then
            die "a broker is already running from $dir (node $NODE)"
        fi
    fi
    command -v "$RMQ_BIN/rabbitmq-server" >/dev/null || die "$RMQ_BIN/rabbitmq-server not found (run scripts/setup.sh)"
    command -v epmd >/dev/null || die "epmd not found (erlang-base missing? run scripts/setup.sh)"

    t0=$(date +%s.%N)
    rm -rf "$dir/mnesia" "$dir/log" "$dir/rabbit.pid" "$dir/broker.env"
    mkdir -p "$dir/log"
    rand="$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
    node="aos-test-${rand}@localhost"
    read -r amqp_port dist_port epmd_port tls_port < <(free_ports 4)
    amqp_port="${AOS_BROKER_AMQP_PORT:-$amqp_port}"
    local join_node="" shared=""
    if [[ -n "$JOIN_DIR" ]]; then
        # One epmd per cluster (nodes find each other through it) and one cookie.
        [[ -f "$JOIN_DIR/broker.state" && -f "$JOIN_DIR/.erlang.cookie" ]] || die "$JOIN_DIR holds no running broker"
        # shellcheck source=/dev/null
        epmd_port="$(. "$JOIN_DIR/broker.state" && echo "$EPMD_PORT")"
        # shellcheck source=/dev/null
        join_node="$(. "$JOIN_DIR/broker.state" && echo "$NODE")"
        shared=1
        install -m 400 "$JOIN_DIR/.erlang.cookie" "$dir/.erlang.cookie"
    fi

    # A TLS listener too, with a throw-away CA and a certificate for the name
    # "localhost" (librabbitmq 0.11 matches DNS names only, not IP addresses).
    make_tls_material "$dir/tls" || { log "could not create TLS certificates (openssl missing?)"; return 1; }
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:${amqp_port}
listeners.ssl.default = 127.0.0.1:${tls_port}
ssl_options.cacertfile = $dir/tls/ca.pem
ssl_options.certfile = $dir/tls/server.pem
ssl_options.keyfile = $dir/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.file.level = info
log.console = false
EOF
    echo '[].' >"$dir/enabled_plugins"
    echo '[].' >"$dir/advanced.config"
    : >"$dir/rabbitmq-env.conf"   # so /etc/rabbitmq/rabbitmq-env.conf is not read
    cat >"$dir/broker.state" <<EOF
NODE='$node'
AMQP_PORT='$amqp_port'
DIST_PORT='$dist_port'
EPMD_PORT='$epmd_port'
EPMD_SHARED='$shared'
EOF
    load_state "$dir"
    launch "$dir" || return 1
    if [[ -n "$join_node" ]]; then
        if ! { ctl stop_app && ctl join_cluster "$join_node" && ctl start_app; } >"$dir/log/join.out" 2>&1; then
            cat "$dir/log/join.out" >&2
            cmd_stop "$dir" || true
            log "node $node could not join $join_node"
            return 1
        fi
        log "node $node joined $join_node"
    fi
    {
        printf 'AOS_TEST_AMQP_URL=%q\n' "amqp://guest:guest@127.0.0.1:${amqp_port}/"
        printf 'AOS_TEST_AMQP_PORT=%q\n' "$amqp_port"
        printf 'AOS_TEST_AMQPS_PORT=%q\n' "$tls_port"
        printf 'AOS_TEST_TLS_CA=%q\n' "$dir/tls/ca.pem"
        printf 'AOS_TEST_BROKER_NODE=%q\n' "$node"
        printf 'AOS_TEST_BROKER_DIR=%q\n' "$dir"
        printf 'AOS_TEST_BROKER_CTL=%q\n' "$SELF"
    } >"$dir/broker.env"
    log "broker $node up on amqp://guest:guest@127.0.0.1:${amqp_port}/ in $(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")s (env: $dir/broker.env)"
}

# Wait up to $1 tenths of a second until none of the remaining args (pids) is alive.
wait_gone() {
    local n="$1" i pid alive
    shift
    for ((i = 0; i < n; i++)); do
        alive=0
        for pid in "$@"; do
            # A zombie (state Z) is gone for our purpose: nothing runs any more.
            if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
                [[ "$(ps -o stat= -p "$pid" 2>/dev/null || true)" != Z* ]]; then
                alive=1
            fi
        done
        ((alive)) || return 0
        sleep 0.1
    done
    return 1
}

cmd_stop() {
    local dir beam_pid group=()
    dir="$(abs_dir "${1:-}")"
    if [[ ! -f "$dir/broker.state" ]]; then
        log "nothing to stop in $dir"
        return 0
    fi
    load_state "$dir"
    beam_pid="$(cat "$dir/rabbit.pid" 2>/dev/null || true)"
    if pid_matches "$beam_pid" beam; then
        # Graceful: stops the node and waits for the OS process to exit.
        ctl stop "$dir/rabbit.pid" >"$dir/log/stop.out" 2>&1 || cat "$dir/log/stop.out" >&2 || true
    fi
    if pid_matches "$beam_pid" beam; then
        log "node $NODE still running after rabbitmqctl stop; sending SIGTERM to $beam_pid"
        kill -TERM "$beam_pid" 2>/dev/null || true
        wait_gone 100 "$beam_pid" || { log "sending SIGKILL to $beam_pid"; kill -KILL "$beam_pid" 2>/dev/null || true; }
    fi
    # The server runs in its own session whose leader is the sh wrapper: whatever is left in
    # that process group (wrapper, a beam that never wrote its pid file, erl_child_setup,
    # inet_gethost) goes too. The wrapper's own TERM handler stops beam gracefully first.
    if [[ -n "${WRAPPER_PID:-}" ]]; then
        mapfile -t group < <(pgrep -g "$WRAPPER_PID" 2>/dev/null || true)
        if ((${#group[@]})); then
            kill -TERM "${group[@]}" 2>/dev/null || true
            wait_gone 100 "${group[@]}" || kill -KILL "${group[@]}" 2>/dev/null || true
        fi
    fi
    if [[ -z "${EPMD_SHARED:-}" ]] && pid_matches "${EPMD_PID:-}" epmd; then
        kill -TERM "$EPMD_PID" 2>/dev/null || true
        wait_gone 30 "$EPMD_PID" || kill -KILL "$EPMD_PID" 2>/dev/null || true
    fi
    rm -f "$dir/broker.state" "$dir/broker.env"
    log "broker $NODE stopped"
}

# kill -9 of the node (a crash: no clean shutdown), keeping its name, ports, Mnesia and epmd, so
# that `restart` brings the same broker back with its durable queues.
cmd_kill() {
    local dir beam_pid group=()
    dir="$(abs_dir "${1:-}")"
    load_state "$dir"
    beam_pid="$(cat "$dir/rabbit.pid" 2>/dev/null || true)"
    pid_matches "$beam_pid" beam || die "no running broker in $dir"
    mapfile -t group < <(pgrep -g "${WRAPPER_PID:-$beam_pid}" 2>/dev/null || true)
    kill -KILL "$beam_pid" "${group[@]}" 2>/dev/null || true
    wait_gone 100 "$beam_pid" "${group[@]}" || die "node $NODE (pid $beam_pid) survived SIGKILL"
    rm -f "$dir/rabbit.pid"
    log "broker $NODE killed (SIGKILL); \`restart $dir\` brings it back"
}

cmd_restart() {
    local dir t0
    dir="$(abs_dir "${1:-}")"
    load_state "$dir"
    if pid_matches "$(cat "$dir/rabbit.pid" 2>/dev/null || true)" beam; then
        die "a broker is already running from $dir (node $NODE)"
    fi
    t0=$(date +%s.%N)
    launch "$dir" || die "could not restart the broker in $dir (logs above)"
    log "broker $NODE back on port $AMQP_PORT in $(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')")s"
}

main() {
    local cmd="${1:-}"
    [[ $# -ge 2 ]] || usage
    shift
    case "$cmd" in
    start)
        if [[ "${2:-}" == --join ]]; then
            [[ -n "${3:-}" ]] || usage
            JOIN_DIR="$(abs_dir "$3")"
        fi
        cmd_start "$1"
        ;;
    stop) cmd_stop "$1" ;;
    kill) cmd_kill "$1" ;;
    restart) cmd_restart "$1" ;;
    ctl)
        local dir
        dir="$(abs_dir "$1")"
        shift
        load_state "$dir"
        ctl "$@"
        ;;
    url)
        local dir
        dir="$(abs_dir "$1")"
        load_state "$dir"
        echo "amqp://guest:guest@127.0.0.1:${AMQP_PORT}/"
        ;;
    status)
        local dir
        dir="$(abs_dir "$1")"
        load_state "$dir"
        ctl status >/dev/null
        ;;
    *) usage ;;
    esac
}

main "$@"
