"""Step `finetune`: stage 2, fine-tune the searched architecture inside the scope."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from archft.architecture import Architecture
from archft.finetune import FinetuneConfig, run_finetune
from steps.artifacts import ModelDir, SearchResult, fresh_workdir
from steps.ingest import load_ingested


@step
def finetune(search_result: SearchResult, dataset: dict, finetune: dict
             ) -> Annotated[ModelDir, "model"]:
    """Materialises the winning architecture (remapped pretrained weights, or the searched
    supernet weights with `init: supernet`) and fine-tunes it; all else stays frozen.

    Args:
        search_result: from `search`.
        dataset: from `ingest`.
        finetune: `archft.finetune.FinetuneConfig` fields (steps, lr, init, ...).
    """
    config = FinetuneConfig.from_dict({**finetune, "vanilla": False})
    data, data_config = load_ingested(dataset)
    arch = Architecture.load(search_result.path / "architecture.json")
    out = fresh_workdir("model")
    m = run_finetune(arch, data, data_config, config, out, search_dir=search_result.path)
    log_metadata({"val_accuracy": m["val_accuracy"], "test_accuracy": m["test_accuracy"],
                  "architecture": " ".join(m["architecture"]), "steps": m["steps"]})
    return ModelDir(out)
