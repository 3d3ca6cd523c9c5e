"""What the pipeline's cache is keyed on besides ZenML's own key.

ZenML keys a step on its own function's source, its parameters and its inputs, but not on the
code the step calls. A fix in `archft` (the search, the remapping, the data loading) or in a
helper under `steps/` (the materializers) would otherwise leave old results in the cache, so
every cached step also carries a hash of that source code.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

import archft

PACKAGES = (Path(archft.__file__).parent, Path(__file__).parent)


def source_hash(roots: Iterable[Path]) -> str:
    """sha256 over the relative path and bytes of every `.py` file under `roots`."""
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            h.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            h.update(path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


@functools.cache
def code_version() -> str:
    """The `cache_func` of the pipeline: the hash of archft's and the steps' source."""
    return source_hash(PACKAGES)
