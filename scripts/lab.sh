#!/usr/bin/env bash
# The VM lab: real lvm2 + lvmlockd + sanlock in two qemu (TCG) guests sharing one disk, with the
# release-built aos-agent installed from its Debian package inside each, driven from the host
# over the private RabbitMQ (issue 5).
# See docs/testing.md.
#
#   scripts/lab.sh [run] [PYTEST ARGS…]   build what is missing, boot, run Tests/lab, tear down
#   scripts/lab.sh check                  exit 0 when this machine can run the lab (else says why)
#   scripts/lab.sh image                  build (or find in the cache) the guest image; prints its dir
#   scripts/lab.sh agent                  build the aos-agent packages (scripts/build-packages.sh);
#                                         prints the path of the binary they hold
#   scripts/lab.sh up [DIR]               boot a lab with VG and agents and LEAVE IT RUNNING
#   scripts/lab.sh test DIR [PYTEST ARGS…]  run Tests/lab against the running lab in DIR
#   scripts/lab.sh sh DIR lab1 'lvs; sanlock client status'   run a command in a guest (qga)
#   scripts/lab.sh console DIR lab1       interactive root shell on the guest's serial console
#   scripts/lab.sh down DIR               stop a lab started with `up` (each qemu by its pid)
#
# Environment:
#   AOS_LAB_CACHE=DIR        guest images cache (default /var/cache/aos-lab), keyed by a hash of
#                            Tests/lab/build-image.sh, Tests/lab/guest/* and the kernel package
#   AOS_LAB_AGENT_BIN=FILE   package this aos-agent instead of building it (the guests install
#                            the agent from its packages either way)
#   AOS_LAB_RUN_DIR=DIR      where this run's disks, sockets and logs go (default: a new /tmp dir,
#                            removed after a passing run, kept after a failing one)
#   AOS_LAB_KEEP=1           keep the run directory (and, with `run`, leave nothing running anyway)
#   AOS_LAB_TIMEOUT=SECS     hard limit for the pytest part of `run` (default 2400)
#   AOS_LAB_CRASH=0          skip the crash-reboot test (it waits ~85 s for sanlock's lease expiry)
#   AOS_LAB_JOBS_RESTART=0   skip the test that kills the agent in the middle of a wipe job
#   AOS_LAB_JOBS_BENCH_MB=N  size of the LV the jobs throughput test copies and wipes (default
#                            1024; 0 skips it)
#   AOS_LAB_SHARED_SIZE=SIZE the shared disk (truncate -s; default 4G, sparse)
#   AOS_LAB_MPATH=1          the multipath lab: lab1 reaches the shared disk through two virtio-scsi
#                            paths under real dm-multipath (queue_if_no_path) instead of the
#                            lab-path stand-in (for `up`, `run`; Tests/lab/test_lab_multipath.py)
#   AOS_LAB_MPATH_PASS=0     `run` without arguments ends with a second, short lab in multipath
#                            mode running Tests/lab/test_lab_multipath.py (~3.5 min); 0 skips it
#   AOS_LAB_KILL9=N          iterations of the agent kill -9 test on real LVM (default 2; 0 skips it)
#   AOS_LAB_PERF_N=N         opt-in: the agent's overhead over the bare LVM commands, N rounds
#   AOS_LAB_BURST=N          opt-in: N creates sent at once (AOS_LAB_BURST_HOSTS=2: over both agents)
#   AOS_TEST_AMQP_URL        an already running broker (scripts/test.sh exports it); otherwise a
#                            private one is started (scripts/rabbitmq-private.sh) and stopped
# Exit status: that of pytest for run/test; 1 on a setup failure; 2 on bad usage.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB="$ROOT/Tests/lab"
CACHE="${AOS_LAB_CACHE:-/var/cache/aos-lab}"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3

