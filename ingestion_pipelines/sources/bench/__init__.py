"""The engine's benchmark endpoint (`/bench/eod`): a replay route only, no worker."""
