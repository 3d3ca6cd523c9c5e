"""Step `promote`: production if the new version beats the current one, else staging."""

from __future__ import annotations

from typing import Annotated

from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ModelStages

from archft.core import rundirs

# The accuracy of the artefact that is deployed: the ONNX export's, in onnxruntime.
METRIC = rundirs.PROMOTION_METRIC
# Metadata from `evaluate` copied onto the model version, so that a version whose steps all came
# from the cache still carries its numbers.
MODEL_METADATA = rundirs.EVALUATION_METRICS


def decide(new: float, current_name: str | None, current: float | None) -> tuple[str, str]:
    """(stage, reason): production only for a strictly better test accuracy."""
    if current_name is None:
        return "production", f"no production version yet; {METRIC} {new:.4f}"
    if current is None:
        return "production", (f"production version {current_name} has no {METRIC} to compare "
                              f"with; {METRIC} {new:.4f}")
    if new > current:
        return "production", (f"{METRIC} {new:.4f} beats production version {current_name} "
                              f"({current:.4f})")
    return "staging", (f"{METRIC} {new:.4f} does not beat production version {current_name} "
                       f"({current:.4f})")


@step(enable_cache=False)
def promote(evaluation: dict) -> Annotated[dict, "promotion"]:
    """Stages this run's version of the pipeline's model (`archft-classifier`).

    Never cached: the decision depends on which version is in production now, not only on this
    step's inputs (it takes well under a second).
    """
    model = get_step_context().model
    client = Client()
    try:
        current = client.get_model_version(model.name, ModelStages.PRODUCTION)
    except KeyError:
        current = None
    this = model.number
    current_value = None
    if current is not None and current.number != this:
        current_value = current.run_metadata.get(METRIC)
    new = float(evaluation[METRIC])
    if current is not None and current.number == this:
        stage, reason = "production", "already in production"
    else:
        stage, reason = decide(new, current and str(current.number), current_value)
    # The numbers first: a production version must always carry the metric it is compared by.
    model.log_metadata({k: evaluation[k] for k in MODEL_METADATA if evaluation.get(k) is not None}
                       | {"promotion": {"stage": stage, "reason": reason}})
    model.set_stage(stage, force=True)
    result = {"stage": stage, "reason": reason, "model": model.name, "version": this,
              METRIC: new, "previous_production": current.number if current else None,
              "previous_production_" + METRIC: current_value}
    log_metadata({"stage": stage, "reason": reason})
    return result
