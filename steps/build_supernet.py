"""Step `build_supernet`: the scoped search space and its remapped weight-sharing supernet."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from archft.io import atomic_write_json, save_safetensors
from archft.space import SearchSpace
from steps.artifacts import SupernetInit, fresh_workdir

SPACE_FIELDS = ("base", "weights", "scope", "kernels", "expansions", "remap")


def space_from(summary: dict) -> SearchSpace:
    """Rebuilds the space described by `space.json`."""
    return SearchSpace.from_base(**{k: summary[k] for k in SPACE_FIELDS},
                                 num_classes=summary["num_classes"])


@step
def build_supernet(dataset: dict, validation: dict, space: dict
                   ) -> Annotated[SupernetInit, "supernet_init"]:
    """Applies the mutation rule to the scoped blocks of the pretrained base and remaps its
    weights into the supernet (every subnet starts out computing the base's function).

    Args:
        dataset: from `ingest` (class count, image size).
        validation: from `validate` (the supernet is built only for validated data).
        space: `base`, `weights`, `scope` and optionally `kernels`, `expansions`, `remap`.
    """
    s = SearchSpace.from_base(**space, num_classes=len(dataset["classes"]))
    supernet = s.build_supernet()
    summary = {**s.summary(), "kernels": list(s.kernels), "validated": validation["success"],
               "trainable_parameters": sum(p.numel() for p in supernet.trainable_parameters()),
               "inert_kernel_decisions": s.inert_kernels(dataset["config"]["image_size"])}
    out = fresh_workdir("supernet")
    save_safetensors(out / "supernet.safetensors", supernet.state_dict(),
                     {"format": "archft-supernet-1"})
    atomic_write_json(out / "space.json", summary)
    log_metadata({k: summary[k] for k in ("num_decisions", "num_subnets", "log2_subnets",
                                          "trainable_parameters")}
                 | {"inert_kernel_decisions": len(summary["inert_kernel_decisions"])})
    return SupernetInit(out)
