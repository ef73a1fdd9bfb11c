"""`bascule run | check | schema | demo`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from bascule import __version__, config

EXIT_CONFIG = 2


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


def cmd_run(args: argparse.Namespace) -> int:
    from bascule.net.event_loop import run
    from bascule.runtime.server import Unsupported, serve

    loaded = _load(args.config)
    if loaded is None:
        return EXIT_CONFIG
    _print_warnings(loaded)
    try:
        return run(serve(loaded.config))
    except Unsupported as exc:
        logging.getLogger("bascule").error("%s: %s", args.config, exc)
        return EXIT_CONFIG
    except OSError as exc:
        logging.getLogger("bascule").error("%s", exc)
        return 1


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
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="validate a config file; exit 2 if it has errors")
    check.add_argument("-c", "--config", required=True, help="YAML config file")
    check.set_defaults(func=cmd_check)
    schema = sub.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=cmd_schema)
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
