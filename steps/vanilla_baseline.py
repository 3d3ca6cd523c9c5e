"""Step `vanilla_baseline`: last-k fine-tuning of the unmodified base, same scope and budget."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from archft.architecture import Architecture
from archft.finetune import FinetuneConfig, run_finetune
from steps.artifacts import ModelDir, SupernetInit, fresh_workdir
from steps.build_supernet import space_from
from steps.ingest import load_ingested


@step
def vanilla_baseline(supernet_init: SupernetInit, dataset: dict, finetune: dict
                     ) -> Annotated[ModelDir, "vanilla_model"]:
    """The baseline the two-stage model must beat. It needs no search, so a new search budget
    leaves it cached.

    Args:
        supernet_init: from `build_supernet` (the space: base, scope, weights).
        dataset: from `ingest`.
        finetune: the same fine-tuning settings as `finetune` (init does not apply).
    """
    config = FinetuneConfig.from_dict({**finetune, "vanilla": True, "init": "pretrained"})
    data, data_config = load_ingested(dataset)
    space = space_from(supernet_init.json("space.json"))
    arch = Architecture.of(space, space.base_architecture or [0] * space.num_decisions)
    out = fresh_workdir("vanilla")
    m = run_finetune(arch, data, data_config, config, out)
    log_metadata({"val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
                  "steps": m["steps"]})
    return ModelDir(out)
