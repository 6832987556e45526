"""`vn_stocks` declared in YAML against the Python worker it replaces, on the same recording (the
listing's 26 real companies), served with a page cap and one company without a name: the same
rows stored, the same record rejected."""

from __future__ import annotations

from ingestion_pipelines.replay import routes
from ingestion_pipelines.sources.declared_replay import _handler, recorded_payload
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.sources.vndirect.stocks import VnStocks
from ingestion_pipelines.storage import tables
from ingestion_pipelines_tests.sources.staged import staged_class
from ingestion_pipelines_tests.sources.vndirect.side_by_side import rows, run

STAGED = staged_class("vn_stocks")


def test_the_declaration_stores_and_rejects_what_the_python_worker_does(
    server, tmp_path, monkeypatch
):
    payload = server.dataset.recorded[STAGED.worker_id] = recorded_payload(STAGED)
    monkeypatch.setitem(routes.ROUTES, "/staged" + vndirect.STOCKS_PATH, {"GET": _handler(STAGED)})
    book = server.dataset.vn_stocks
    assert payload.records == book.rows  # one recording
    book.page_cap = payload.page_cap = 7
    book.rows[2] = payload.records[2] = {**book.rows[2], "companyName": ""}
    python_url, yaml_url = (f"sqlite:///{tmp_path / n}.db" for n in ("python", "yaml"))
    more = {"reject_threshold": 1.0}
    python = run(VnStocks, python_url, server.url, None, None, **more)
    declared = run(STAGED, yaml_url, server.url + "/staged", None, None, **more)

    stored = rows(python_url, tables.stock)
    assert stored == rows(yaml_url, tables.stock) and len(stored) == 25
    assert python.written.inserted == declared.written.inserted == 25
    letters = [rows(u, tables.dead_letter) for u in (python_url, yaml_url)]
    assert [len(found) for found in letters] == [1, 1]
    assert letters[0][0]["payload"] == letters[1][0]["payload"]
    assert '"companyName":""' in letters[1][0]["payload"].replace(" ", "")
    pages = [r for r in server.requests if r.path.endswith(vndirect.STOCKS_PATH)]
    assert len(pages) == 2 * 4  # 7 + 7 + 7 + 5, each
