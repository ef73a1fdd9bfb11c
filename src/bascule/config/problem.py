"""What went wrong in a config file, where, and what to do about it.

Every error and warning is a `Problem` that names the file, line, column and key path, so
an operator can jump straight to it; `ConfigError` carries all of them at once so one run
of `bascule check` shows everything to fix.
"""

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ConfigError", "Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. `line` and `column` are 1-based; None when there is no place to point."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        place = ":".join(str(part) for part in (self.file, self.line, self.column) if part)
        where = f"{place}: {self.path}" if self.path else place
        hint = f"; {self.suggestion}" if self.suggestion else ""
        return f"{where}: {self.message}{hint}"

    @property
    def sort_key(self) -> tuple[str, int, int]:
        """File order, so a report reads top to bottom like the file."""
        return (self.file, self.line or 0, self.column or 0)


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every error found, in file order."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = sorted(problems, key=lambda problem: problem.sort_key)
        self._source_lines = source.splitlines() if source is not None else []
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        files = sorted({problem.file for problem in self.problems})
        heading = f"{', '.join(files)}: {count} error{'s' if count != 1 else ''}"
        return "\n".join([heading, *(self._describe(problem) for problem in self.problems)])

    def _describe(self, problem: Problem) -> str:
        """The problem, then the offending source line with a caret under the column."""
        text = str(problem)
        if problem.line is None or not 0 < problem.line <= len(self._source_lines):
            return text
        gutter = f"{problem.line:>5} | "
        excerpt = f"{gutter}{self._source_lines[problem.line - 1]}"
        if problem.column is None:
            return f"{text}\n{excerpt}"
        caret = " " * (len(gutter) - 2) + "| " + " " * (problem.column - 1) + "^"
        return f"{text}\n{excerpt}\n{caret}"
