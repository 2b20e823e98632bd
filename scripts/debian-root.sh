# A clean Debian 12 root to try things in, as a new machine would have it. Sourced (after
# scripts/lib.sh) by scripts/fresh-check and scripts/debian-root; never executed.
#
# One place builds it, so the README's two commands (fresh-check) and the Debian package
# (tests/integration/test_deb.py through scripts/debian-root) are tried on the same machine:
# mmdebstrap --variant=apt with BASE_PACKAGES (the packages a `debian:12` host starts from), plus
# only the host's apt and pip configuration and CA bundle, so apt and pip reach the same registries.
#
#   root_tarball            print the cached tarball of the base root, building it when missing
#                           (.cache/debian-root/<suite>-<hash of what goes in>.tar; rm it to rebuild)
#   root_create DIR         unpack a root into DIR, configure it and mount /proc, /sys, /dev, /tmp,
#                           /run; records what it mounted for root_destroy
#   in_root COMMAND...      run in the root with a clean environment and no stdin
#   root_destroy            stop what still runs inside, unmount, remove DIR (unless KEEP is set)
#
# Needs root (chroot and mounts). The root shares the host's network: a server started inside
# listens on the host's 127.0.0.1.

# shellcheck shell=bash

ROOT_SUITE="bookworm"
ROOT_BASE_PACKAGES="python3,python3-venv,git,ca-certificates,curl"
ROOT_CACHE="${CACHE}/debian-root"
ROOT=""
ROOT_MOUNTED=()

root_tarball() {
    local key tarball log
    [[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap, chroot and mounts); run it as root"
    command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap
    # Rebuilt when what goes into it changes; the apt sources pin the mirror's snapshot.
    key="$( { printf '%s\n' "$ROOT_SUITE" "$ROOT_BASE_PACKAGES"
              cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true
            } | sha256sum | cut -c1-12)"
    tarball="${ROOT_CACHE}/${ROOT_SUITE}-${key}.tar"
    if [[ ! -f "$tarball" ]]; then
        mkdir -p "$ROOT_CACHE"
        log="${ROOT_CACHE}/mmdebstrap.log"
        say "building a clean ${ROOT_SUITE} root (mmdebstrap --variant=apt, ${ROOT_BASE_PACKAGES}); log: ${log}"
        retry "mmdebstrap ${ROOT_SUITE} (Debian packages from the mirror in /etc/apt)" \
            mmdebstrap --quiet --variant=apt --include="$ROOT_BASE_PACKAGES" "$ROOT_SUITE" "${tarball%.tar}.part.tar" \
            >"$log" 2>&1
        mv "${tarball%.tar}.part.tar" "$tarball"
    fi
    printf '%s\n' "$tarball"
}

# Every process whose root directory is inside $ROOT: what a test or a server left running.
processes_inside() {
    local link pid
    [[ -n "$ROOT" ]] || return 0
    for link in /proc/[0-9]*/root; do
        pid="${link#/proc/}"; pid="${pid%/root}"
        [[ "$(readlink "$link" 2>/dev/null)" == "$ROOT"* ]] && printf '%s\n' "$pid"
    done
    return 0
}

mount_into_root() {   # mount_into_root TYPE SOURCE TARGET [OPTIONS]
    local type="$1" source="$2" target="${ROOT}$3" options="${4:-}"
    mkdir -p "$target"
    if [[ "$type" == bind ]]; then
        mount --rbind "$source" "$target"
        mount --make-rslave "$target"
    else
        mount -t "$type" ${options:+-o "$options"} "$source" "$target"
    fi
    ROOT_MOUNTED+=("$target")
}

# The mounts root_create made, innermost first, for a root_destroy in another process.
root_mounts_file() { printf '%s\n' "${ROOT}.mounts"; }

root_create() {
    local path tarball
    ROOT="$1"
    tarball="$(root_tarball)"
    mkdir -p "$ROOT"
    tar -C "$ROOT" -xf "$tarball"

    # Configuration only: how apt and pip reach their registries, and the CA bundle they trust.
    for path in /etc/apt/sources.list /etc/apt/sources.list.d /etc/apt/apt.conf.d /etc/apt/auth.conf.d \
                /etc/pip.conf /etc/xdg/pip /root/.config/pip /root/.pip; do
        [[ -e "$path" ]] || continue
        mkdir -p "${ROOT}$(dirname "$path")"
        rm -rf "${ROOT}${path}"
        cp -a "$path" "${ROOT}${path}"
    done
    # A host with sources in deb822 files (debian.sources) would otherwise list them twice.
    if [[ -e /etc/apt/sources.list.d/debian.sources && ! -e /etc/apt/sources.list ]]; then
        rm -f "${ROOT}/etc/apt/sources.list"
    fi
    cp -L /etc/ssl/certs/ca-certificates.crt "${ROOT}/etc/ssl/certs/ca-certificates.crt"
    cp -L /etc/resolv.conf "${ROOT}/etc/resolv.conf" 2>/dev/null || true
    # What every real machine has and no package provides: the Debian installer and container
    # runtimes write /etc/hosts and /etc/hostname; mmdebstrap writes neither.
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tfresh-check\n' >"${ROOT}/etc/hosts"
    printf 'fresh-check\n' >"${ROOT}/etc/hostname"

    # The root is a mount point on any real machine or container: tools that make mount namespaces
    # (unshare, ip netns exec) refuse a chroot whose / is not one.
    mount --bind "$ROOT" "$ROOT"
    ROOT_MOUNTED+=("$ROOT")
    mount --make-private "$ROOT"
    mount_into_root proc proc /proc
    mount_into_root sysfs sysfs /sys
    # A container runtime gives its container the cgroup hierarchy; a systemd manager (the tests
    # start a user manager) exits without a word where /sys/fs/cgroup is empty.
    mount_into_root bind /sys/fs/cgroup /sys/fs/cgroup
    mount_into_root bind /dev /dev
    mount_into_root tmpfs tmpfs /tmp mode=1777
    mount_into_root tmpfs tmpfs /run mode=0755
    printf '%s\n' "${ROOT_MOUNTED[@]}" >"$(root_mounts_file)"
}

# in_root [NAME=VALUE...] COMMAND... — run in the root as a new user's login would: a clean
# environment (nothing of this shell's leaks in) and no stdin.
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" </dev/null
}

root_destroy() {
    local pids mount i
    [[ -n "$ROOT" ]] || return 0
    if [[ ${#ROOT_MOUNTED[@]} -eq 0 && -f "$(root_mounts_file)" ]]; then
        mapfile -t ROOT_MOUNTED <"$(root_mounts_file)"
    fi
    mapfile -t pids < <(processes_inside)
    if [[ ${#pids[@]} -gt 0 ]]; then
        say "stopping ${#pids[@]} process(es) still running in the root: ${pids[*]}"
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 1
    fi
    for ((i = ${#ROOT_MOUNTED[@]} - 1; i >= 0; i--)); do
        mount="${ROOT_MOUNTED[$i]}"
        umount -R "$mount" 2>/dev/null || umount -lR "$mount" 2>/dev/null \
            || say "warning: could not unmount ${mount}"
    done
    ROOT_MOUNTED=()
    if [[ -n "${KEEP:-}" ]]; then
        say "kept the root in ${ROOT} (KEEP is set)"
    elif findmnt -rn -o TARGET | grep -q "^${ROOT}"; then
        say "warning: something is still mounted under ${ROOT}; not removing it"
    else
        rm -rf "$ROOT" "$(root_mounts_file)"
    fi
}
