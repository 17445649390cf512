#!/usr/bin/env bash
# Install what building and testing this project needs. Idempotent: a second run only checks.
#
#   scripts/setup.sh            Debian packages (apt) + Python venv at .venv
#   scripts/setup.sh --apt      only the Debian packages
#   scripts/setup.sh --venv     only the venv
#   scripts/setup.sh --cinder-venv  only the Cinder driver test venv (.venv/cinder)
#   scripts/setup.sh --lint-venv    only the lint tools' venv (.venv/lint: ruff, mypy)
#
# Debian packages come from APT_PACKAGES below (add to that one list). The venv is rebuilt when
# Tests/interop/requirements.txt changes (its hash is kept in .venv/.requirements.sha256).
# The Cinder driver tests get a second venv, .venv/cinder: the real cinder from PyPI
# (Tests/cinder/requirements.txt, every dependency pinned by Tests/cinder/constraints.txt) plus
# the driver package installed from deploy/cinder; rebuilt when any of those change. The lint
# tools (ruff, mypy) get a third, .venv/lint, from scripts/lint-requirements.txt.
# Environment: PYTHON (default python3) is the interpreter the venv is made from.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Everything the build and the tests need from Debian, in one list.
APT_PACKAGES=(
    librabbitmq-dev  # AMQP 0-9-1 C library (CRabbitMQ system-library target)
    pkg-config       # SwiftPM finds librabbitmq through it
    rabbitmq-server  # the tests' private broker (scripts/rabbitmq-private.sh)
    libvirt-clients  # virsh, used by the lockspace-recovery code paths
    qemu-system-x86 mmdebstrap cpio  # the VM lab (scripts/lab.sh): TCG guests built from Debian packages
    openssl          # throw-away CA and certificate for the broker's TLS listener
    shellcheck       # scripts/lint.sh: the shell scripts
    mariadb-server   # Tests/cinder_stack: cinder's database; the tests start a private mariadbd
    dpkg-dev binutils python3-setuptools python3-wheel help2man  # scripts/build-packages.sh: dpkg-shlibdeps, strip, the driver's wheel, manual pages
    lintian          # Tests/packaging: Debian's checks of the built packages
)

REQUIREMENTS="$ROOT/Tests/interop/requirements.txt"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

log() { echo "setup: $*"; }

missing_packages() {
    local p
    for p in "${APT_PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
            echo "$p"
        fi
    done
}

