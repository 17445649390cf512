#!/usr/bin/env bash
# Lint and format checks, the first stage of scripts/test.sh (also runs on its own):
#
#   shell:   `shellcheck` on every shell script git knows (*.sh, and files whose #! names sh or bash)
#   python:  `ruff check` on every Python file (settings: ruff.toml), and `mypy` on the Cinder
#            driver package deploy/cinder/cinder_sharedlvm_driver (settings: mypy.ini)
#   swift:   `swift format lint --strict` on Sources/ and Tests/ (settings: .swift-format); fix
#            with `swift format format -i --parallel -r Sources Tests`
#
#   scripts/lint.sh              all of them
#   scripts/lint.sh shell python swift   only the named ones (shell, python = ruff + mypy, swift)
#
# Tools: shellcheck from Debian, ruff and mypy from .venv/lint (pinned in scripts/lint-requirements.txt),
# `swift format` from the Swift toolchain; scripts/setup.sh installs them all.
# Environment:
#   AOS_LINT_SWIFT=strict|report  strict: Swift findings fail the run; report: they are printed and
#                                 counted but do not fail it (default: see SWIFT_MODE_DEFAULT below)
# Exit status: 0 when every check passed, 1 when any found something (the failed ones are named),
# 2 on bad usage.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# `strict`: the sources pass `swift format lint --strict` (report only counts findings, for a migration).
SWIFT_MODE_DEFAULT=strict
swift_mode="${AOS_LINT_SWIFT:-$SWIFT_MODE_DEFAULT}"
case "$swift_mode" in
strict | report) ;;
*) echo "lint.sh: AOS_LINT_SWIFT must be strict or report, not '$swift_mode'" >&2; exit 2 ;;
esac

LINT_BIN="$ROOT/.venv/lint/bin"
SWIFT_DIRS=(Sources Tests)

checks=()
for arg in "$@"; do
    case "$arg" in
    shell | python | swift) checks+=("$arg") ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lint.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
((${#checks[@]})) || checks=(shell python swift)

failed=()
summary=()

# run_check NAME CMD…: runs CMD, records NAME as failed when it exits non-zero.
run_check() {
    local name="$1" t0=$SECONDS rc=0
    shift
    echo "---- lint: $name"
    "$@" || rc=$?
    if ((rc == 0)); then
        summary+=("$(printf '%-18s ok %4ss' "$name" $((SECONDS - t0)))")
    else
        summary+=("$(printf '%-18s FAILED (exit %s) %4ss' "$name" "$rc" $((SECONDS - t0)))")
        failed+=("$name")
    fi
}

# need TOOL-PATH HINT: true when TOOL-PATH is runnable; otherwise says how to get it.
need() {
    if command -v "$1" >/dev/null 2>&1; then
        return 0
    fi
    echo "lint.sh: $1 not found: $2" >&2
    return 1
}

# Every shell script git tracks (or would track): by extension, or by a #! line naming sh or bash.
shell_scripts() {
    local f first
    while IFS= read -r -d '' f; do
        [[ -f "$f" ]] || continue
        case "${f##*/}" in
        *.sh) printf '%s\0' "$f" ;;
        ?*.*) ;;  # another extension (a leading dot is a hidden file's name, not an extension)
        *)
            IFS= read -r first <"$f" || true
            if [[ "$first" =~ ^\#!.*(/|[[:space:]])(ba)?sh([[:space:]]|$) ]]; then
                printf '%s\0' "$f"
            fi
            ;;
        esac
    done < <(git ls-files -z --cached --others --exclude-standard)
}

lint_shell() {
    local scripts
    need shellcheck "run scripts/setup.sh --apt" || return 1
    mapfile -d '' -t scripts < <(shell_scripts)
    echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#scripts[@]} scripts"
    shellcheck --external-sources "${scripts[@]}"
}

lint_ruff() {
    need "$LINT_BIN/ruff" "run scripts/setup.sh --lint-venv" || return 1
    "$LINT_BIN/ruff" --version
    "$LINT_BIN/ruff" check --no-cache --quiet .
}

lint_mypy() {
    need "$LINT_BIN/mypy" "run scripts/setup.sh --lint-venv" || return 1
    # The cache lives with the tool, out of the work tree.
    "$LINT_BIN/mypy" --config-file mypy.ini --cache-dir "$ROOT/.venv/lint/mypy-cache"
}

lint_swift() {
    local out rc=0 n shown=40
    [[ "$swift_mode" == report ]] && shown=5
    need swift "install the Swift toolchain" || return 1
    out="$(mktemp "${TMPDIR:-/tmp}/aos-lint-swift.XXXXXX")"
    swift format lint --strict --parallel -r "${SWIFT_DIRS[@]}" >"$out" 2>&1 || rc=$?
    n="$(grep -c ': \(error\|warning\): ' "$out" || true)"
    if ((rc == 0)); then
        echo "swift format: no findings in ${SWIFT_DIRS[*]}"
    else
        head -n "$shown" "$out"
        ((n > shown)) && echo "… ($n findings in all)"
        echo "findings by rule:"
        grep -o ': \(error\|warning\): \[[A-Za-z]*\]' "$out" | sed 's/.*\[//; s/\]//' | sort | uniq -c | sort -rn
        echo "fix with: swift format format -i --parallel -r ${SWIFT_DIRS[*]}"
    fi
    rm -f "$out"
    if ((rc != 0)) && [[ "$swift_mode" == report ]]; then
        echo "!!!! lint.sh: $n Swift format findings NOT counted (AOS_LINT_SWIFT=report) !!!!"
        return 0
    fi
    return "$rc"
}

t_all=$SECONDS
for check in "${checks[@]}"; do
    case "$check" in
    shell) run_check shellcheck lint_shell ;;
    python) run_check ruff lint_ruff; run_check mypy lint_mypy ;;
    swift) run_check "swift-format ($swift_mode)" lint_swift ;;
    esac
done

echo "---- lint summary ($((SECONDS - t_all))s)"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "lint.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "lint.sh: all checks passed"
