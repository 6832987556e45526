"""A declared source's replay answered whole by a simulator (``replay.answer`` in its defs.yaml)::

    replay:
      file: fng_documented_example.json          # still its recording (the standard tests' day)
      answer: ingestion_pipelines.replay.fng:answer

where one recording cannot serve what the replay must (today's run, any backfill, the demo, the
control-plane tests: every day of a daily index). The simulator is a function
``answer(request, dataset, payload) -> Response`` building the whole answer, error bodies included,
from the request, the dataset's state (its clock, the test switches of its own dataset part) and
the recorded payload (`declared_replay.RecordedPayload`): the recorded records are served for what
they cover, over the model, so the declaration's ``expect`` (its check, its bad record) holds as
for a recorded-only replay. A per-request record list is the simpler `RecordedPayload.selector`;
this is for answers that are more than a list of records (alternative.me's error bodies are
200s with ``metadata.error``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ingestion_pipelines.sources.declared_simulator import load_callable


def load_answer(source) -> Callable[..., Any] | None:
    """The simulator a declared source's replay names (``module:function``), or None."""
    path = (source.spec.replay or {}).get("answer")
    if not path:
        return None
    return load_callable(str(path), f"{source.worker_id}: replay.answer")
