"""LyngSat behind an anti-bot challenge, replayed under `/lyngsat/` (the worker's base URL is
the server's root + `/lyngsat`).

Satellite pages are the captured ones of `data/` (see `data/PROVENANCE.md`), served byte for
byte as `text/html` without a charset in the header, as LyngSat serves them (the page declares
ISO-8859-1 in its `<meta>`). Every page sits behind `browser.challenge_gate.ChallengeGate`: a
JavaScript-computed cookie, new on every visit, bound to the User-Agent, expiring. A region
index (`/lyngsat/europe.html`...) links to the satellites of that region; `extra_satellites`
serves copies of a captured page under other names (the benchmark's 200 pages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingestion_pipelines.browser.challenge_gate import ChallengeGate
from ingestion_pipelines.replay.routes import (
    ReplayRequest,
    Response,
    dataset_part,
    fallback,
    read_data,
)
from ingestion_pipelines.sources.declared_family import serve_hooked
from ingestion_pipelines.sources.lyngsat.source import SatellitePages

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

PREFIX = "/lyngsat"
CAPTURED = ("Amos-3-7", "Astra-3B")
# The default regions of the worker, each linking to captured pages (Amos 3/7 is at 4.0°W).
REGIONS = {
    "asia": ["Astra-3B"],
    "europe": ["Amos-3-7", "Astra-3B"],
    "atlantic": ["Amos-3-7"],
    "america": ["Amos-3-7"],
}
HTML = "text/html"

serve_hooked(SatellitePages, PREFIX)  # every worker declared with the satellite pages hook


@dataclass
class LyngsatReplay:
    """What the LyngSat replay serves: pages by name (without `.html`), regions, the gate."""

    pages: dict[str, bytes] = field(default_factory=dict)
    regions: dict[str, list[str]] = field(default_factory=lambda: dict(REGIONS))
    gate: ChallengeGate | None = field(default_factory=ChallengeGate)

    def add_copies(self, count: int, of: str = "Amos-3-7") -> list[str]:
        """Serve `count` copies of a captured page as `Sat-001`...; their names."""
        names = [f"Sat-{i:03d}" for i in range(1, count + 1)]
        for name in names:
            self.pages[name] = self.pages[of]
        return names


@dataset_part("lyngsat_site")
def _lyngsat(_dataset: ReplayDataset) -> LyngsatReplay:
    return LyngsatReplay(pages={name: read_data(f"{name}.html") for name in CAPTURED})


def region_page(region: str, satellites: list[str]) -> bytes:
    """A region index linking to its satellites' pages (relative links, as LyngSat's are)."""
    links = "\n".join(
        f'<tr><td><font face="Arial" size=2><a href="{name}.html">{name.replace("-", " ")}'
        "</a></td></tr>"
        for name in satellites
    )
    return (
        f"<html><head><title>LyngSat - {region.title()}</title>"
        '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"></head>'
        f"<body><table width=720 border cellspacing=0 cellpadding=0>{links}</table>"
        "</body></html>"
    ).encode("latin-1")


@fallback
def lyngsat_page(request: ReplayRequest, dataset: ReplayDataset) -> Response | None:
    """A LyngSat page, behind the challenge; None for paths outside `/lyngsat/`."""
    if not request.path.startswith(PREFIX + "/"):
        return None
    state: LyngsatReplay = dataset.lyngsat_site
    if state.gate is not None and (challenge := state.gate.answer(request.headers)):
        status, headers, body = challenge
        return Response(status, body, headers)
    name = request.path[len(PREFIX) + 1 :]
    if not name.endswith(".html"):
        return Response(404, b"<html><title>404 Not Found</title></html>", {"Content-Type": HTML})
    name = name[: -len(".html")]
    if name in state.regions:
        return Response(200, region_page(name, state.regions[name]), {"Content-Type": HTML})
    if name in state.pages:
        return Response(200, state.pages[name], {"Content-Type": HTML})
    return Response(404, b"<html><title>404 Not Found</title></html>", {"Content-Type": HTML})
