"""Stage 1: the architecture search (controller, strategies, early stop, the run). Imports
`archft.engine` and what lies below it."""

from archft.search.config import SAMPLINGS, STRATEGIES, SearchConfig
from archft.search.controller import Controller, reinforce_loss, update_baseline
from archft.search.earlystop import EarlyStopConfig, EarlyStopper
from archft.search.run import CHECKPOINT, SearchRun, run_search
from archft.search.strategies import Update, fair_architecture

__all__ = ["CHECKPOINT", "SAMPLINGS", "STRATEGIES", "Controller", "EarlyStopConfig",
           "EarlyStopper", "SearchConfig", "SearchRun", "Update", "fair_architecture",
           "reinforce_loss", "run_search", "update_baseline"]
