"""How a target dataset is loaded: `DataConfig` and the names every part of archft shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from archft.core.config import from_plain
from archft.core.errors import ConfigError

SPLITS = ("train", "val", "test")
# Sources bundled with the installed packages (offline): scikit-learn's digits and the patch
# tasks of `archft.data.tasks`.
BUNDLED = ("digits", "photos", "textures")
PATCH_TASKS = ("photos", "textures")
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
        patches: a patch task's (`archft.data.tasks`) patches per class in train, val and test
            (None: the task's own, 120 30 60).
        patch_side: a patch task's (min, max) patch side as a fraction of the source
            photograph's shorter side (None: the task's own).
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
    patches: tuple[int, int, int] | None = None
    patch_side: tuple[float, float] | None = None

    def __post_init__(self):
        for name in ("patches", "patch_side"):  # YAML gives lists
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.patches is not None or self.patch_side is not None:
            if self.source not in PATCH_TASKS:
                raise ConfigError(f"patches and patch_side apply to the patch tasks "
                                  f"({', '.join(PATCH_TASKS)}), not to {self.source!r}")
        if self.patches is not None and not (
                isinstance(self.patches, tuple) and len(self.patches) == 3
                and all(type(v) is int and v >= 1 for v in self.patches)):
            raise ConfigError(f"patches must be three positive integers (train val test), got "
                              f"{self.patches!r}")
        if self.patch_side is not None and not (
                isinstance(self.patch_side, tuple) and len(self.patch_side) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                        for v in self.patch_side)
                and 0 < self.patch_side[0] <= self.patch_side[1] <= 1):
            raise ConfigError(f"patch_side must be two fractions 0 < min <= max <= 1, got "
                              f"{self.patch_side!r}")
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
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "DataConfig":
        """Builds a config from plain data (YAML/JSON), refusing unknown fields."""
        return from_plain(cls, data, "data")
