"""The `architectural_finetuning` pipeline: data to a promoted, ONNX-exported model."""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.config.cache_policy import CachePolicy

from steps.build_supernet import build_supernet
from steps.caching import code_version
from steps.evaluate import evaluate
from steps.export_onnx import export_onnx
from steps.finetune import finetune
from steps.ingest import data_version, ingest
from steps.promote import promote
from steps.search import search
from steps.validate import validate
from steps.vanilla_baseline import vanilla_baseline

MODEL_NAME = "archft-classifier"
MODEL = Model(name=MODEL_NAME, license="Apache-2.0", tags=["archft"],
              description="An image classifier from architectural fine-tuning: a pretrained base "
                          "whose scoped layers were searched, then fine-tuned on the target data.")
# Besides each step's own source, parameters and inputs: the source of archft and steps/.
CACHE_POLICY = CachePolicy(cache_func=code_version)


@pipeline(name="architectural_finetuning", model=MODEL, cache_policy=CACHE_POLICY)
def architectural_finetuning(data: dict, space: dict, search_config: dict, finetune_config: dict,
                             validation: dict | None = None, vanilla: bool = True) -> None:
    """ingest -> validate -> build_supernet -> search -> finetune -> export_onnx -> evaluate ->
    promote, with the vanilla baseline beside search and finetune.

    Args:
        data: `archft.data.DataConfig` fields (source, image_size, seed, flip, ...).
        space: `base`, `weights`, `scope` (+ `kernels`, `expansions`, `remap`).
        search_config: `archft.search.SearchConfig` fields.
        finetune_config: `archft.finetune.FinetuneConfig` fields.
        validation: arguments of the `validate` step.
        vanilla: also fine-tune the unmodified base (the baseline).
    """
    version = data_version(data)
    ingest_step = ingest if version is not None else ingest.with_options(enable_cache=False)
    dataset, manifest = ingest_step(data=data, version=version)
    checked, _ = validate(dataset=dataset, manifest=manifest, **(validation or {}))
    supernet_init = build_supernet(dataset=dataset, validation=checked, space=space)
    result = search(supernet_init=supernet_init, dataset=dataset, search=search_config)
    model = finetune(search_result=result, dataset=dataset, finetune=finetune_config)
    baseline = (vanilla_baseline(supernet_init=supernet_init, dataset=dataset,
                                 finetune=finetune_config) if vanilla else None)
    onnx_model = export_onnx(model=model, dataset=dataset)
    evaluation = evaluate(onnx_model=onnx_model, model=model, search_result=result,
                          dataset=dataset, vanilla_model=baseline)
    promote(evaluation=evaluation)