log() { echo "lab.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }

# ---- can it run here? -----------------------------------------------------------------------
check() {
    local missing=() t
    for t in qemu-system-x86_64 mmdebstrap cpio dpkg apt-get dpkg-deb dpkg-shlibdeps strip; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    if ((${#missing[@]})); then
        echo "lab.sh: cannot run the lab: missing ${missing[*]} (scripts/setup.sh --apt installs them)"
        return 1
    fi
    if ((EUID != 0)); then
        echo "lab.sh: cannot run the lab: mmdebstrap and the image build need root"
        return 1
    fi
    if ! qemu-system-x86_64 -accel help 2>/dev/null | grep -qx tcg; then
        echo "lab.sh: cannot run the lab: this qemu has no TCG"
        return 1
    fi
    return 0
}

# ---- guest image ----------------------------------------------------------------------------
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

image_dir() {
    local kpkg key
    kpkg="$(kernel_package)"
    if [[ -z "$kpkg" ]]; then
        apt-get update -q >&2 || true
        kpkg="$(kernel_package)"
    fi
    [[ -n "$kpkg" ]] || die "no linux-image-*-amd64 package known to apt"
    key="$( (echo "$kpkg"; cat "$LAB/build-image.sh"; find "$LAB/guest" -type f | LC_ALL=C sort | xargs cat) |
        sha256sum | cut -c1-16)"
    echo "$CACHE/image-$key"
}

build_image() { # prints the image dir; builds it when not cached
    local dir tmp t0
    dir="$(image_dir)"
    if [[ -f "$dir/initrd.cpio" && -f "$dir/vmlinuz" ]]; then
        log "guest image cached: $dir"
        echo "$dir"
        return 0
    fi
    mkdir -p "$CACHE"
    tmp="$dir.tmp.$$"
    rm -rf "$tmp"
    t0=$(now)
    log "building the guest image into $dir (log: $CACHE/build.log)"
    if ! AOS_LAB_KERNEL_PACKAGE="$(kernel_package)" bash "$LAB/build-image.sh" "$tmp" >"$CACHE/build.log" 2>&1; then
        tail -30 "$CACHE/build.log" >&2
        rm -rf "$tmp"
        die "guest image build failed (full log: $CACHE/build.log)"
    fi
    rm -rf "$dir"
    mv "$tmp" "$dir"
    # Keep the cache small: the two newest images.
    find "$CACHE" -maxdepth 1 -name 'image-*' ! -name '*.tmp.*' -printf '%T@\t%p\n' | sort -rn | tail -n +3 |
        cut -f2- | while IFS= read -r old; do rm -rf "$old"; done
    log "guest image built in $(($(now) - t0)) s: $(grep -E '^(kernel|initrd_bytes)=' "$dir/image.info" | tr '\n' ' ')"
    echo "$dir"
}

# ---- agent ----------------------------------------------------------------------------------
LAB_DEBS="$ROOT/.build-static/lab-packages"
# The guests install the agent from its packages (aos-common, aos-agent), built here by
# scripts/build-packages.sh (the static release build, scratch .build-static) into LAB_DEBS.
# Prints the path of the binary the package holds (stripped), for what runs it outside dpkg:
# the simulated agents on the host and the guests' /mnt/host/aos-agent.
build_agent() {
    local t0 tmp="" args=(--out "$LAB_DEBS" --only aos-agent)
    if [[ -n "${AOS_LAB_AGENT_BIN:-}" ]]; then
        [[ -x "$AOS_LAB_AGENT_BIN" ]] || die "AOS_LAB_AGENT_BIN=$AOS_LAB_AGENT_BIN is not executable"
        tmp="$(mktemp -d "${TMPDIR:-/tmp}/aos-lab-bin.XXXXXX")"
        ln -s "$(realpath "$AOS_LAB_AGENT_BIN")" "$tmp/aos-agent"
        args+=(--bin-dir "$tmp")
    fi
    t0=$(now)
    log "building the agent's packages: scripts/build-packages.sh ${args[*]}"
    if ! bash "$ROOT/scripts/build-packages.sh" "${args[@]}" >/dev/null; then
        [[ -z "$tmp" ]] || rm -rf "$tmp"
        die "building the aos-agent packages failed"
    fi
    [[ -z "$tmp" ]] || rm -rf "$tmp"
    rm -rf "$LAB_DEBS/root"
    dpkg-deb -x "$LAB_DEBS"/aos-agent_*.deb "$LAB_DEBS/root" || die "cannot unpack the aos-agent package"
    [[ -x "$LAB_DEBS/root/usr/bin/aos-agent" ]] || die "no usr/bin/aos-agent in the aos-agent package"
    log "aos-agent packages built in $(($(now) - t0)) s: $(cd "$LAB_DEBS" && echo ./*.deb)"
    echo "$LAB_DEBS/root/usr/bin/aos-agent"
}

# Image and agent in parallel: the image build is mostly downloads and dpkg, the agent build CPU.
build_both() { # sets IMAGE and AGENT
    local img_out img_pid rc=0
    img_out="$(mktemp)"
    build_image >"$img_out" &
    img_pid=$!
    AGENT="$(build_agent)" || rc=$?
    wait "$img_pid" || rc=1
    IMAGE="$(tail -1 "$img_out")"
    rm -f "$img_out"
    ((rc == 0)) || die "build failed"
}

# ---- broker ---------------------------------------------------------------------------------
BROKER_DIR=""
# Runs CMD with every inherited descriptor on a *.lock file closed: the broker that `up` leaves
# running must not hold the lab lock (`flock /tmp/aos-lab.lock scripts/lab.sh up` would keep the
# lab locked for everyone until the broker stops).
without_lock_fds() {
    (
        local fd n
        for fd in /proc/"$BASHPID"/fd/*; do
            n="${fd##*/}"
            if [[ "$n" =~ ^[0-9]+$ && "$(readlink "$fd" 2>/dev/null || true)" == *.lock ]]; then
                eval "exec $n<&-"
            fi
        done
        exec "$@"
    )
}
ensure_broker() {
    if [[ -n "${AOS_TEST_AMQP_URL:-}" ]]; then
        log "using broker $AOS_TEST_AMQP_URL"
        return 0
    fi
    BROKER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/aos-lab-broker.XXXXXX")"
    without_lock_fds bash "$ROOT/scripts/rabbitmq-private.sh" start "$BROKER_DIR" >&2 ||
        die "could not start a private broker"
    set -a
    # shellcheck source=/dev/null
    . "$BROKER_DIR/broker.env"
    set +a
}
stop_broker() {
    if [[ -n "$BROKER_DIR" ]]; then
        bash "$ROOT/scripts/rabbitmq-private.sh" stop "$BROKER_DIR" >&2 || true
        rm -rf "$BROKER_DIR"
        BROKER_DIR=""
    fi
}

# ---- teardown -------------------------------------------------------------------------------
RUN_DIR=""
# Stops every qemu whose pidfile is in RUN_DIR, by pid (checked to be that run's qemu).
stop_guests() {
    local dir="$1" pidfile pid
    [[ -n "$dir" && -d "$dir" ]] || return 0
    "$PY" "$LAB/labvm.py" down "$dir" 2>/dev/null || true
    for pidfile in "$dir"/*.pid; do
        [[ -f "$pidfile" ]] || continue
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$dir"; then
            log "killing qemu pid $pid ($pidfile)"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# ---- commands -------------------------------------------------------------------------------
cmd_run() {
    local t0 rc=0 status keep="${AOS_LAB_KEEP:-0}"
    [[ -n "${AOS_LAB_RUN_DIR:-}" ]] && keep=1 # a directory the caller chose is never removed
    t0=$(now)
    check >&2 || exit 1
    build_both
    local t_build=$(($(now) - t0))
    ensure_broker
    RUN_DIR="${AOS_LAB_RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/aos-lab.XXXXXX")}"
    mkdir -p "$RUN_DIR"
    RUN_DIR="$(cd "$RUN_DIR" && pwd)"
    # shellcheck disable=SC2064
    trap "stop_guests '$RUN_DIR'; stop_broker" EXIT
    trap 'log "interrupted"; exit 130' INT
    trap 'log "terminated"; exit 143' TERM
    log "run directory $RUN_DIR (guest consoles *.console.log, agent logs share/*/agent.log)"
    export AOS_LAB_IMAGE="$IMAGE" AOS_LAB_AGENT_BIN="$AGENT" AOS_LAB_AGENT_DEBS="$LAB_DEBS" AOS_LAB_RUN_DIR="$RUN_DIR"
    timeout --kill-after=30 "${AOS_LAB_TIMEOUT:-2400}" \
        "$PY" -m pytest -q -p no:cacheprovider -rfEs --timeout=900 "$LAB" "$@" || rc=$?
    stop_guests "$RUN_DIR"
    if [[ "${AOS_LAB_MPATH_PASS:-1}" != 0 && $# -eq 0 && "${AOS_LAB_MPATH:-0}" != 1 ]]; then
        # The multipath pass: a fresh lab whose lab1 is on real dm-multipath (it cannot also
        # carry the lab-path stand-in the fault-injection tests above use).
        local mp_dir="$RUN_DIR/mpath" mp_rc=0 mp_t0
        mkdir -p "$mp_dir"
        mp_t0=$(now)
        # shellcheck disable=SC2064
        trap "stop_guests '$RUN_DIR'; stop_guests '$mp_dir'; stop_broker" EXIT
        log "multipath pass: lab1 on real dm-multipath, run directory $mp_dir"
        AOS_LAB_MPATH=1 AOS_LAB_RUN_DIR="$mp_dir" timeout --kill-after=30 900 \
            "$PY" -m pytest -q -p no:cacheprovider -rfEs --timeout=900 "$LAB/test_lab_multipath.py" || mp_rc=$?
        stop_guests "$mp_dir"
        log "multipath pass: pytest exit $mp_rc in $(($(now) - mp_t0)) s"
        ((rc != 0)) || rc=$mp_rc
    fi
    stop_broker
    trap - EXIT
    case "$rc" in
    0) status=passed ;;
    124) status="TIMED OUT after ${AOS_LAB_TIMEOUT:-2400} s" ;;
    *) status="FAILED (pytest exit $rc)" ;;
    esac
    log "lab $status: build/cache ${t_build} s, whole lab $(($(now) - t0)) s"
    if ((rc == 0)) && [[ "$keep" != 1 ]]; then
        rm -rf "$RUN_DIR"
    else
        log "logs kept in $RUN_DIR"
    fi
    return "$rc"
}

