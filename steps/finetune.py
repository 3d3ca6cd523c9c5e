"""Step `finetune`: stage 2, fine-tune the searched architecture inside the scope."""

from __future__ import annotations

from typing import Annotated

from zenml import log_metadata, step

from archft.core import rundirs
from archft.data import Dataset
from archft.finetune import FinetuneConfig, run_finetune
from archft.space import Architecture
from steps.artifacts import ModelDir, SearchResult, counting_decodes, fresh_workdir


@step
def finetune(search_result: SearchResult, dataset: Dataset, finetune: dict
             ) -> Annotated[ModelDir, "model"]:
    """Materialises the winning architecture (remapped pretrained weights, or the searched
    supernet weights with `init: supernet`) and fine-tunes it; all else stays frozen.

    Args:
        search_result: from `search`.
        dataset: from `ingest`.
        finetune: `archft.finetune.FinetuneConfig` fields (steps, lr, init, ...).
    """
    config = FinetuneConfig.from_dict({**finetune, "vanilla": False})
    arch = Architecture.load(search_result.path / rundirs.SEARCH.architecture)
    out = fresh_workdir("model")
    with counting_decodes():
        m = run_finetune(arch, dataset, dataset.config, config, out,
                         search_dir=search_result.path)
    log_metadata({k: m[k] for k in rundirs.MODEL_METRICS} | {
        "architecture": " ".join(m["architecture"])})
    return ModelDir(out)
