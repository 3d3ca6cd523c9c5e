"""Target datasets: sources read once, deterministic splits, the survey a validation suite
checks, and batch loaders. Imports `archft.core` only."""

from archft.data.config import (
    BUNDLED,
    DEFAULT_MAX_RESIDENT_BYTES,
    IMAGE_EXTENSIONS,
    SPLITS,
    DataConfig,
)
from archft.data.dataset import Dataset, Record, content_hash, fingerprint, split_counts
from archft.data.images import decode_image, decoded_images, resize_uint8
from archft.data.sources import (
    COLUMNS,
    SourceRead,
    list_imagefolder,
    load_dataset,
    read_source,
)
from archft.data.splits import assign_splits, few_shot

__all__ = ["BUNDLED", "COLUMNS", "DEFAULT_MAX_RESIDENT_BYTES", "IMAGE_EXTENSIONS", "SPLITS",
           "DataConfig", "Dataset", "Record", "SourceRead", "assign_splits", "content_hash",
           "decode_image", "decoded_images", "few_shot", "fingerprint", "list_imagefolder",
           "load_dataset", "read_source", "resize_uint8", "split_counts"]