cmd_up() {
    check >&2 || exit 1
    build_both
    ensure_broker
    if [[ -n "$BROKER_DIR" ]]; then
        log "private broker started for this lab: $AOS_TEST_AMQP_URL (dir $BROKER_DIR;" \
            "stop it with: scripts/rabbitmq-private.sh stop $BROKER_DIR)"
    fi
    BROKER_DIR="" # left running with the lab
    RUN_DIR="${1:-$(mktemp -d "${TMPDIR:-/tmp}/aos-lab.XXXXXX")}"
    mkdir -p "$RUN_DIR"
    RUN_DIR="$(cd "$RUN_DIR" && pwd)"
    AOS_LAB_TAG="$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        "$PY" "$LAB/labvm.py" up "$RUN_DIR" --image "$IMAGE" --agent "$AGENT" --debs "$LAB_DEBS" --amqp-url "$AOS_TEST_AMQP_URL"
    cat >&2 <<MSG
lab.sh: lab running in $RUN_DIR
  tests:   scripts/lab.sh test $RUN_DIR -k exclusive
  command: scripts/lab.sh sh $RUN_DIR lab1 'lvs -a; sanlock client status'
  shell:   scripts/lab.sh console $RUN_DIR lab1      (Ctrl-] leaves)
  stop:    scripts/lab.sh down $RUN_DIR
