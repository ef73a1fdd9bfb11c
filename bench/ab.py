"""Two trees of Bascule under the same load: what a change costs or saves, paired.

Run from the repository root:

    .venv/bin/python bench/ab.py --base REV [--duration 5s] [--rounds 4] [--connections 64]
                                 [--profiles host,browser] [--pure] [--keep-tmp]

`REV` (any git revision) is checked out into a temporary worktree; the working tree is the
other side. Each side runs as its wheel ships it: built and unpacked into the temp dir
(the request path compiled by mypyc, where that tree's build does so), or with `--pure`
from its `src` as written. Both run with this checkout's .venv (each with its own build
first on PYTHONPATH), 1 worker, access log on, in front of the same two nginx backends, pinned like
bench/run.py (proxy on one CPU, wrk and the backends on the other). In every round each
profile runs base then working tree back to back, so the two sides of a pair see the same
machine; on a shared machine the pairs drift together, and the per-pair ratio is the
figure to read. Prints each run (req/s, proxy CPU µs per request), then per profile the
median µs/req of each side and the median of the pairs' working tree / base ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import run as harness
from run import Service

SIDES = ("base", "work")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--duration", type=harness.parse_duration, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--profiles",
        type=lambda text: harness.parse_list(text, harness.PROFILES, "profile"),
        default=harness.PROFILES,
    )
    parser.add_argument("--pure", action="store_true", help="run each tree's src, uncompiled")
    parser.add_argument("--keep-tmp", action="store_true")
    return parser.parse_args(argv)


def built(tmp: Path, side: str, tree: Path) -> Path:
    """The tree's wheel, built and unpacked under `tmp`: what `pip install` would run."""
    pip = [str(harness.REPO_DIR / ".venv" / "bin" / "python"), "-m", "pip", "--quiet"]
    wheels, target = tmp / f"{side}-wheel", tmp / f"{side}-build"
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(tree)], check=True)
    wheel = next(wheels.glob("bascule-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target


def launcher(tmp: Path, side: str, src: Path) -> Path:
    """An executable that runs `bascule` from the tree at `src`."""
    path = tmp / f"bascule-{side}"
    python = harness.REPO_DIR / ".venv" / "bin" / "python"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={src} exec {python} -m bascule "$@"\n')
    path.chmod(0o755)
    return path


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    tools, pinning, _ = harness.prepare()
    tmp = Path(tempfile.mkdtemp(prefix="bascule-ab-"))
    worktree = tmp / "base-tree"
    subprocess.run(
        ["git", "-C", str(harness.REPO_DIR), "worktree", "add", "--detach", "-q", str(worktree),
         opts.base],
        check=True,
    )  # fmt: skip
    services: list[Service] = []
    costs: dict[tuple[str, str], list[float]] = {}
    try:
        backends = [harness.start_backend(tools, n, tmp, pinning) for n in ("b1", "b2")]
        services += backends
        for backend in backends:
            harness.wait_ready(backend)
        ports = (backends[0].port, backends[1].port)
        proxies = {}
        for side, tree in (("base", worktree), ("work", harness.REPO_DIR)):
            src = tree / "src" if opts.pure else built(tmp, side, tree)
            proxy = harness.start_bascule(launcher(tmp, side, src), tmp, pinning, ports, name=side)
            services.append(proxy)
            harness.wait_ready(proxy)
            proxies[side] = proxy
        for round_no in range(1, opts.rounds + 1):
            for profile in opts.profiles:
                for side in SIDES:
                    proxy = proxies[side]
                    cmd = harness.wrk_command(
                        tools, pinning, profile, proxy.port, opts.duration, opts.connections
                    )
                    before = harness.cpu_ticks(proxy.pid)
                    result = harness.parse_wrk(*harness.run_wrk(cmd, opts.duration))
                    spent = harness.cpu_ticks(proxy.pid) - before
                    if result.error_count or not result.requests:
                        raise harness.BenchError(f"{side} {profile}: {result.error_text()}")
                    us = spent / harness.CLK_TCK * 1e6 / result.requests
                    costs.setdefault((side, profile), []).append(us)
                    print(
                        f"round {round_no} {profile:8} {side:5} {result.rps:9,.0f} req/s "
                        f"{us:7.1f} µs/req",
                        flush=True,
                    )
        print(f"\n# medians over {opts.rounds} rounds; base = {opts.base}, work = working tree")
        print("| profile | µs/req base | µs/req work | work / base, µs/req (median of pairs) |")
        print("|---|---:|---:|---:|")
        for profile in opts.profiles:
            base, work = costs["base", profile], costs["work", profile]
            pairs = [w / b for b, w in zip(base, work, strict=True)]
            print(
                f"| {profile} | {statistics.median(base):.1f} | {statistics.median(work):.1f} "
                f"| {statistics.median(pairs):.2f} |"
            )
        return 0
    except harness.BenchError as exc:
        print(f"bench/ab.py: {exc}", file=sys.stderr)
        return 1
    finally:
        harness.stop_all(services)
        subprocess.run(
            ["git", "-C", str(harness.REPO_DIR), "worktree", "remove", "--force", str(worktree)],
            check=False,
        )
        if not opts.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
