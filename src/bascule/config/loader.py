"""From a YAML file to a checked `Config`, or to a `ConfigError` listing every problem."""

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from bascule.config.checks import Sections, check
from bascule.config.document import Document
from bascule.config.listener import Listener
from bascule.config.messages import problems_from
from bascule.config.model import Config
from bascule.config.problem import ConfigError, Problem
from bascule.config.route import Route
from bascule.config.upstream import Upstream

__all__ = ["LoadedConfig", "load", "load_text"]

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class LoadedConfig:
    """A config that passed every check, with the warnings it still deserves.

    `path` is the file it came from, so a reload can read it again; None from `load_text`.
    """

    config: Config
    warnings: list[Problem]
    path: Path | None


def load(path: str | Path) -> LoadedConfig:
    """Read, validate and cross-check a config file; raises ConfigError on any error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ConfigError([Problem(str(path), None, None, "", f"cannot read: {reason}")]) from None
    return _load(text, str(path), Path(path))


def load_text(text: str, filename: str = "<string>") -> LoadedConfig:
    """`load` for YAML already in memory; `filename` is only used in messages."""
    return _load(text, filename, None)


def _load(text: str, filename: str, path: Path | None) -> LoadedConfig:
    doc = Document.parse(text, filename)
    problems = list(doc.duplicates)
    try:
        config = Config.model_validate(doc.data)
    except ValidationError as error:
        problems += problems_from(error, Config, doc)
        sections = _salvage(doc.data)
    else:
        sections = Sections.of(config)
    findings = check(sections, doc)
    problems += findings.errors
    if problems:
        raise ConfigError(problems, text)
    return LoadedConfig(config, findings.warnings, path)


def _salvage(data: object) -> Sections:
    """The entries that validate on their own, so cross-checks can still run on them."""
    root = data if isinstance(data, dict) else {}
    listeners = root.get("listeners")
    routes = root.get("routes")
    upstreams = root.get("upstreams")
    return Sections(
        [_valid(Listener, item) for item in listeners] if isinstance(listeners, list) else [],
        [_valid(Route, item) for item in routes] if isinstance(routes, list) else [],
        (
            {str(name): _valid(Upstream, item) for name, item in upstreams.items()}
            if isinstance(upstreams, dict)
            else {}
        ),
    )


def _valid(model: type[_M], data: object) -> _M | None:
    try:
        return model.model_validate(data)
    except ValidationError:
        return None
