"""Image files to uint8 pixels, and uint8 batches to another size.

Every image file archft reads is decoded here, once per file per process that needs its pixels
(the pipeline's ingest step; a streamed folder's loader), and `decoded_images` counts them, so
a run can show that no step decodes what an earlier one already holds.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from archft.core.errors import DataError

_DECODED = [0]  # image files decoded by this process


def decoded_images() -> int:
    """Image files decoded by this process so far."""
    return _DECODED[0]


@dataclass(frozen=True)
class Decoded:
    """One decoded image file.

    Attributes:
        pixels: uint8 RGB (3, size, size).
        width: the file's width.
        height: the file's height.
        channels: the file's bands (1 grey, 3 RGB, 4 RGBA, ...).
    """

    pixels: torch.Tensor
    width: int
    height: int
    channels: int


def unreadable_reason(error: DataError) -> str:
    """The reason part of `decode`'s error (what a manifest row keeps)."""
    return str(error).split(": ", 1)[-1]


def decode(path: str | Path, size: int, data: bytes | None = None) -> Decoded:
    """Decodes an image file to uint8 RGB (3, size, size): shorter side resized to `size`
    (bilinear, antialiased), then centre-cropped.

    Args:
        path: the image file (named in errors).
        size: output side.
        data: the file's bytes, if already read.

    Raises:
        DataError: the file is not a readable image (a truncated file fails too: every pixel
            is read).
    """
    from PIL import Image, UnidentifiedImageError

    _DECODED[0] += 1
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            im.load()
            width, height, channels = im.width, im.height, len(im.getbands())
            im = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"corrupt or unreadable image {path}: {reason}") from None
    scale = size / min(width, height)
    w, h = max(size, round(width * scale)), max(size, round(height * scale))
    im = im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (w - size) // 2, (h - size) // 2
    im = im.crop((left, top, left + size, top + size))
    arr = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
    return Decoded(torch.from_numpy(arr), width, height, channels)


def decode_image(path: str | Path, size: int, data: bytes | None = None
                 ) -> tuple[torch.Tensor, int, int]:
    """`decode`, as (pixels, original width, original height)."""
    d = decode(path, size, data)
    return d.pixels, d.width, d.height


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 (N, C, H, W) images to size x size, in chunks."""
    if x.shape[-2:] == (size, size):
        return x.contiguous()
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, x.shape[0], chunk):
        y = F.interpolate(x[i:i + chunk].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True)
        out[i:i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out
