"""The compiled kernels on disk are dropped together when any kernel source changes."""

from __future__ import annotations

from pathlib import Path

import simulator.kernels as kernels
from simulator.kernels._cache import STAMP_NAME, drop_stale_caches, sources_digest


def _package(root: Path) -> Path:
    (root / "step.py").write_text("def cost():\n    return 1.0\n")
    (root / "ranks.py").write_text("from step import cost\n")
    cache = root / "__pycache__"
    cache.mkdir()
    return cache


def _compiled(cache: Path) -> set[str]:
    for name in ("ranks.cost-1.py312.nbi", "ranks.cost-1.py312.1.nbc", "ranks.cpython-312.pyc"):
        (cache / name).write_bytes(b"x")
    return {p.name for p in cache.iterdir()}


def test_a_change_to_a_callee_drops_the_callers_compiled_copy(tmp_path: Path) -> None:
    cache = _package(tmp_path)
    _compiled(cache)
    assert drop_stale_caches(tmp_path)  # no stamp yet: what is cached is of unknown age
    assert sorted(p.name for p in cache.iterdir()) == [STAMP_NAME, "ranks.cpython-312.pyc"]
    assert (cache / STAMP_NAME).read_text() == sources_digest(tmp_path)

    kept = _compiled(cache)
    assert not drop_stale_caches(tmp_path)  # sources unchanged: the compiled copies stay
    assert {p.name for p in cache.iterdir()} == kept

    (tmp_path / "step.py").write_text("def cost():\n    return 2.0\n")  # ranks.py untouched
    assert drop_stale_caches(tmp_path)
    assert sorted(p.name for p in cache.iterdir()) == [STAMP_NAME, "ranks.cpython-312.pyc"]


def test_a_renamed_source_counts_as_a_change(tmp_path: Path) -> None:
    _package(tmp_path)
    before = sources_digest(tmp_path)
    (tmp_path / "ranks.py").rename(tmp_path / "layout.py")
    assert sources_digest(tmp_path) != before


def test_a_cache_that_cannot_be_written_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "step.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").write_text("a file where the directory would be")
    assert not drop_stale_caches(tmp_path)


def test_importing_the_kernels_stamps_their_cache() -> None:
    package = Path(kernels.__file__).parent
    stamp = package / "__pycache__" / STAMP_NAME
    assert stamp.read_text() == sources_digest(package)
