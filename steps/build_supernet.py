"""Step `build_supernet`: the scoped search space and its remapped weight-sharing supernet."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from archft.core import rundirs
from archft.core.io import atomic_write_json, save_safetensors
from archft.data import Dataset
from archft.nas import build_supernet as remapped_supernet
from archft.space import SpaceConfig
from steps.artifacts import SupernetInit, fresh_workdir


@step
def build_supernet(dataset: Dataset, space: dict) -> Annotated[SupernetInit, "supernet_init"]:
    """Applies the mutation rule to the scoped blocks of the pretrained base and remaps its
    weights into the supernet (every subnet starts out computing the base's function). The
    pipeline runs it after `validate`: only validated data gets a supernet.

    Args:
        dataset: from `ingest` (its class count and image size).
        space: `archft.space.SpaceConfig` fields (base, weights, scope, kernels, ...).
    """
    s = SpaceConfig.from_dict(space).build(len(dataset.classes))
    supernet = remapped_supernet(s)
    summary = {**s.summary(),
               "trainable_parameters": sum(p.numel() for p in supernet.trainable_parameters()),
               "inert_kernel_decisions": s.inert_kernels(dataset.config.image_size)}
    out = fresh_workdir("supernet")
    save_safetensors(out / rundirs.SUPERNET.supernet, supernet.state_dict(),
                     {"format": "archft-supernet-1"})
    atomic_write_json(out / rundirs.SUPERNET.space, summary)
    log_metadata({k: summary[k] for k in ("num_decisions", "num_subnets", "log2_subnets",
                                          "trainable_parameters")}
                 | {"inert_kernel_decisions": len(summary["inert_kernel_decisions"])})
    return SupernetInit(out)