# apt lists are "fresh enough" when any Packages index exists and is younger than a day.
apt_lists_fresh() {
    [[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 -print -quit 2>/dev/null)" ]]
}

setup_apt() {
    local missing sudo=() created_policy=0
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        log "Debian packages present: ${APT_PACKAGES[*]}"
        return 0
    fi
    if ((EUID != 0)); then
        command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Installing rabbitmq-server or mariadb-server must not start the system services: our tests
    # run private ones.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
        # shellcheck disable=SC2064  # expand now: the array is local
        trap "${sudo[*]} rm -f /usr/sbin/policy-rc.d" EXIT
    fi
    if ! apt_lists_fresh; then
        "${sudo[@]}" apt-get update -q
    fi
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        log "install failed; refreshing package lists and trying again"
        "${sudo[@]}" apt-get update -q
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    if ((created_policy)); then
        "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    # Debian's package may enable and start the system service on hosts where policy allowed it;
    # that one is not ours and is left alone.
}

# venv_current DIR WANT CHECK: true when DIR was built for hash WANT and `python -c CHECK` works.
venv_current() {
    local dir="$1" want="$2" check="$3" have=""
    [[ -f "$dir/.requirements.sha256" ]] && have="$(cat "$dir/.requirements.sha256")"
    [[ "$want" == "$have" ]] && "$dir/bin/python" -c "$check" 2>/dev/null
}

# venv_install DIR PIP-ARGS…: creates DIR when missing and pip-installs PIP-ARGS into it.
venv_install() {
    local dir="$1"
    shift
    if [[ ! -x "$dir/bin/python" ]]; then
        "$PYTHON" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
}

# requirements_venv LABEL DIR REQUIREMENTS CHECK REPORT: DIR holds what REQUIREMENTS pins, rebuilt
# when that file changes (its hash is kept in DIR/.requirements.sha256). CHECK is Python that must
# run in it; REPORT is Python that prints what was installed.
requirements_venv() {
    local label="$1" dir="$2" req="$3" check="$4" report="$5" want
    [[ -f "$req" ]] || { echo "setup: $req missing" >&2; exit 1; }
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if venv_current "$dir" "$want" "$check"; then
        log "$label up to date: $dir"
        return 0
    fi
    log "creating $label $dir from $req"
    venv_install "$dir" -r "$req"
    echo "$want" >"$dir/.requirements.sha256"
    log "$label ready: $("$dir/bin/python" -W ignore -c "$report")"
}

setup_venv() {
    requirements_venv venv "$VENV" "$REQUIREMENTS" 'import oslo_messaging, pytest' \
        'import oslo_messaging, importlib.metadata as m; print("oslo.messaging", m.version("oslo.messaging"))'
}

CINDER_REQUIREMENTS="$ROOT/Tests/cinder/requirements.txt"
CINDER_CONSTRAINTS="$ROOT/Tests/cinder/constraints.txt"
CINDER_VENV="$ROOT/.venv/cinder"  # inside .venv/: already git-ignored

cinder_venv_hash() {
    {
        sha256sum "$CINDER_REQUIREMENTS" "$CINDER_CONSTRAINTS"
        (cd "$ROOT" && find deploy/cinder -type f \( -name '*.py' -o -name '*.toml' -o -name '*.md' \) \
            -not -path '*/build/*' -not -path '*.egg-info/*' | LC_ALL=C sort | xargs sha256sum)
    } | sha256sum | cut -d' ' -f1
}

setup_cinder_venv() {
    local want build t0=$SECONDS
    want="$(cinder_venv_hash)"
    if venv_current "$CINDER_VENV" "$want" 'import cinder.volume.driver, cinder_sharedlvm_driver.driver, cinderclient, pymysql, pytest'; then
        log "cinder venv up to date: $CINDER_VENV"
        return 0
    fi
    log "creating cinder venv $CINDER_VENV from $CINDER_REQUIREMENTS"
    venv_install "$CINDER_VENV" -r "$CINDER_REQUIREMENTS" -c "$CINDER_CONSTRAINTS"
    # Build from a copy: pip/setuptools would leave build/ and *.egg-info in the work tree.
    build="$(mktemp -d "${TMPDIR:-/tmp}/aos-cinder-driver.XXXXXX")"
    cp -r "$ROOT/deploy/cinder/." "$build/"
    # A build/ or *.egg-info left in the tree by an in-tree pip run would be packaged instead of
    # the sources (setuptools reuses build/lib): the venv would hold stale code.
    rm -rf "$build/build" "$build"/*.egg-info
    venv_install "$CINDER_VENV" --no-deps --force-reinstall "$build"
    rm -rf "$build"
    echo "$want" >"$CINDER_VENV/.requirements.sha256"
    log "cinder venv ready in $((SECONDS - t0))s: $("$CINDER_VENV/bin/python" -W ignore -c 'import importlib.metadata as m; print("cinder", m.version("cinder"), "+ cinder-sharedlvm-driver", m.version("cinder-sharedlvm-driver"))')"
}

LINT_REQUIREMENTS="$ROOT/scripts/lint-requirements.txt"
LINT_VENV="$ROOT/.venv/lint"  # inside .venv/: already git-ignored

# The lint tools (scripts/lint.sh): ruff and mypy, pinned, in a venv of their own.
setup_lint_venv() {
    requirements_venv "lint venv" "$LINT_VENV" "$LINT_REQUIREMENTS" 'import mypy' \
        'import importlib.metadata as m; print("ruff", m.version("ruff") + ", mypy", m.version("mypy"))'
}

case "${1:-all}" in
all) setup_apt; setup_venv; setup_cinder_venv; setup_lint_venv ;;
--apt) setup_apt ;;
--venv) setup_venv ;;
--cinder-venv) setup_cinder_venv ;;
--lint-venv) setup_lint_venv ;;
-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "usage: $0 [--apt|--venv|--cinder-venv|--lint-venv]" >&2; exit 2 ;;
esac
