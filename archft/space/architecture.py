"""`architecture.json`: one searched architecture, portable and validated.

    {"format": 2, "base": "resnet18", "scope": "medium", "kernels": [3, 5], "expansions": null,
     "num_classes": 10, "weights": "imagenet", "remap": "center", "depth": [0],
     "decisions": [{"layer": "layer3.0.conv1", "candidates": ["k3", "k5"], "choice": "k5"}, ...]}

Format 2 adds `depth` (depth decisions: "skip" candidates and new block positions such as
"blocks.14+1"); a format-1 file, written before depth existed, reads as depth [0].

Loading rebuilds the space from the file's own fields and checks every decision against it, so a
file edited by hand, written for another base, or from an older space fails with the file named.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from archft.core.errors import ArchftError, ArchitectureError
from archft.core.io import atomic_write_json
from archft.space.space import SearchSpace

FORMAT = 2
READABLE_FORMATS = (1, 2)
_REQUIRED = {"format": int, "base": str, "scope": str, "kernels": list, "num_classes": int,
             "decisions": list}


@dataclass(frozen=True)
class Architecture:
    """A point of a search space: one candidate index per decision."""

    space: SearchSpace
    choices: tuple[int, ...]

    @classmethod
    def of(cls, space: SearchSpace, choices: Sequence[int]) -> "Architecture":
        """Validates `choices` against `space`."""
        return cls(space, tuple(space.validate(choices)))

    @property
    def names(self) -> list[str]:
        """Chosen candidate names, one per decision."""
        return self.space.describe(self.choices)

    def to_dict(self) -> dict[str, Any]:
        s = self.space
        return {"format": FORMAT, **s.to_dict(),
                "decisions": [{"layer": d.layer, "candidates": list(d.candidates),
                               "choice": d.candidates[c]}
                              for d, c in zip(s.decisions, self.choices)]}

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the file atomically."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "architecture",
                  space: SearchSpace | None = None) -> "Architecture":
        """Validates a parsed file; see `load`."""

        def fail(msg: str) -> ArchitectureError:
            return ArchitectureError(f"{source}: {msg}")

        if not isinstance(data, dict):
            raise fail("not a JSON object")
        for key, typ in _REQUIRED.items():
            if key not in data:
                raise fail(f"missing field {key!r}")
            if not isinstance(data[key], typ) or isinstance(data[key], bool):
                raise fail(f"field {key!r} should be a {typ.__name__}")
        if data["format"] not in READABLE_FORMATS:
            raise fail(f"format {data['format']} is not supported (this archft reads "
                       f"{', '.join(map(str, READABLE_FORMATS))})")
        if data["format"] == 1 and "depth" in data:
            raise fail("format 1 has no depth field (depth came with format 2)")
        try:
            rebuilt = SearchSpace.from_dict(data)
        except ArchftError as e:
            raise fail(str(e)) from None
        if space is not None:
            for key in ("base", "scope", "kernels", "expansions", "num_classes"):
                if getattr(space, key) != getattr(rebuilt, key):
                    raise fail(f"{key} is {getattr(rebuilt, key)!r}, expected "
                               f"{getattr(space, key)!r}")
        decisions = data["decisions"]
        if len(decisions) != rebuilt.num_decisions:
            raise fail(f"{len(decisions)} decisions, but {rebuilt.base}/{rebuilt.scope} has "
                       f"{rebuilt.num_decisions}")
        choices = []
        for i, (entry, d) in enumerate(zip(decisions, rebuilt.decisions)):
            if not isinstance(entry, dict) or not {"layer", "candidates", "choice"} <= set(entry):
                raise fail(f"decision {i} needs layer, candidates and choice")
            if entry["layer"] != d.layer:
                raise fail(f"decision {i} is layer {entry['layer']!r}, expected {d.layer!r}")
            if list(entry["candidates"]) != list(d.candidates):
                raise fail(f"{d.layer}: candidates {entry['candidates']} do not match the space's "
                           f"{list(d.candidates)}")
            if entry["choice"] not in d.candidates:
                raise fail(f"{d.layer}: unknown choice {entry['choice']!r}; candidates are "
                           f"{list(d.candidates)}")
            choices.append(d.candidates.index(entry["choice"]))
        return cls(rebuilt, tuple(choices))

    @classmethod
    def load(cls, path: str | os.PathLike, space: SearchSpace | None = None) -> "Architecture":
        """Reads and validates an `architecture.json`.

        Args:
            path: the file.
            space: if given, the file must describe this space (same base, scope, candidates).

        Returns:
            The architecture, with the space rebuilt from the file.

        Raises:
            ArchitectureError: unreadable file, bad JSON, or a mismatch with the space (the
                message names the file and the first problem).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArchitectureError(f"architecture file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ArchitectureError(f"cannot read architecture file {path}: {e}") from None
        except json.JSONDecodeError as e:
            raise ArchitectureError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        return cls.from_dict(data, str(path), space)
