"""What one run returns: the summary and one record per request."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RequestRecords", "Result", "write_summary"]


class RequestRecords:
    """One numpy array per column, one row per request (struct of arrays)."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self._columns = columns

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["_columns"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    @property
    def names(self) -> list[str]:
        return list(self._columns)

    def to_csv(self, path: str | Path) -> Path:
        """Write every record; times with 9 decimals (ns), NaN as an empty field."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = self.names
        cols = [self._columns[n] for n in names]
        formats = ["%.9f" if c.dtype.kind == "f" else "%d" for c in cols]
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(",".join(names) + "\n")
            for row in range(len(self)):
                fields = []
                for col, fmt in zip(cols, formats, strict=True):
                    value = col[row]
                    fields.append("" if fmt == "%.9f" and math.isnan(value) else fmt % value)
                handle.write(",".join(fields) + "\n")
        return path


def write_summary(summary: dict[str, Any], path: str | Path) -> Path:
    """``summary`` as summary.json, sorted and without NaN, so equal runs give equal bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_plain(summary), indent=2, sort_keys=True, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Result:
    """A finished simulation: ``summary`` (the names of summary.json) and ``requests``."""

    def __init__(self, summary: dict[str, Any], requests: RequestRecords) -> None:
        self.summary = summary
        self.requests = requests

    def to_json(self, path: str | Path) -> Path:
        """Write summary.json; the same scenario and seed give the same bytes."""
        return write_summary(self.summary, path)

    def json(self) -> str:
        return json.dumps(_plain(self.summary), indent=2, sort_keys=True, allow_nan=False)
