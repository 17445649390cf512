#!/usr/bin/env bash
# Builds the Debian packages (and the Cinder driver's wheel) with dpkg-deb: no debhelper, no
# debian/ source tree. See docs/packaging.md.
#
#   scripts/build-packages.sh [--out DIR] [--only NAME]… [--bin-dir DIR]
#
#   aos-common_V_all.deb                 /etc/aos/aos.conf (conffile, 0640), what the others share
#   aos-agent_V_amd64.deb                /usr/bin/aos-agent, its unit, the nova-compute and
#                                        cinder-volume drop-ins, the lvm.conf kill-command snippet
#   aos-controller_V_amd64.deb           /usr/bin/aos-controller and its unit
#   aosctl_V_amd64.deb                   /usr/bin/aosctl
#   python3-aos-cinder-driver_V_all.deb  the driver in /usr/lib/python3/dist-packages (for
#                                        Debian's python3-cinder)
#   cinder_sharedlvm_driver-V-py3-none-any.whl   the same driver for a Cinder in a virtualenv
#
# --out DIR      where the packages go (default .build-static/packages); previous packages of the
#                same names are replaced
# --only NAME    build only these (repeatable; the names above, `wheel` for the wheel); a binary
#                package brings aos-common along, which it depends on
# --bin-dir DIR  take aos-agent, aos-controller, aosctl from DIR instead of building them
#
# The Swift programs are built as scripts/lab.sh builds the lab's agent (the same command and
# scratch path, so the two share one build): `swift build -c release --static-swift-stdlib
# --scratch-path .build-static` + STATIC_LINK_FLAGS (lld, packed relocations), then stripped.
# The version of every package (and of the wheel) is the project's one version,
# ProductVersion.current in Sources/AOSRuntime/ProductVersion.swift: the programs' `--version`
# prints it and agents announce it.
# Needs: dpkg-deb, dpkg-shlibdeps (dpkg-dev), strip (binutils), help2man (the programs' manual
# pages, from their --help and --version), fakeroot is NOT needed (dpkg-deb --root-owner-group),
# /usr/bin/python3 with setuptools and wheel for the driver. AOS_PACKAGE_MAINTAINER sets the
# Maintainer; SOURCE_DATE_EPOCH (else the last commit's time) dates the changelogs.
# Prints the path of every package built, one per line, on stdout; progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEB="$ROOT/deploy/debian"
SCRATCH="$ROOT/.build-static"
# The Maintainer field (and the changelog's trailer): a site building its own packages names
# itself here; the default is a placeholder in a reserved domain (RFC 2606).
MAINTAINER="${AOS_PACKAGE_MAINTAINER:-aos-agent maintainers <aos-agent@example.org>}"
s="" # the staging root of the package being built (stage)
built=()
ALL=(aos-common aos-agent aos-controller aosctl python3-aos-cinder-driver wheel)

# The shipped programs' link flags, here only (docs/performance.md, "Memory and idle cost"):
# lld instead of gold, and the static-PIE's 2.2 MB of relative relocations packed as DT_RELR
# (glibc >= 2.36; `relr_floor` raises the libc6 Depends): the dynamic loader no longer reads
# them at every start (-2.6 MB idle RSS for the agent, still position-independent).
STATIC_LINK_FLAGS=(-Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs)

log() { echo "build-packages: $*" >&2; }
die() { log "error: $*"; exit 1; }