MSG
}

cmd_test() {
    local dir="${1:?usage: lab.sh test DIR [PYTEST ARGS…]}"
    shift
    AOS_LAB_ATTACH="$(cd "$dir" && pwd)" exec "$PY" -m pytest -q -p no:cacheprovider -rfEs --timeout=900 "$LAB" "$@"
}

cmd_console() {
    local dir="${1:?usage: lab.sh console DIR NAME}" name="${2:?usage: lab.sh console DIR NAME}"
    command -v socat >/dev/null || die "console needs socat (apt-get install socat); or use: lab.sh sh $dir $name 'CMD'"
    log "serial console of $name; press Enter for a prompt, Ctrl-] to leave"
    exec socat -,raw,echo=0,escape=0x1d "UNIX-CONNECT:$dir/$name.serial"
}

case "${1:-run}" in
run) shift || true; cmd_run "$@" ;;
check) check ;;
image) check >&2 || exit 1; build_image ;;
agent) build_agent ;;
up) shift; cmd_up "$@" ;;
test) shift; cmd_test "$@" ;;
sh) shift; [[ $# -eq 3 ]] || die "usage: lab.sh sh DIR NAME 'SCRIPT'"; exec "$PY" "$LAB/labvm.py" sh "$@" ;;
exec) shift; exec "$PY" "$LAB/labvm.py" exec "$@" ;;
console) shift; cmd_console "$@" ;;
down) shift; [[ $# -eq 1 ]] || die "usage: lab.sh down DIR"; stop_guests "$1" ;;
-h | --help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//' ;;
-*) cmd_run "$@" ;;
*) echo "lab.sh: unknown command '$1' (see --help)" >&2; exit 2 ;;
esac
