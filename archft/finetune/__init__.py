"""Stage 2: weight fine-tuning of a searched architecture, and the vanilla baseline. Imports
`archft.engine` and what lies below it."""

from archft.finetune.finetune import INITS, FinetuneConfig, build_model, load_model, run_finetune

__all__ = ["INITS", "FinetuneConfig", "build_model", "load_model", "run_finetune"]
