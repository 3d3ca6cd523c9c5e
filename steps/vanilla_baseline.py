"""Step `vanilla_baseline`: last-k fine-tuning of the unmodified base, same scope and budget."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from archft.core import rundirs
from archft.data import Dataset
from archft.finetune import FinetuneConfig, run_finetune
from archft.space import Architecture
from steps.artifacts import ModelDir, SupernetInit, counting_decodes, fresh_workdir


@step
def vanilla_baseline(supernet_init: SupernetInit, dataset: Dataset, finetune: dict
                     ) -> Annotated[ModelDir, "vanilla_model"]:
    """The baseline the two-stage model must beat. It needs no search, so a new search budget
    leaves it cached.

    Args:
        supernet_init: from `build_supernet` (the space: base, scope, weights).
        dataset: from `ingest`.
        finetune: the same fine-tuning settings as `finetune` (init does not apply).
    """
    config = FinetuneConfig.from_dict({**finetune, "vanilla": True, "init": "pretrained"})
    space = supernet_init.space
    arch = Architecture.of(space, space.base_architecture or [0] * space.num_decisions)
    out = fresh_workdir("vanilla")
    with counting_decodes():
        m = run_finetune(arch, dataset, dataset.config, config, out)
    log_metadata({k: m[k] for k in rundirs.MODEL_METRICS})
    return ModelDir(out)
