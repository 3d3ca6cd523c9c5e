"""Step `model_card`: the HTML page of a run that a person reads in the dashboard."""

from __future__ import annotations

from typing import Annotated

from zenml import step
from zenml.types import HTMLString

from archft.core import rundirs
from archft.export.card import render_card
from steps.artifacts import SearchResult, SupernetInit


@step
def model_card(evaluation: dict, search_result: SearchResult, supernet_init: SupernetInit
               ) -> Annotated[HTMLString, "model_card"]:
    """What shipped and why, both models' accuracy, cost and latency, the architecture decision
    by decision, the heat map and Pareto view, and the data's fingerprint and DVC hash
    (`archft.export.card`). It belongs to the run's model version, like every artifact of the
    pipeline.

    Args:
        evaluation: from `evaluate`.
        search_result: from `search` (architecture.json and the plots).
        supernet_init: from `build_supernet` (the base's own candidate per decision).
    """
    space = supernet_init.space
    base = {d.layer: d.candidates[d.base] if d.base is not None else None
            for d in space.decisions}
    plots = {}
    for name, title in ((rundirs.SEARCH.pareto, "reward against MAdds of every scored subnet"),
                        (rundirs.SEARCH.heatmap, "the controller's choices over the search")):
        path = search_result.path / name
        if path.is_file():
            plots[title] = path.read_bytes()
    return HTMLString(render_card(evaluation, search_result.json(rundirs.SEARCH.architecture),
                                  base, plots))
