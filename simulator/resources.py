"""Where the shipped profiles, model cards, traces and scenarios live.

An installed wheel carries them inside the package (``simulator/_data``); a source
checkout or an editable install keeps them at the top of the project. Both are searched so
that a name such as ``groq3-lpx`` resolves from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from simulator.errors import ScenarioError, did_you_mean

__all__ = [
    "data_root",
    "fidelity_figures_dir",
    "find_model",
    "find_profile",
    "list_models",
    "list_profiles",
    "resolve_file",
]

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_root() -> Path:
    """The folder holding ``hardware_profiles/``, ``workloads/`` and ``scenarios/``."""
    bundled = _PACKAGE_DIR / "_data"
    if (bundled / "hardware_profiles").is_dir():
        return bundled
    return _PACKAGE_DIR.parent


def fidelity_figures_dir() -> Path:
    """The shipped published figures that ``tokenfactory validate`` reproduces."""
    return data_root() / "benchmarks" / "fidelity"


def list_profiles() -> list[Path]:
    return sorted((data_root() / "hardware_profiles").glob("*.yaml"))


def list_models() -> list[Path]:
    return sorted((data_root() / "workloads" / "models").glob("*.yaml"))


def _find_named(name: str, folder: Path, what: str, file: str | Path | None, key: str) -> Path:
    as_path = Path(name)
    if as_path.suffix in (".yaml", ".yml"):
        return resolve_file(name, file, key)
    candidate = folder / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = [p.stem for p in folder.glob("*.yaml")]
    raise ScenarioError(
        file,
        key,
        f"the name of a {what} in {folder.name}/ ({', '.join(sorted(known))}) "
        "or a path to a YAML file",
        name,
        did_you_mean(name, known),
    )


def find_profile(name: str, file: str | Path | None = None, key: str = "system") -> Path:
    return _find_named(name, data_root() / "hardware_profiles", "hardware profile", file, key)


def find_model(name: str, file: str | Path | None = None, key: str = "model") -> Path:
    return _find_named(name, data_root() / "workloads" / "models", "model card", file, key)


def resolve_file(path: str | Path, file: str | Path | None = None, key: str = "path") -> Path:
    """Resolve a path written in a scenario.

    Tried in order: absolute as given; next to the scenario file; the working directory;
    the project's data root (so ``workloads/traces/...`` works from anywhere).
    """
    given = Path(path)
    candidates = [given] if given.is_absolute() else []
    if not given.is_absolute():
        if file is not None:
            candidates.append(Path(file).resolve().parent / given)
        candidates.append(Path.cwd() / given)
        candidates.append(data_root() / given)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ScenarioError(file, key, "an existing file (relative to the scenario, the working "
                        "directory or the project)", str(path))
