"""Atomic artifact writes and safe checkpoint reads.

Every artifact goes through `atomic_write_bytes`: written to a temporary file in the same
directory, fsynced, then `os.replace`d over the target, so a crash leaves the old file or the new
one, never half of either. Checkpoints are read with safetensors or `torch.load(weights_only=True)`:
no user-supplied file is ever unpickled with arbitrary globals.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from archft.core.errors import WeightsError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` atomically (temporary file + fsync + rename).

    Args:
        path: destination; its parent directory is created if missing.
        data: the bytes to write.

    Returns:
        The destination as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes UTF-8 text atomically; see `atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes `obj` as indented, key-ordered JSON atomically; see `atomic_write_bytes`."""
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def save_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                     metadata: dict[str, str] | None = None) -> Path:
    """Saves a flat tensor dict as safetensors, atomically.

    Args:
        path: destination file.
        tensors: name -> tensor; made contiguous and moved to the CPU first.
        metadata: optional string metadata stored in the file header.

    Returns:
        The destination as a Path.
    """
    from safetensors.torch import save

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write_bytes(path, save(flat, metadata=metadata))


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Loads a state dict from a safetensors file or a `weights_only` torch file.

    A torch file that is a checkpoint dictionary with a `state_dict` or `model` entry is unwrapped.

    Args:
        path: a `.safetensors` file, or a `.pt`/`.pth`/`.bin` file saved with `torch.save`.

    Returns:
        name -> tensor on the CPU.

    Raises:
        WeightsError: the file is missing, unreadable, would need arbitrary unpickling, or holds
            no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any decoding failure is the file's fault
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"cannot read weights file {path}: {reason}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return state
