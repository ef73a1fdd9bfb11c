"""`bascule run | check | reload | status | schema | demo | cache purge`."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bascule import __version__, config

if TYPE_CHECKING:
    from bascule.admin.client import AdminClient

EXIT_CONFIG = 2
PID_FILE_HELP = "default: <state_dir>/bascule-<hash of the config path>.pid"


def _load(path: str) -> config.LoadedConfig | None:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return None


def _print_warnings(loaded: config.LoadedConfig) -> None:
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    from bascule.runtime.server import Unsupported, check_supported

    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    _print_warnings(loaded)
    try:
        check_supported(loaded.config)
    except Unsupported as exc:
        print(f"{args.config}: valid, but `bascule run` will refuse it: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.config}: OK")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config.json_schema(), indent=2))
    return 0


def _pid_file(args: argparse.Namespace, loaded: config.LoadedConfig) -> Path:
    """--pid-file, else one per config file in the state directory: instances of different
    files never collide, and `bascule reload -c FILE` finds the one serving FILE."""
    if args.pid_file:
        return Path(args.pid_file)
    digest = hashlib.sha1(str(Path(args.config).resolve()).encode()).hexdigest()[:12]
    return Path(loaded.config.state_dir) / f"bascule-{digest}.pid"


def cmd_run(args: argparse.Namespace) -> int:
    from bascule.runtime.server import Unsupported, check_supported
    from bascule.runtime.supervisor import Supervisor, read_pid

    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    _print_warnings(loaded)
    log = logging.getLogger("bascule")
    try:
        check_supported(loaded.config)
    except Unsupported as exc:
        log.error("%s: %s", args.config, exc)
        return EXIT_CONFIG
    pid_file = _pid_file(args, loaded)
    running = read_pid(pid_file)
    if running is not None and running != os.getpid():
        log.error(
            "%s names a running Bascule (pid %d); stop it, or give this one its own --pid-file",
            pid_file,
            running,
        )
        return 1
    try:
        return Supervisor(args.config, loaded, pid_file).run()
    except OSError as exc:
        log.error("%s", exc)
        return 1


def cmd_reload(args: argparse.Namespace) -> int:
    """Check the file as `bascule check` does, then ask the running instance to reload."""
    from bascule.runtime.supervisor import read_pid

    status = cmd_check(args)
    if status != 0:
        print("not reloaded: the running config stays", file=sys.stderr)
        return status
    loaded = _load(args.config)
    assert loaded is not None
    pid_file = _pid_file(args, loaded)
    pid = read_pid(pid_file)
    if pid is None:
        print(f"no running Bascule found through {pid_file}", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"reload asked of pid {pid}")
    return 0


def _admin(args: argparse.Namespace, doing: str) -> AdminClient | None:
    """The running instance's admin listener, as the config file names it."""
    from bascule.admin.client import AdminClient

    loaded = _load(args.config)
    if loaded is None:
        return None
    if loaded.config.admin is None:
        print(f"{args.config}: {doing} asks the admin listener; add admin.bind", file=sys.stderr)
        return None
    return AdminClient(loaded.config.admin)


def _ask(admin: AdminClient, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """One admin call; (0, None) after saying on stderr that nobody answered."""
    from bascule.admin.client import AdminUnreachable

    try:
        return admin.call(method, path, body)
    except AdminUnreachable as exc:
        print(exc, file=sys.stderr)
        return 0, None


def cmd_cache_purge(args: argparse.Namespace) -> int:
    """Ask the running instance, through its admin listener, to purge cache keys."""
    admin = _admin(args, "purging")
    if admin is None:
        return EXIT_CONFIG
    status, answer = _ask(admin, "POST", "/api/cache/purge", {"prefix": args.prefix})
    if status == 0:
        return 1
    if status != 200:
        print(f"purge refused: {answer.get('error', answer)}", file=sys.stderr)
        return 1
    workers = answer["workers"]
    print(
        f"purged {answer['keys']} key(s) starting with {args.prefix!r} "
        f"({workers['done']} of {workers['reporting']} worker(s))"
    )
    return 0 if workers["done"] == workers["reporting"] else 1


def cmd_status(args: argparse.Namespace) -> int:
    """The running instance's node, upstreams and targets, as its admin API sees them."""
    from bascule.admin.status_view import render

    admin = _admin(args, "status")
    if admin is None:
        return EXIT_CONFIG
    status, node = _ask(admin, "GET", "/api/status")
    if status == 200:
        status, upstreams = _ask(admin, "GET", "/api/upstreams")
    if status == 0:
        return 1
    if status != 200:
        print(f"the admin listener answered {status}", file=sys.stderr)
        return 1
    print(render(node, upstreams))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bascule.demo import run_demo

    status: int = run_demo(port=args.port)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bascule", description="A load balancer and reverse proxy."
    )
    parser.add_argument("--version", action="version", version=f"bascule {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve a config file")
    run.add_argument("-c", "--config", required=True, help="YAML config file")
    run.add_argument("--pid-file", help=PID_FILE_HELP)
    run.set_defaults(func=cmd_run)
    reload = sub.add_parser(
        "reload", help="check a config file, then have the running instance load it"
    )
    reload.add_argument("-c", "--config", required=True, help="the running instance's config file")
    reload.add_argument("--pid-file", help=PID_FILE_HELP)
    reload.set_defaults(func=cmd_reload)
    check = sub.add_parser("check", help="validate a config file; exit 2 if it has errors")
    check.add_argument("-c", "--config", required=True, help="YAML config file")
    check.set_defaults(func=cmd_check)
    schema = sub.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=cmd_schema)
    status = sub.add_parser("status", help="the running instance's targets and traffic")
    status.add_argument("-c", "--config", required=True, help="the running instance's config file")
    status.set_defaults(func=cmd_status)
    cache = sub.add_parser("cache", help="act on the running instance's caches")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    purge = cache_sub.add_parser(
        "purge", help="remove stored responses whose key starts with PREFIX (every worker)"
    )
    purge.add_argument("prefix", help='a cache key or its start, e.g. "https://shop.test/img/"')
    purge.add_argument("-c", "--config", required=True, help="the running instance's config file")
    purge.set_defaults(func=cmd_cache_purge)
    demo = sub.add_parser("demo", help="run three demo backends behind Bascule")
    demo.add_argument("--port", type=int, default=8080, help="the proxy's port (default 8080)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    status: int = args.func(args)
    return status
