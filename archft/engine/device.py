"""Device and precision: where training runs and in which number format.

bf16 autocast and channels-last on CUDA (cuDNN's fast layout for convs, no loss scaling needed);
plain float32 on the CPU.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from archft.core.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" picks CUDA when available; otherwise the named device.

    Raises:
        ConfigError: CUDA asked for but not available, or an unknown device name.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but no CUDA GPU is available")
    return device


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (no loss scaling needed); a no-op context elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(net: nn.Module, device: torch.device) -> nn.Module:
    """Moves a network, channels-last on CUDA (cuDNN's fast layout for convs)."""
    if device.type == "cuda":
        return net.to(device, memory_format=torch.channels_last)
    return net.to(device)
