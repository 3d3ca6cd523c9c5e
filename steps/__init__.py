"""ZenML steps, one per file, each a thin wrapper over one `archft` function (issue 5)."""
