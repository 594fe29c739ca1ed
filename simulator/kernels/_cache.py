"""Keep numba's on-disk kernel caches consistent with the kernel sources as a whole.

numba keys a cached kernel on the file stamp of its own module only. A kernel in one
module that calls a kernel in another (ranks.py into step.py) is compiled with the callee
inlined, so after the callee's module changes the caller's cached copy still loads and
charges the old costs, silently. The kernel modules are one compilation unit in effect:
their caches are stamped with a digest of all their sources and dropped together when it
changes. A read-only install caches elsewhere (numba's per-user directory), where the
files it is keyed on are only ever replaced together by a reinstall.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

STAMP_NAME = "kernel-sources.sha256"
CACHE_SUFFIXES = (".nbi", ".nbc")


def sources_digest(package_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def drop_stale_caches(package_dir: Path) -> bool:
    """Delete the compiled kernels beside ``package_dir``'s sources if any source changed
    since they were stamped; True when it did."""
    digest = sources_digest(package_dir)
    cache_dir = package_dir / "__pycache__"
    stamp = cache_dir / STAMP_NAME
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass  # no stamp yet: whatever is cached predates it
    try:
        cache_dir.mkdir(exist_ok=True)
        for path in cache_dir.iterdir():
            if path.suffix in CACHE_SUFFIXES:
                path.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:
        return False  # read-only: numba caches in its per-user directory instead
    return True


drop_stale_caches(Path(__file__).parent)
