"""A parsed YAML file that remembers where every key and value came from.

PyYAML's `safe_load` forgets positions and silently keeps the last of two equal keys.
`Document` composes the node graph instead, so any key path - a pydantic `loc` or a
cross-check's path - can be turned into file:line:column, and duplicate keys become
errors rather than surprises.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bascule.config.problem import ConfigError, Problem

__all__ = ["KEY", "Document", "Loc", "format_loc"]

Loc = tuple[int | str, ...]
"""A key path, as pydantic reports it: ("routes", 1, "match", "host")."""

KEY = "[key]"
"""The loc element pydantic appends when a mapping's key (not its value) is invalid."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class _Place:
    key: Node | None  # None for list items and the root
    value: Node


@dataclass(frozen=True)
class Document:
    """The data from one YAML file plus the position of everything in it."""

    filename: str
    data: object
    source: str
    _places: dict[Loc, _Place] = field(repr=False)
    duplicates: list[Problem] = field(default_factory=list)

    @classmethod
    def parse(cls, source: str, filename: str) -> "Document":
        """Parse YAML text; raises ConfigError for syntax errors and empty files."""
        loader = yaml.SafeLoader(source)
        try:
            root = loader.get_single_node()
            if root is None:
                raise ConfigError(
                    [Problem(filename, None, None, "", "the file is empty; define `listeners`")],
                    source,
                )
            duplicates = list(_duplicate_keys(root, (), filename))
            data = loader.construct_document(root)
        except yaml.MarkedYAMLError as error:
            raise ConfigError([_syntax_problem(error, filename)], source) from None
        except yaml.YAMLError as error:
            raise ConfigError([Problem(filename, None, None, "", str(error))], source) from None
        finally:
            loader.dispose()
        places: dict[Loc, _Place] = {(): _Place(None, root)}
        _index(root, (), places)
        return cls(filename, data, source, places, duplicates)

    def problem(
        self, loc: Loc, message: str, suggestion: str | None = None, *, at_key: bool = False
    ) -> Problem:
        """A Problem at `loc`: its key if `at_key`, else its value.

        A loc that is not in the file (a missing key) points at the nearest enclosing
        mapping, which is where the key has to be added.
        """
        if loc and loc[-1] == KEY:
            loc, at_key = loc[:-1], True
        known = loc
        while known not in self._places:
            known, at_key = known[:-1], False
        place = self._places[known]
        node = place.key if at_key and place.key is not None else place.value
        mark = node.start_mark
        return Problem(
            self.filename, mark.line + 1, mark.column + 1, format_loc(loc), message, suggestion
        )

    def line(self, loc: Loc) -> int | None:
        """The line a key path starts on, for messages that mention another place."""
        place = self._places.get(loc)
        return None if place is None else place.value.start_mark.line + 1

    def scalar(self, loc: Loc) -> str | None:
        """The text of a scalar exactly as written, before YAML gave it a type."""
        place = self._places.get(loc)
        return place.value.value if place and isinstance(place.value, ScalarNode) else None


def format_loc(loc: Loc) -> str:
    """`routes[1].match.host` style; keys that are not plain words are quoted."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("_", "a").replace("-", "a").isalnum() and part.isascii():
            text += f".{part}" if text else part
        else:
            text += f'["{part}"]'
    return text


def _key_of(node: Node) -> int | str:
    """The loc element for a mapping key node: ints stay ints, everything else is text."""
    if node.tag == "tag:yaml.org,2002:int":
        try:
            return int(node.value, 0)
        except ValueError:
            return str(node.value)
    return str(node.value) if isinstance(node, ScalarNode) else "<complex key>"


def _children(node: Node) -> Iterator[tuple[int | str, Node | None, Node]]:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if key.tag != _MERGE_TAG:
                yield _key_of(key), key, value
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield index, None, item


def _index(node: Node, loc: Loc, places: dict[Loc, _Place], depth: int = 0) -> None:
    # Anchors can make the graph recursive; real configs are nowhere near this deep.
    if depth > 64:
        return
    for part, key, value in _children(node):
        child = (*loc, part)
        places[child] = _Place(key, value)
        _index(value, child, places, depth + 1)


def _duplicate_keys(node: Node, loc: Loc, filename: str, depth: int = 0) -> Iterator[Problem]:
    if depth > 64:
        return
    seen: dict[int | str, Node] = {}
    for part, key, value in _children(node):
        if key is not None and part in seen:
            first = seen[part].start_mark.line + 1
            mark = key.start_mark
            yield Problem(
                filename,
                mark.line + 1,
                mark.column + 1,
                format_loc((*loc, part)),
                f"duplicate key (first set on line {first}); YAML would silently keep this one",
                "remove one of them",
            )
        elif key is not None:
            seen[part] = key
        yield from _duplicate_keys(value, (*loc, part), filename, depth + 1)


def _syntax_problem(error: yaml.MarkedYAMLError, filename: str) -> Problem:
    mark = error.problem_mark or error.context_mark
    detail = " ".join(part for part in (error.context, error.problem) if part)
    return Problem(
        filename,
        mark.line + 1 if mark else None,
        mark.column + 1 if mark else None,
        "",
        f"YAML syntax error: {detail}",
        "check the indentation, and quote values that contain ': ', '#', '{' or '['",
    )
