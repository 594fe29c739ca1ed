"""The one exception a user sees for bad input.

Every check in the project raises :class:`ScenarioError` with the file, the key path, what
was expected and what was found, so the command line can print one paragraph and exit 2
instead of a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ScenarioError", "did_you_mean"]


class ScenarioError(ValueError):
    """Bad input: a scenario, profile, model card or trace that cannot be used as written."""

    def __init__(
        self,
        file: str | Path | None,
        key: str,
        expected: str,
        got: object,
        hint: str = "",
    ) -> None:
        self.file = str(file) if file is not None else "<scenario>"
        self.key = key
        self.expected = expected
        self.got = got
        self.hint = hint
        super().__init__(self._message())

    def __reduce__(self) -> tuple[type[ScenarioError], tuple[object, ...]]:
        # a sweep or validate worker's bad input reaches the parent as itself, not as a
        # broken process pool
        return type(self), (self.file, self.key, self.expected, self.got, self.hint)

    def _message(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        text = f"{where}: expected {self.expected}, got {_show(self.got)}."
        if self.hint:
            text += f" {self.hint}"
        return text


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' Did you mean X?' suffix when one of ``choices`` is close to ``word``, else ''."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}?" if close else ""
