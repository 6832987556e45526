"""Configuration of the workers: the worker catalogue and its typed settings (`workers`) and the
config chain that resolves them, highest layer first (`chain`). Process-wide variables are
`core.settings`; a run's launch config is `sources.launch`."""
