"""Step `search`: stage 1, the architecture search on the supernet (GPU when there is one)."""

from __future__ import annotations

from typing import Annotated

from safetensors.torch import load_file
from zenml import log_metadata, step

from archft.core import rundirs
from archft.data import Dataset
from archft.search import SearchConfig, run_search
from steps.artifacts import SearchResult, SupernetInit, counting_decodes, workdir


@step
def search(supernet_init: SupernetInit, dataset: Dataset, search: dict
           ) -> Annotated[SearchResult, "search_result"]:
    """Trains the supernet while the controller learns which subnet to pick; stops early once
    the controller settled and its reward plateaued.

    An interrupted search (crash, Ctrl-C, a pre-empted node) resumes from its checkpoint when
    the step runs again with the same inputs.

    Args:
        supernet_init: from `build_supernet` (the space and its remapped weights).
        dataset: from `ingest`.
        search: `archft.search.SearchConfig` fields (strategy, budget, ...).
    """
    config = SearchConfig.from_dict(search)
    out = workdir("search")
    with counting_decodes():
        s = run_search(supernet_init.space, dataset, dataset.config, config, out, resume=True,
                       init=load_file(str(supernet_init.path / rundirs.SUPERNET.supernet)))
    log_metadata({k: s[k] for k in rundirs.SEARCH_METRICS if s.get(k) is not None}
                 | {"architecture": " ".join(s["architecture"])})
    return SearchResult(out)
