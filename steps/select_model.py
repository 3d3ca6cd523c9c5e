"""Step `select_model`: ship the two-stage model or its vanilla baseline, chosen on validation."""

from __future__ import annotations

import shutil
from typing import Annotated

from zenml import log_metadata, step

from archft.core import rundirs
from archft.export import choose_model
from steps.artifacts import ModelDir, fresh_workdir


@step
def select_model(model: ModelDir, vanilla_model: ModelDir) -> tuple[
        Annotated[ModelDir, "shipped_model"], Annotated[dict, "selection"]]:
    """The better of the two on the validation split; a tie within the split's noise goes to
    the cheaper (`archft.export.choose_model`). Export, evaluation and promotion then handle
    the shipped model, so a run never ships a model its own vanilla baseline measurably beat.

    Args:
        model: the two-stage model, from `finetune`.
        vanilla_model: the baseline, from `vanilla_baseline`.

    Returns:
        The chosen model directory (a copy) and the decision: `chosen`, `reason`, `tie`,
        `val_difference`, `val_ci95`, `val_p`.
    """
    selection = choose_model(model.json(rundirs.MODEL.metrics),
                             vanilla_model.json(rundirs.MODEL.metrics))
    source = model if selection["chosen"] == "two-stage" else vanilla_model
    out = fresh_workdir("shipped")
    shutil.copytree(source.path, out, dirs_exist_ok=True)
    log_metadata({k: v for k, v in selection.items() if v is not None})
    return ModelDir(out), selection
