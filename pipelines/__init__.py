"""ZenML pipelines: wiring of the steps in `steps/` only (issue 5)."""
