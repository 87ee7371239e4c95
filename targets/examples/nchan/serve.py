"""Run nginx + nchan (a pub/sub server rtcap did not write) in the foreground on a loopback port.

    python -m rtcap.targets.examples.nchan.serve --port 0

renders nginx.conf.template into a temporary prefix directory, starts
`nginx -c PREFIX/nginx.conf -p PREFIX/ -e stderr -g 'daemon off;'` as a child process, waits until it
answers, and prints (flushed):

    nchan example listening on http://127.0.0.1:PORT (pid NGINX_MASTER_PID)
    nchan example worker pid WORKER_PID holds the connections; prefix PREFIX

SIGTERM or SIGINT is passed on to nginx (fast shutdown); this script exits with nginx's exit status and
removes the prefix directory. Exit status 69 means nginx or the nchan module is not installed
(targets/examples/install.sh installs them). Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from rtcap.targets.examples.launcher import HOST, Launcher, Missing, missing

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx.conf.template"
LABEL = "nchan example"
INSTALL_HINT = "install the Debian packages nginx and libnginx-mod-nchan (bash targets/examples/install.sh)"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_nchan_module.so",
    "/usr/lib64/nginx/modules/ngx_nchan_module.so",
    "/usr/share/nginx/modules/ngx_nchan_module.so",
    "/usr/local/nginx/modules/ngx_nchan_module.so",
)


def find_nginx(explicit: str | None = None) -> str:
    """Path of the nginx binary (PATH first: /usr/sbin is not on a normal user's PATH on Debian)."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise Missing(f"nginx binary {explicit} is not executable")
        return explicit
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise Missing(f"nginx not found: {INSTALL_HINT}")


def find_module(explicit: str | None = None) -> str:
    """Path of ngx_nchan_module.so."""
    if explicit:
        if not Path(explicit).is_file():
            raise Missing(f"nchan module {explicit} does not exist")
        return explicit
    for candidate in MODULE_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise Missing(f"the nchan module (ngx_nchan_module.so) not found: {INSTALL_HINT}")


def nofile_limit(worker_connections: int) -> int:
    """Open-file limit for the worker: room for every connection, within what this user may set."""
    wanted = worker_connections + 64
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return wanted
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def render_config(
    port: int,
    prefix: str | Path,
    module: str,
    *,
    buffer_length: int = 10,
    message_timeout: int = 60,
    worker_connections: int = 4096,
    max_message_size: str = "1m",
    log_level: str = "warn",
    template: Path = TEMPLATE,
) -> str:
    """The nginx.conf text for these settings (placeholders: upper-case names between at signs)."""
    values = {
        "PORT": str(port),
        "PREFIX": str(prefix).rstrip("/"),
        "NCHAN_MODULE": module,
        "BUFFER_LENGTH": str(buffer_length),
        "MESSAGE_TIMEOUT": str(message_timeout),
        "WORKER_CONNECTIONS": str(worker_connections),
        "RLIMIT_NOFILE": str(nofile_limit(worker_connections)),
        "MAX_MESSAGE_SIZE": max_message_size,
        "LOG_LEVEL": log_level,
    }
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    leftover = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if leftover:
        raise ValueError(f"unfilled placeholders in {template}: {leftover}")
    return text


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(word) for word in text.split()]


def answers(port: int) -> bool:
    """True when GET /healthz on the port returns 200."""
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=1)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def ready(pid: int, port: int) -> bool:
    """nginx serves once its worker runs and /healthz answers."""
    return bool(children_of(pid)) and answers(port)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run nginx + nchan on 127.0.0.1 for rtcap (see README.md).")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (default)")
    parser.add_argument("--nginx", help="nginx binary (default: found on PATH or in /usr/sbin)")
    parser.add_argument("--module", help="ngx_nchan_module.so (default: /usr/lib/nginx/modules/...)")
    parser.add_argument("--buffer-length", type=int, default=10, help="messages kept per channel (10)")
    parser.add_argument("--message-timeout", type=int, default=60, help="seconds a message is kept (60)")
    parser.add_argument("--worker-connections", type=int, default=4096, help="nginx worker_connections (4096)")
    parser.add_argument("--log-level", default="warn", help="nginx error_log level (warn)")
    parser.add_argument("--print-config", action="store_true", help="print the rendered nginx.conf and exit")
    parser.add_argument("--start-timeout", type=float, default=15.0, help="seconds to wait for nginx (15)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0-65535")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        nginx = find_nginx(args.nginx)
        module = find_module(args.module)
    except Missing as error:
        return missing(LABEL, error)

    settings = {
        "buffer_length": args.buffer_length,
        "message_timeout": args.message_timeout,
        "worker_connections": args.worker_connections,
        "log_level": args.log_level,
    }
    if args.print_config:
        print(render_config(args.port or 8080, "/tmp/PREFIX", module, **settings), end="")
        return 0

    # Signals are forwarded from here on, so the prefix directory below is removed however this ends.
    launcher = Launcher(LABEL, "nginx")
    prefix = Path(tempfile.mkdtemp(prefix="rtcap-nchan-"))
    try:
        # nginx started as root runs its worker as `nobody`, which must be able to enter the prefix.
        prefix.chmod(0o755)

        def command(port: int) -> list[str]:
            conf = prefix / "nginx.conf"
            conf.write_text(render_config(port, prefix, module, **settings))
            return [nginx, "-c", str(conf), "-p", f"{prefix}/", "-e", "stderr", "-g", "daemon off;"]

        def announce(pid: int) -> None:
            # worker_processes 1: the one worker accepts and holds every connection.
            worker = next(iter(children_of(pid)), None)
            print(f"{LABEL} worker pid {worker} holds the connections; prefix {prefix}", flush=True)

        return launcher.run(command, ready, port=args.port, start_timeout=args.start_timeout, announce=announce)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
