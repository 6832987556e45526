"""A mempool.space-compatible API (``/api``): the four answers of one recorded poll.

``/v1/fees/recommended``, ``/mempool`` and ``/v1/difficulty-adjustment`` as JSON, byte for byte
from their recordings; ``/blocks/tip/height`` as ``text/plain``, a bare integer, as the real API
answers. Tests replace an answer through ``dataset.chain_answers[path]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingestion_pipelines.replay.routes import (
    ReplayRequest,
    Response,
    dataset_part,
    read_data,
    route,
)
from ingestion_pipelines.sources.declared_family import serve_hooked
from ingestion_pipelines.sources.mempool.chain import ChainPoll

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

API = "/mempool/api"
FEES_PATH = API + "/v1/fees/recommended"
MEMPOOL_PATH = API + "/mempool"
TIP_HEIGHT_PATH = API + "/blocks/tip/height"
DIFFICULTY_PATH = API + "/v1/difficulty-adjustment"
JSON = "application/json"
TEXT = "text/plain"

RECORDED = {
    FEES_PATH: ("v1_fees_recommended.json", JSON),
    MEMPOOL_PATH: ("mempool.json", JSON),
    TIP_HEIGHT_PATH: ("blocks_tip_height_957697.txt", TEXT),
    DIFFICULTY_PATH: ("v1_difficulty_adjustment_height957697.json", JSON),
}


class ChainAnswers(dict):
    """The body and content type served at each path of the API."""

    def __init__(self) -> None:
        super().__init__(
            {path: (read_data(name).strip(), kind) for path, (name, kind) in RECORDED.items()}
        )

    def serve(self, path: str, recording: str) -> None:
        """Serve the recorded file ``recording`` at ``path`` (its content type kept)."""
        self[path] = (read_data(recording).strip(), self[path][1])


@dataset_part("chain_answers")
def chain_answers(_dataset: ReplayDataset) -> ChainAnswers:
    """The mempool.space state of a replay dataset."""
    return ChainAnswers()


serve_hooked(ChainPoll, API)  # every worker declared with the poll hook


@route(FEES_PATH, "GET")
@route(MEMPOOL_PATH, "GET")
@route(TIP_HEIGHT_PATH, "GET")
@route(DIFFICULTY_PATH, "GET")
def chain_answer(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    """The answer recorded at the request's path."""
    body, kind = dataset.chain_answers[request.path]
    return Response(200, body, {"Content-Type": kind})
