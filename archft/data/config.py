"""How a target dataset is loaded: `DataConfig` and the names every part of archft shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from archft.core.config import from_plain
from archft.core.errors import ConfigError

SPLITS = ("train", "val", "test")
# Sources bundled with the installed packages (offline): scikit-learn's digits and the patch
# tasks of `archft.data.tasks`.
BUNDLED = ("digits", "photos", "textures")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".pbm"}
# Above this many decoded bytes an image folder is streamed from disk instead of held in memory.
DEFAULT_MAX_RESIDENT_BYTES = 2 << 30


@dataclass(frozen=True)
class DataConfig:
    """How to load a target dataset.

    Attributes:
        source: "digits", "cifar10:ROOT" or "imagefolder:PATH".
        image_size: side of the square model input.
        seed: fixes the carved splits.
        val_fraction: share of the training images carved out for validation (when the source
            has no validation split).
        test_fraction: share of all images carved out for test (when the source has no test
            split).
        download: allow downloading CIFAR-10 when it is missing.
        max_resident_bytes: image folders larger than this (decoded) are streamed from disk.
        flip: random horizontal flips in training (None: the source's default, which is off for
            digits and on otherwise; turn it off for text, digits or anything handed).
        train_per_class: keep at most this many training images per class, drawn by the seed
            (the rest are left out; validation and test are untouched): a few-shot setting,
            the data-poor case transfer learning is for (None: keep all).
    """

    source: str = "digits"
    image_size: int = 32
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    download: bool = False
    max_resident_bytes: int = DEFAULT_MAX_RESIDENT_BYTES
    flip: bool | None = None
    train_per_class: int | None = None

    def __post_init__(self):
        if self.train_per_class is not None and (
                not isinstance(self.train_per_class, int) or self.train_per_class < 1):
            raise ConfigError(f"train_per_class must be a positive integer, got "
                              f"{self.train_per_class!r}")
        if not isinstance(self.image_size, int) or not 8 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be an integer in 8..1024, got {self.image_size!r}")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ConfigError(f"{name} must be in (0, 1), got {v!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DataConfig":
        """Builds a config from plain data (YAML/JSON), refusing unknown fields."""
        return from_plain(cls, data, "data")
