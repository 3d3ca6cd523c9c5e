"""Step `search`: stage 1, the architecture search on the supernet (GPU when there is one)."""

from __future__ import annotations

from typing import Annotated

from safetensors.torch import load_file
from zenml import log_metadata, step

from archft.search import SearchConfig, run_search
from steps.artifacts import SearchResult, SupernetInit, workdir
from steps.build_supernet import space_from
from steps.ingest import load_ingested


@step
def search(supernet_init: SupernetInit, dataset: dict, search: dict
           ) -> Annotated[SearchResult, "search_result"]:
    """Trains the supernet while the controller learns which subnet to pick; stops early once
    the controller settled and its reward plateaued.

    An interrupted search (crash, Ctrl-C, a pre-empted node) resumes from its checkpoint when
    the step runs again with the same inputs.

    Args:
        supernet_init: from `build_supernet`.
        dataset: from `ingest`.
        search: `archft.search.SearchConfig` fields (strategy, budget, ...).
    """
    config = SearchConfig.from_dict(search)
    data, data_config = load_ingested(dataset)
    space = space_from(supernet_init.json("space.json"))
    out = workdir("search")
    s = run_search(space, data, data_config, config, out, resume=True,
                   init=load_file(str(supernet_init.path / "supernet.safetensors")))
    metadata = {"subnets_in_space": s["num_subnets"], "early_stop_step": s["stop_step"],
                "stopped_early": s["stopped_early"], "search_cost_saved": s["cost_saved"],
                "architecture": " ".join(s["architecture"]),
                "supernet_val_accuracy": s["val_accuracy"], "search_seconds": s["wall_seconds"]}
    log_metadata({k: v for k, v in metadata.items() if v is not None})
    return SearchResult(out)
