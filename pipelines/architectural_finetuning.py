"""The `architectural_finetuning` pipeline: data to a promoted, ONNX-exported model."""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.config.cache_policy import CachePolicy

from archft.runconfig import RunConfig
from steps.build_supernet import build_supernet
from steps.caching import code_version
from steps.evaluate import evaluate
from steps.export_onnx import export_onnx
from steps.finetune import finetune as finetune_step
from steps.ingest import data_version, ingest
from steps.model_card import model_card
from steps.promote import promote
from steps.search import search as search_step
from steps.select_model import select_model
from steps.validate import validate
from steps.vanilla_baseline import vanilla_baseline

MODEL_NAME = "archft-classifier"
MODEL = Model(name=MODEL_NAME, license="Apache-2.0", tags=["archft"],
              description="An image classifier from architectural fine-tuning: a pretrained base "
                          "whose scoped layers were searched, then fine-tuned on the target data.")
# Besides each step's own source, parameters and inputs: the source of archft and steps/.
CACHE_POLICY = CachePolicy(cache_func=code_version)


@pipeline(name="architectural_finetuning", model=MODEL, cache_policy=CACHE_POLICY)
def architectural_finetuning(data: dict, space: dict, search: dict, finetune: dict,
                             validation: dict | None = None, vanilla: bool = True) -> None:
    """ingest -> validate -> build_supernet -> search -> finetune -> select_model ->
    export_onnx -> evaluate -> model_card, promote, with the vanilla baseline beside search
    and finetune; `select_model` ships the better of the two on validation (a tie: the
    cheaper).

    The arguments are the sections of an `archft.runconfig.RunConfig` (a run configuration's
    `parameters`), checked here as a whole; each step gets its section in full.
    """
    config = RunConfig.from_dict({"data": data, "space": space, "search": search,
                                  "finetune": finetune, "validation": validation or {},
                                  "vanilla": vanilla}).to_dict()
    version = data_version(config["data"])
    ingest_step = ingest if version is not None else ingest.with_options(enable_cache=False)
    dataset, manifest = ingest_step(data=config["data"], version=version)
    checked, _ = validate(dataset=dataset, manifest=manifest, **config["validation"])
    supernet_init = build_supernet(dataset=dataset, space=config["space"], after=checked)
    result = search_step(supernet_init=supernet_init, dataset=dataset, search=config["search"])
    model = finetune_step(search_result=result, dataset=dataset, finetune=config["finetune"])
    baseline = (vanilla_baseline(supernet_init=supernet_init, dataset=dataset,
                                 finetune=config["finetune"]) if config["vanilla"] else None)
    # Never worse than its own baseline: the better on validation ships (a tie: the cheaper).
    shipped, selection = (select_model(model=model, vanilla_model=baseline)
                          if baseline is not None else (model, None))
    onnx_model = export_onnx(model=shipped, dataset=dataset)
    evaluation = evaluate(onnx_model=onnx_model, shipped_model=shipped, search_result=result,
                          dataset=dataset, model=model, vanilla_model=baseline,
                          selection=selection)
    model_card(evaluation=evaluation, search_result=result, supernet_init=supernet_init)
    promote(evaluation=evaluation)
