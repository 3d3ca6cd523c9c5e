"""Search spaces as plain data: the mutation rule over a base's scope (`SearchSpace`), the
run configuration's `SpaceConfig`, and one point of a space (`Architecture`,
`architecture.json`). Imports `archft.core` and `archft.models`."""

from archft.space.architecture import Architecture
from archft.space.space import (
    DEFAULT_EXPANSIONS,
    DEFAULT_KERNELS,
    REMAP_MODES,
    SCOPE_STAGES,
    SCOPES,
    SKIP,
    SPACE_FIELDS,
    Decision,
    SearchSpace,
    SpaceConfig,
    candidate_name,
    parse_candidate,
    previous_position,
    scope_stages,
)

__all__ = ["DEFAULT_EXPANSIONS", "DEFAULT_KERNELS", "REMAP_MODES", "SCOPES", "SCOPE_STAGES",
           "SKIP", "SPACE_FIELDS", "Architecture", "Decision", "SearchSpace", "SpaceConfig",
           "candidate_name", "parse_candidate", "previous_position", "scope_stages"]
