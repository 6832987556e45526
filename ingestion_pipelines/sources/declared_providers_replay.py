"""The replay of a declared source's other providers (`providers:` with a `replay` each): every
provider's recording served at its real path (a list of per-symbol objects, as Vietcap's chart
API answers, narrowed to the `symbols` the request's body asks for; anything else whole), under a prefix of its own
(``/<worker_id>/<provider>``), and the provider's ``<provider>_base_url`` setting pointed there
(``INGEST_<WORKER>__<PROVIDER>_BASE_URL``, printed by `ingest replay`, in the compose overlay)::

    providers:
      vietcap:
        base_url: "{settings.vietcap_base_url}"
        replay: {file: vietcap_gap_chart_VN30_2025-12-03_05.json}   # in the folder's data/
"""

from __future__ import annotations

import json
from typing import Any

from ingestion_pipelines.replay.routes import ReplayRequest, Response, route, setting_path
from ingestion_pipelines.sources.declared_providers import ProviderSpec


def _recorded(body: bytes):
    recorded = json.loads(body)

    def serve(request: ReplayRequest, _dataset: Any) -> Response:
        asked = _asked_symbols(request)
        if asked is None or not isinstance(recorded, list):
            return Response(200, body, {"Content-Type": "application/json"})
        chosen = [i for i in recorded if isinstance(i, dict) and i.get("symbol") in asked]
        return Response(200, json.dumps(chosen).encode(), {"Content-Type": "application/json"})

    return serve


def _asked_symbols(request: ReplayRequest) -> set[str] | None:
    try:
        asked = request.json()
    except ValueError:
        return None
    symbols = asked.get("symbols") if isinstance(asked, dict) else None
    return {str(s) for s in symbols} if isinstance(symbols, list) else None


def register_providers(source) -> list[str]:
    """Serve the recording of each of `source`'s other providers that declares one; their names."""
    served = []
    for name, declared in source.spec.providers.items():
        other = ProviderSpec.model_validate(declared)
        if other.replay is None:
            continue
        body = (source.folder / "data" / other.replay["file"]).read_bytes()
        prefix = f"/{source.worker_id}/{name}{other.replay.get('base_path', '')}"
        route(prefix + other.request.path, other.request.method)(_recorded(body))
        setting_path(source.worker_id, f"{name}_base_url", prefix)
        served.append(name)
    return served
