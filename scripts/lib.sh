# Shared helpers for scripts/agent, scripts/test and scripts/servers. Sourced, never executed.
#
# Everything here is idempotent and safe to run with no terminal (CI runs with no stdin):
# apt never prompts, every network step is retried three times with back-off, and a failure names
# the package or step that failed.

# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REPO_ROOT}/.venv"
CACHE="${REPO_ROOT}/.cache"
SCRIPT_NAME="scripts/$(basename "$0")"

say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }

# retry DESCRIPTION COMMAND... — three tries, 5 s then 15 s apart; the last failure is fatal.
retry() {
    local what="$1"; shift
    local attempt delay
    for attempt in 1 2 3; do
        if "$@"; then
            return 0
        fi
        if [[ $attempt -lt 3 ]]; then
            delay=$((attempt * attempt * 5))
            say "${what} failed (attempt ${attempt}/3); retrying in ${delay}s"
            sleep "$delay"
        fi
    done
    die "${what} failed 3 times; see the messages above"
}

# as_root COMMAND... — run as root directly, through sudo, or explain why it cannot.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@" || sudo "$@"
    else
        die "need root for: $* (run this script as root, or install sudo)"
    fi
}

# apt's own chatter goes to stderr so that functions printing a result on stdout stay clean.
apt_env() { as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a "$@" >&2; }

_APT_UPDATED=0
apt_update_once() {
    [[ $_APT_UPDATED -eq 1 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: these scripts support Debian and Ubuntu"
    say "apt-get update"
    retry "apt-get update (package lists from the Debian/Ubuntu mirrors)" \
        apt_env apt-get update -qq --error-on=any
    _APT_UPDATED=1
}

host_has_package() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == *"ok installed"* ]]
}

# apt_install PACKAGE... — install those not installed yet; never prompts.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        host_has_package "$pkg" || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    apt_update_once
    say "apt-get install ${missing[*]}"
    retry "apt-get install ${missing[*]}" apt_env apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
}

# python_for_venv — print a Python ≥ 3.11 that can create virtual environments (installs
# python3-venv when Debian's split-out ensurepip is missing).
python_for_venv() {
    local py
    py="$(command -v python3 || true)"
    if [[ -z "$py" ]]; then
        apt_install python3 python3-venv
        py="$(command -v python3)" || die "python3 not found even after installing it"
    fi
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "normagent needs Python 3.11 or newer; $py is $("$py" -V 2>&1)"
    if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        # Debian and Ubuntu ship ensurepip separately; without it `python3 -m venv` fails.
        apt_install python3-venv
    fi
    printf '%s\n' "$py"
}

# c_sources_digest — a line that changes when a C source of the tree or the C toolchain changes.
c_sources_digest() {
    find "${REPO_ROOT}/normagent" "${REPO_ROOT}/plugins" -name '*.c' -type f -print0 | sort -z \
        | xargs -0 -r sha256sum
    printf 'cc=%s python-headers=%s\n' "$(command -v cc || echo none)" \
        "$(python3 -c 'import sysconfig, os; print(os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null || echo none)"
}

# ensure_venv STAMP_NAME PIP_ARGS... — create .venv if needed and run `pip install PIP_ARGS` unless
# the stamp says that exact install was already done for the current pyproject.toml.
#
# Installs are editable (the tree is the code), so only pyproject.toml (dependencies, packages,
# entry points) and the C sources of the compiled scanners (built in place by pip) decide whether
# pip must run again: a second start skips pip entirely.
ensure_venv() {
    local stamp_name="$1"; shift
    local py stamp want
    if [[ ! -x "${VENV}/bin/python" ]] || ! "${VENV}/bin/python" -c 'import sys' >/dev/null 2>&1; then
        py="$(python_for_venv)"
        say "creating ${VENV} with $("$py" -V 2>&1)"
        rm -rf "${VENV}"
        "$py" -m venv "${VENV}" || die "python3 -m venv ${VENV} failed"
    fi
    stamp="${VENV}/.normagent-${stamp_name}.stamp"
    # The compiled scanners are built by pip too: their C sources and whether a compiler is there
    # (a first install without one runs the pure-Python readers; one made later builds them).
    want="$( { printf '%s\n' "$*"; cat "${REPO_ROOT}/pyproject.toml"; c_sources_digest; } | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "${VENV}/bin/python" -c 'import normagent' >/dev/null 2>&1; then
        return 0
    fi
    say "pip install $*"
    retry "pip install $* (from PyPI)" \
        "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    printf '%s\n' "$want" >"$stamp"
}