out="$SCRATCH/packages"
bin_dir=""
only=()
while (($#)); do
    case "$1" in
    --out) [[ $# -ge 2 ]] || die "--out needs a directory"; out="$2"; shift ;;
    --only) [[ $# -ge 2 ]] || die "--only needs a name"; only+=("$2"); shift ;;
    --bin-dir) [[ $# -ge 2 ]] || die "--bin-dir needs a directory"; bin_dir="$(cd "$2" && pwd)"; shift ;;
    -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-packages: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

wanted=()
if ((${#only[@]})); then
    for n in "${only[@]}"; do
        [[ " ${ALL[*]} " == *" $n "* ]] || { echo "build-packages: unknown package '$n' (${ALL[*]})" >&2; exit 2; }
        case "$n" in aos-agent | aos-controller | aosctl) wanted+=(aos-common) ;; esac
        wanted+=("$n")
    done
else
    wanted=("${ALL[@]}")
fi
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

# The one version (what the programs' `--version` prints and the agents' announcements carry).
VERSION_SOURCE="Sources/AOSRuntime/ProductVersion.swift"
VERSION="$(sed -n 's/^ *public static let current = "\([^"]*\)".*/\1/p' "$ROOT/$VERSION_SOURCE" | head -1)"
[[ "$VERSION" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "$VERSION_SOURCE: ProductVersion.current '$VERSION' is no Debian version"
ARCH="$(dpkg --print-architecture)"
maintainer_form='^[^<>|]+ <[^<>| ]+@[^<>| ]+>$' # also keeps sed's | delimiter out of it
[[ "$MAINTAINER" =~ $maintainer_form ]] ||
    die "AOS_PACKAGE_MAINTAINER '$MAINTAINER' is not 'Name <address>'"
# The changelogs' date: reproducible builds' SOURCE_DATE_EPOCH, else the last commit's, else now.
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
    SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
CHANGELOG_DATE="$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/aos-packages.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ---- Swift binaries -----------------------------------------------------------------------
products=()
for p in aos-agent aos-controller aosctl; do
    if want "$p"; then products+=("$p"); fi
done
if ((${#products[@]})) && [[ -z "$bin_dir" ]]; then
    mkdir -p "$SCRATCH"
    blog="$SCRATCH/packages-build.log"
    : >"$blog"
    for p in "${products[@]}"; do
        t0=$SECONDS
        log "swift build -c release --static-swift-stdlib --scratch-path .build-static ${STATIC_LINK_FLAGS[*]} --product $p (log $blog)"
        if ! (cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" \
            "${STATIC_LINK_FLAGS[@]}" --product "$p" >>"$blog" 2>&1); then
            tail -40 "$blog" >&2
            die "static build of $p failed (log: $blog)"
        fi
        log "$p built in $((SECONDS - t0)) s"
    done
    bin_dir="$(cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" \
        "${STATIC_LINK_FLAGS[@]}" --show-bin-path)"
fi

# ---- helpers --------------------------------------------------------------------------------
# shlibs BINARY: the Depends of a binary's shared libraries (dpkg-shlibdeps wants a debian/control).
shlibs() {
    local d="$WORK/shlibs"
    mkdir -p "$d/debian"
    printf 'Source: aos\n\nPackage: aos\nArchitecture: any\n' >"$d/debian/control"
    (cd "$d" && dpkg-shlibdeps -O "$1" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p' | relr_floor "$1"
}

# relr_floor BINARY: a binary with packed relative relocations (DT_RELR) needs glibc >= 2.36, yet
# lld marks no symbol version that dpkg-shlibdeps could see: raise a lower libc6 floor to 2.36.
relr_floor() {
    local deps
    deps="$(cat)"
    if readelf -d "$1" | grep -q '(RELR)'; then
        deps="$(sed -E 's/libc6 \(>= 2\.([0-9]|[12][0-9]|3[0-5])(\.[0-9]+)?\)/libc6 (>= 2.36)/' <<<"$deps")"
    fi
    printf '%s\n' "$deps"
}

# stage NAME: a fresh staging root for package NAME with its DEBIAN/ and doc dir, in $s.
stage() {
    s="$WORK/$1"
    rm -rf "$s"
    mkdir -p "$s/DEBIAN" "$s/usr/share/doc/$1"
    install -m 0644 "$DEB/copyright" "$s/usr/share/doc/$1/copyright"
    # A native package's changelog (Debian policy 12.7): one entry, this build's version.
    printf '%s (%s) unstable; urgency=medium\n\n  * Built by scripts/build-packages.sh; the changes are in the repository.\n\n -- %s  %s\n' \
        "$1" "$VERSION" "$MAINTAINER" "$CHANGELOG_DATE" | gzip -9n >"$s/usr/share/doc/$1/changelog.gz"
    chmod 0644 "$s/usr/share/doc/$1/changelog.gz"
    # Deliberate departures from lintian's defaults, each with its reason in the file.
    if [[ -f "$DEB/$1/lintian-overrides" ]]; then
        install -D -m 0644 "$DEB/$1/lintian-overrides" "$s/usr/share/lintian/overrides/$1"
    fi
    local f
    for f in conffiles postinst prerm postrm; do
        [[ -f "$DEB/$1/$f" ]] || continue
        if [[ "$f" == conffiles ]]; then
            install -m 0644 "$DEB/$1/$f" "$s/DEBIAN/$f"
        else
            install -m 0755 "$DEB/$1/$f" "$s/DEBIAN/$f"
        fi
    done
}

# finish NAME ARCH DEPENDS: control file and md5sums for $s, dpkg-deb --build; adds the .deb to built.
finish() {
    local name="$1" arch="$2" deps="$3" size deb
    if grep -q '@SHLIBS@' "$DEB/$name/control.in" && [[ -z "$deps" ]]; then
        die "$name: dpkg-shlibdeps found no shared-library dependencies"
    fi
    size="$(du -sk --apparent-size --exclude=DEBIAN "$s" | cut -f1)"
    sed -e "s|@VERSION@|$VERSION|g" -e "s|@ARCH@|$arch|g" -e "s|@MAINTAINER@|$MAINTAINER|g" \
        -e "s|@INSTALLED_SIZE@|$size|g" -e "s|@SHLIBS@|$deps|g" "$DEB/$name/control.in" >"$s/DEBIAN/control"
    if grep -q '@[A-Z_]*@' "$s/DEBIAN/control"; then
        die "$name: unreplaced placeholder in control: $(grep '@[A-Z_]*@' "$s/DEBIAN/control")"
    fi
    (cd "$s" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
        xargs -0 -r md5sum) >"$s/DEBIAN/md5sums"
    deb="$out/${name}_${VERSION}_${arch}.deb"
    rm -f "$out/${name}"_*.deb
    # gzip: the guests' dpkg unpacks it at every lab boot; xz would save ~25% for 3x the time.
    dpkg-deb --root-owner-group -Zgzip -z6 --build "$s" "$deb" >/dev/null
    log "$(basename "$deb"): $(du -h "$deb" | cut -f1)"
    built+=("$deb")
}

# binary_package NAME SECTION SUMMARY: stage NAME with its stripped Swift program in /usr/bin and
# its manual page in SECTION.
binary_package() {
    local name="$1" section="$2" summary="$3" bin
    bin="$bin_dir/$name"
    [[ -x "$bin" ]] || die "no $name in $bin_dir"
    stage "$name"
    mkdir -p "$s/usr/bin"
    install -m 0755 "$bin" "$s/usr/bin/$name"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$s/usr/bin/$name"
    # The manual page, from the program's own --help and --version (help2man runs it by argv).
    mkdir -p "$s/usr/share/man/man$section"
    help2man --locale=C.UTF-8 --no-info --no-discard-stderr --section="$section" --name="$summary" \
        --version-option=--version --help-option=--help "$s/usr/bin/$name" >"$WORK/$name.$section" ||
        die "help2man $name failed"
    gzip -9n <"$WORK/$name.$section" >"$s/usr/share/man/man$section/$name.$section.gz"
    chmod 0644 "$s/usr/share/man/man$section/$name.$section.gz"
}

# ---- aos-common -----------------------------------------------------------------------------
if want aos-common; then
    stage aos-common
    install -d -m 0755 "$s/etc/aos"
    install -m 0640 "$ROOT/config/aos.conf.example" "$s/etc/aos/aos.conf"
    finish aos-common all ""
fi

# ---- aos-agent ------------------------------------------------------------------------------
if want aos-agent; then
    binary_package aos-agent 8 "shared-LVM node agent: runs the LVM commands of one host"
    install -D -m 0644 "$ROOT/deploy/systemd/aos-agent.service" "$s/lib/systemd/system/aos-agent.service"
    # Vendor drop-ins: inert where nova-compute or cinder-volume is not installed.
    for unit in nova-compute cinder-volume; do
        install -D -m 0644 "$ROOT/deploy/systemd/$unit.service.d/aos-agent.conf" \
            "$s/lib/systemd/system/$unit.service.d/aos-agent.conf"
    done
    install -D -m 0644 "$ROOT/deploy/lvm/lvm.conf.kill-command" \
        "$s/usr/share/doc/aos-agent/examples/lvm.conf.kill-command"
    install -m 0644 "$ROOT/docs/agent.md" "$ROOT/docs/operations.md" "$ROOT/docs/packaging.md" \
        "$s/usr/share/doc/aos-agent/"
    # The unit's StateDirectory= makes it at start; made here too for `aos-agent check` before.
    install -d -m 0700 "$s/var/lib/aos-agent"
    finish aos-agent "$ARCH" "$(shlibs "$s/usr/bin/aos-agent")"
fi

# ---- aos-controller -------------------------------------------------------------------------
if want aos-controller; then
    binary_package aos-controller 8 "shared-LVM controller: routes volume requests to the node agents"
    install -D -m 0644 "$ROOT/deploy/systemd/aos-controller.service" "$s/lib/systemd/system/aos-controller.service"
    install -m 0644 "$ROOT/docs/architecture.md" "$ROOT/docs/rpc-api.md" "$ROOT/docs/packaging.md" \
        "$s/usr/share/doc/aos-controller/"
    finish aos-controller "$ARCH" "$(shlibs "$s/usr/bin/aos-controller")"
fi

# ---- aosctl ---------------------------------------------------------------------------------
if want aosctl; then
    binary_package aosctl 8 "admin CLI for shared-LVM volumes, agents, jobs and locks"
    install -m 0644 "$ROOT/docs/cli.md" "$s/usr/share/doc/aosctl/"
    finish aosctl "$ARCH" "$(shlibs "$s/usr/bin/aosctl")"
fi

# ---- the Cinder driver: wheel, then the same files as a .deb ------------------------------------
if want python3-aos-cinder-driver || want wheel; then
    PY=/usr/bin/python3
    # The PEP 517 hook in-process (Debian's python3-setuptools + python3-wheel, no network), on a
    # copy so that the tree gets no build/ or egg-info, with the one version in its pyproject.toml.
    cp -r "$ROOT/deploy/cinder" "$WORK/cinder-src"
    find "$WORK/cinder-src" \( -name __pycache__ -o -name build -o -name '*.egg-info' \) -prune -exec rm -rf {} +
    sed -i "s/^version *= *\".*\"/version = \"$VERSION\"/" "$WORK/cinder-src/pyproject.toml"
    grep -qx "version = \"$VERSION\"" "$WORK/cinder-src/pyproject.toml" || die "no version line in deploy/cinder/pyproject.toml"
    mkdir -p "$WORK/wheel"
    (cd "$WORK/cinder-src" && "$PY" -c 'import sys; from setuptools import build_meta as b; b.build_wheel(sys.argv[1])' \
        "$WORK/wheel" >"$WORK/wheel.log" 2>&1) || { cat "$WORK/wheel.log" >&2; die "wheel build failed"; }
    whl=("$WORK"/wheel/*.whl)
    [[ -f "${whl[0]}" ]] || die "no wheel built"
    if want wheel; then
        rm -f "$out"/cinder_sharedlvm_driver-*.whl
        cp "${whl[0]}" "$out/"
        log "$(basename "${whl[0]}")"
        built+=("$out/$(basename "${whl[0]}")")
    fi
    if want python3-aos-cinder-driver; then
        stage python3-aos-cinder-driver
        # A pure wheel installs by unpacking it into the site directory (purelib).
        mkdir -p "$s/usr/lib/python3/dist-packages"
        "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
            "${whl[0]}" "$s/usr/lib/python3/dist-packages"
        find "$s/usr/lib/python3/dist-packages" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
        # dpkg owns these files, not pip: RECORD would let pip uninstall them behind dpkg's back.
        rm -f "$s"/usr/lib/python3/dist-packages/*.dist-info/RECORD
        echo dpkg >"$(echo "$s"/usr/lib/python3/dist-packages/*.dist-info)/INSTALLER"
        install -m 0644 "$ROOT/deploy/cinder/README.md" "$s/usr/share/doc/python3-aos-cinder-driver/"
        finish python3-aos-cinder-driver all ""
    fi
fi

printf '%s\n' "${built[@]}"
