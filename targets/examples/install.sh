#!/usr/bin/env bash
# Install the third-party servers that the worked examples in targets/examples/ run:
#   nginx + libnginx-mod-nchan (nchan pub/sub module) and websocketd;
# and redis-server, the broker of the reference target's multi-worker deployment (--broker redis).
# Idempotent: exits 0 at once when everything is already installed. Debian/Ubuntu only (apt-get).
set -euo pipefail

PACKAGES=(nginx libnginx-mod-nchan websocketd redis-server)
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so

have_all() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || return 1
    done
    [ -x /usr/sbin/nginx ] && [ -f "$NCHAN_MODULE" ] && command -v websocketd >/dev/null && command -v redis-server >/dev/null
}

if command -v dpkg-query >/dev/null 2>&1 && have_all; then
    echo "targets/examples: already installed: ${PACKAGES[*]}"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "targets/examples/install.sh: apt-get is not available on this machine." >&2
    echo "Install these (Debian package names) with your system's package manager: ${PACKAGES[*]}" >&2
    echo "nginx needs the nchan module (ngx_nchan_module.so); websocketd is a single Go binary; redis-server is Redis." >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "targets/examples/install.sh: run as root (or install sudo): apt-get needs it." >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
# --no-install-recommends: no extra nginx modules or documentation. The examples never use the system
# nginx service: they run their own nginx with their own config on a loopback port. (On a machine with
# an init system the package starts that service on port 80; stop it with `systemctl disable --now nginx`
# if you do not want it.) The same holds for redis-server: rtcap starts its own on a free loopback port; stop the
# packaged service with `systemctl disable --now redis-server` if you do not want it.
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

if ! have_all; then
    echo "targets/examples/install.sh: installed ${PACKAGES[*]} but nginx, $NCHAN_MODULE, websocketd or redis-server is still missing." >&2
    exit 1
fi
echo "targets/examples: installed ${PACKAGES[*]}"
