"""The bottom layer: errors, derived seeds, atomic I/O, config checking and the names of what
a run writes. Imports nothing of archft's."""
