"""The local stand-ins of every source, together: served by `ingest replay` (`serve`), the feeds'
ports (`feeds`), and the compose overlay that runs them beside the stack (`compose`)."""
