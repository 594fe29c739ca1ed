"""``results.jsonl``: one line per finished variant, written the moment it finishes.

An append-only log rather than one file written at the end, so that a sweep killed after
its ninetieth variant keeps ninety results and a re-run starts at the ninety-first. Each
line is flushed and fsynced before the next variant's result is accepted; a crash can
therefore only leave the last line half written, which the next run cuts off and redoes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from simulator.errors import ScenarioError

__all__ = ["RESULTS_FILE", "ResultsLog", "SweepResult"]

RESULTS_FILE = "results.jsonl"


@dataclass(frozen=True)
class SweepResult:
    """One variant's summary (the names of summary.json), run now or read back."""

    index: int
    name: str
    key: str
    overrides: dict[str, Any]
    summary: dict[str, Any]
    resumed: bool = False    # read from an earlier run's results.jsonl, not simulated now

    def record(self) -> dict[str, Any]:
        return {"key": self.key, "index": self.index, "name": self.name,
                "overrides": self.overrides, "summary": self.summary}


class ResultsLog:
    """The results file of one output folder: read what is done, append what finishes."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RESULTS_FILE
        self._handle: IO[str] | None = None

    def __enter__(self) -> ResultsLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8", newline="\n")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finished(self) -> dict[str, dict[str, Any]]:
        """Summaries of the variants already done, by key.

        A half-written last line is cut off the file here, before anything is appended,
        so the next line starts on a line of its own. Any other unreadable line means the
        file is not one this command wrote, and is refused rather than overwritten.
        """
        if not self.path.is_file():
            return {}
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(complete)
        done: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(data[:complete].decode("utf-8", "replace").splitlines(),
                                      start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not (isinstance(record, dict) and isinstance(record.get("key"), str)
                    and isinstance(record.get("summary"), dict)):
                raise ScenarioError(self.path, f"line {number}", "a JSON object with key and "
                                    "summary (a line written by tokenfactory sweep)",
                                    line[:80], "Use another --out folder, or remove the file "
                                    "to start the sweep afresh.")
            done[record["key"]] = record["summary"]
        return done

    def append(self, result: SweepResult) -> None:
        if self._handle is None:
            raise RuntimeError("ResultsLog.append outside its with block")
        self._handle.write(json.dumps(result.record(), ensure_ascii=False, allow_nan=False)
                           + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
