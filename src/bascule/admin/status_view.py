"""`bascule status`: the admin API's view of the node, as text for a terminal."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]

COLUMNS = (
    ("target", "<", 22),
    ("state", "<", 9),
    ("weight", ">", 6),
    ("in flight", ">", 9),
    ("req/s", ">", 8),
    ("p50 ms", ">", 7),
    ("p99 ms", ">", 7),
    ("errors", ">", 7),
    ("health", "<", 8),
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    if days:
        return f"{days}d{hour}h"
    if hours:
        return f"{hours}h{minute:02d}m"
    return f"{minute}m{second:02d}s" if minutes else f"{second}s"


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(values: list[str]) -> str:
    return "  ".join(
        f"{v:{align}{width}}" for v, (_, align, width) in zip(values, COLUMNS, strict=True)
    )


def render(status: dict[str, Any], upstreams: dict[str, Any]) -> str:
    """The node in a few lines, then a table per upstream."""
    config = status.get("config") or {}
    reloads = status.get("reloads", {})
    last = status.get("last_reload")
    uptime = _duration(status["uptime_seconds"])
    lines = [
        f"Bascule {status['version']} · pid {status['pid']} · up {uptime}"
        f" · {status['workers']['reporting']} worker(s) · {config.get('file', '?')}",
        f"reloads: {reloads.get('ok', 0)} ok, {reloads.get('failed', 0)} failed"
        + ("" if last is None else f" (last {'ok' if last['ok'] else 'failed'})")
        + (f" · runtime overrides: {len(status['overrides'])}" if status.get("overrides") else ""),
    ]
    window = upstreams.get("window_seconds", 0)
    for upstream in upstreams["upstreams"]:
        lines += ["", f"upstream {upstream['name']} (rates over {window:g} s)"]
        lines.append("  " + _row([name for name, _, _ in COLUMNS]))
        for t in upstream["targets"]:
            health = t["health"]["status"] if t["health"] else "-"
            lines.append(
                "  "
                + _row(
                    [
                        t["name"],
                        t["state"],
                        str(t["weight"]),
                        str(t["in_flight"]),
                        _number(t["requests_per_second"], 1),
                        _number(t["p50_ms"], 1),
                        _number(t["p99_ms"], 1),
                        f"{100 * t['error_rate']:.1f}%",
                        health,
                    ]
                )
            )
    return "\n".join(lines)
