"""LyngSat's pages as records: the declared spec of a satellite page (title, "last updated",
transponder rows and the channel rows under each) and of a region index, read by
`browser.html_records`, then normalised to the rows of `satellite`, `satellite_transponder`
and `satellite_channel`.

A satellite page (e.g. `Astra-3B.html`, ISO-8859-1) holds one table per frequency band, each
with a "last updated" line, a header, then transponder rows (a link to `/muxes/...`, frequency
and polarization, beam and EIRP in the second column; system, SR-FEC and modulation, ONID-TID,
source and date) followed by their channel rows (name, system and encryption, SID, VPID, audio
PIDs with languages). Transponder cells span their channel rows (`rowspan`): the grid reading
of `html_records` puts every value under its header column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit

from ingestion_pipelines.browser.html_records import (
    ExtractedRow,
    PageSpec,
    decode_html,
    extract,
)

_SR_FEC = r"^(\d+)-(\d+/\d+|auto)"
_FREQUENCY = r"^(\d+(?:\.\d+)?)\s*([HVLR])\b"
_MODULATION = r"^((?:Q|\d+A?)PSK|\d+QAM)$"
_SID_VPID = r"^(\d+)\s*-\s*(\d+)$"
SATELLITE_PAGE = PageSpec.model_validate(
    {
        "fields": {
            "title": {"css": "title", "required": True},
            "last_updated": {
                "css": "td.td-copyright",
                "pattern": r"last updated (\d{4}-\d{2}-\d{2})",
                "type": "date",
            },
        },
        "tables": [
            {
                "tables": "table:has(> tbody > tr > td.td-copyright)",
                "skip": 'td.td-copyright, td[width="220"]',
                "kinds": [
                    {
                        "name": "transponder",
                        "when_column": 1,
                        "when_pattern": _FREQUENCY,
                        "fields": {
                            "frequency_mhz": {
                                "column": 1,
                                "line": 0,
                                "pattern": _FREQUENCY,
                                "type": "decimal",
                                "required": True,
                            },
                            "polarization": {
                                "column": 1,
                                "line": 0,
                                "pattern": _FREQUENCY,
                                "group": 2,
                                "required": True,
                            },
                            "mux_url": {"column": 1, "css": 'a[href*="/muxes/"]', "attr": "href"},
                            "transponder": {"column": 1, "pattern": r"^tp (.+)$"},
                            "beam": {"column": 1, "css": 'a[href*="footprints"]'},
                            "eirp": {"column": 1, "line": -1, "pattern": r"^([\d.]+(?:-[\d.]+)?)$"},
                            "provider": {"column": 3},
                            "system": {"column": 5, "line": 0},
                            "symbol_rate": {
                                "column": 6,
                                "line": 0,
                                "pattern": _SR_FEC,
                                "type": "int",
                                "strict": True,
                            },
                            "fec": {"column": 6, "line": 0, "pattern": _SR_FEC, "group": 2},
                            "modulation": {"column": 6, "line": 1, "pattern": _MODULATION},
                            "onid": {
                                "column": 8,
                                "line": 0,
                                "pattern": r"^(\d+)-\d+$",
                                "type": "int",
                            },
                            "tid": {
                                "column": 8,
                                "line": 0,
                                "pattern": r"^\d+-(\d+)$",
                                "type": "int",
                            },
                            "cn_lock": {"column": 8, "css": 'font[color="blue"]'},
                            "source": {"column": 9, "line": 0},
                            # a transponder carrying one channel shows it on its own row
                            "channel_sid": {
                                "column": 6,
                                "css": 'font[color="darkgreen"]',
                                "pattern": r"^(\d+)$",
                                "type": "int",
                            },
                            "channel_ids": {"column": 6, "line": 1},
                            "channel_url": {
                                "column": 3,
                                "css": 'a[href*="channels/"]',
                                "attr": "href",
                            },
                            "system_lines": {"column": 5, "type": "lines"},
                            "onid_lines": {"column": 8, "type": "lines"},
                            "source_date": {
                                "column": 9,
                                "line": 1,
                                "pattern": r"^(\d{6})$",
                                "type": "date",
                                "date_format": "%y%m%d",
                            },
                        },
                    },
                    {
                        "name": "channel",
                        "parent": "transponder",
                        "min_cells": 5,
                        "fields": {
                            "name_bold": {"column": 3, "css": "b"},
                            "name": {"column": 3, "line": 0, "required": True},
                            "country": {"column": 3, "pattern": r"\(([^()]+)\)\s*$"},
                            "channel_url": {"column": 3, "css": "a", "attr": "href"},
                            "system_lines": {"column": 5, "type": "lines"},
                            "sid": {"column": 6, "pattern": r"^(\d+)$", "type": "int"},
                            "video_pid": {"column": 7, "pattern": r"^(\d+)$", "type": "int"},
                            "sid_text": {"column": 6},
                            "video_pid_text": {"column": 7},
                            "audio_lines": {"column": 8, "type": "lines"},
                        },
                    },
                ],
            }
        ],
    }
)

_TITLE = re.compile(r"^(?P<name>.+?) at (?P<deg>\d+(?:\.\d+)?)\s*°\s*(?P<hemi>[EW])", re.S)
_AUDIO = re.compile(r"^(?P<pid>\d+(?:\.\d+)?)(?:\s+(?P<lang>.+))?$")
_SATELLITE_LINK = re.compile(r"^[A-Z0-9][A-Za-z0-9.+-]*\.html$")
_NOT_SATELLITES = {"index.html", "headlines.html", "advert.html", "updates.html"}


class PageError(ValueError):
    """A page that is not a LyngSat satellite page (no title with a position, no table)."""


@dataclass
class SatellitePage:
    """The rows one satellite page yields, and the unreadable ones (with their HTML)."""

    satellite: dict[str, Any]
    transponders: list[dict[str, Any]] = field(default_factory=list)
    channels: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[ExtractedRow] = field(default_factory=list)


def slug_of(url: str) -> str:
    """The satellite's page name without `.html` (`Astra-3B`): its key."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".html") else name


def orbital_position(degrees: str, hemisphere: str) -> Decimal:
    """Signed degrees east: 19.2°E → 19.2, 30.0°W → -30.0 (exact)."""
    value = Decimal(degrees)
    return -value if hemisphere.upper() == "W" else value


def satellite_of(values: dict[str, Any], url: str, region: str | None) -> dict[str, Any]:
    """The `satellite` row from the page's title and "last updated" line."""
    match = _TITLE.match(values.get("title") or "")
    if match is None:
        raise PageError(f"title {values.get('title')!r} names no orbital position")
    return {
        "satellite": slug_of(url),
        "name": match["name"].strip(),
        "orbital_position": orbital_position(match["deg"], match["hemi"]),
        "region": region,
        "page_url": url,
        "last_updated": values.get("last_updated"),
        "extra": None,
    }


def _transponder_row(satellite: dict, values: dict, url: str) -> dict[str, Any]:
    extra = {
        k: values[k]
        for k in ("transponder", "provider", "cn_lock", "mux_url")
        if values.get(k) is not None
    }
    return {
        "satellite": satellite["satellite"],
        "frequency_mhz": values["frequency_mhz"],
        "polarization": values["polarization"],
        "beam": values.get("beam") or "",
        "eirp": values.get("eirp"),
        "system": values.get("system"),
        "modulation": values.get("modulation"),
        "symbol_rate": values.get("symbol_rate"),
        "fec": values.get("fec"),
        "onid": values.get("onid"),
        "tid": values.get("tid"),
        "source": values.get("source"),
        "source_date": values.get("source_date"),
        "page_url": url,
        "extra": extra or None,
    }


def _audio(lines: list[str]) -> tuple[str | None, str | None]:
    pids, languages = [], []
    for line in lines:
        if match := _AUDIO.match(line):
            pids.append(match["pid"])
            if match["lang"]:
                languages.append(match["lang"])
    return (",".join(pids) or None), (",".join(languages) or None)


def _channel_row(transponder: dict, values: dict, provider: str | None) -> dict[str, Any]:
    """A `satellite_channel` row from a channel's values: `system_lines` are the video format
    then the encryption systems, `audio_lines` the audio PIDs with their languages."""
    system = values.get("system_lines") or []
    audio_pids, audio_languages = _audio(values.get("audio_lines") or [])
    name = values.get("name_bold") or values["name"]
    if values.get("country") and name.endswith(f"({values['country']})"):
        name = name[: -len(values["country"]) - 2].rstrip()
    sid = values.get("sid")
    extra = {"video_format": system[0]} if system else {}
    for key in ("channel_url", "country"):
        if values.get(key):
            extra[key] = values[key]
    return {
        "satellite": transponder["satellite"],
        "frequency_mhz": transponder["frequency_mhz"],
        "polarization": transponder["polarization"],
        "beam": transponder["beam"],
        "channel_key": f"{sid if sid is not None else ''}:{name}"[:300],
        "name": name,
        "encryption": ",".join(system[1:]) or None,
        "sid": sid,
        "video_pid": values.get("video_pid"),
        "audio_pids": audio_pids,
        "audio_languages": audio_languages,
        "provider": provider,
        "extra": extra or None,
    }


def _listed_channel(transponder: dict, values: dict) -> dict[str, Any]:
    """A channel row under a transponder (SID and VPID in their own columns; one cell spanning
    both holds the SID alone)."""
    values = dict(values)
    if values.get("video_pid_text") == values.get("sid_text"):
        values["video_pid"] = None
    return _channel_row(transponder, values, (transponder.get("extra") or {}).get("provider"))


def _embedded_channel(transponder: dict, values: dict) -> dict[str, Any] | None:
    """The channel a transponder row shows itself (a transponder with one channel): its name in
    the provider column, SID - VPID under SR-FEC, audio under ONID-TID and C/N."""
    if values.get("channel_sid") is None and not values.get("channel_url"):
        return None
    ids = re.match(_SID_VPID, values.get("channel_ids") or "")
    skip = {values.get("cn_lock")}
    audio = [line for line in (values.get("onid_lines") or [])[1:] if line not in skip]
    own = {
        "name": values.get("provider") or "",
        "channel_url": values.get("channel_url"),
        "system_lines": (values.get("system_lines") or [])[1:],
        "sid": int(ids[1]) if ids else values.get("channel_sid"),
        "video_pid": int(ids[2]) if ids else None,
        "audio_lines": audio,
    }
    return _channel_row(transponder, own, None)


def parse_satellite_page(
    body: bytes, url: str, content_type: str | None = None, region: str | None = None
) -> SatellitePage:
    """Every transponder and channel row of a satellite page; rows that cannot be read (and
    the channels under an unreadable transponder) are in `unreadable` with their HTML."""
    page = extract(decode_html(body, content_type), SATELLITE_PAGE)
    satellite = satellite_of(page.values, url, region)
    if not page.rows:
        raise PageError("no transponder table (no table with a 'last updated' line)")
    result = SatellitePage(satellite)
    transponders: dict[int, dict[str, Any] | None] = {}
    for row in page.rows:
        if row.kind == "transponder":
            transponders[row.index] = None
            if row.ok:
                transponder = transponders[row.index] = _transponder_row(satellite, row.values, url)
                result.transponders.append(transponder)
                if (channel := _embedded_channel(transponder, row.values)) is not None:
                    result.channels.append(channel)
            else:
                result.unreadable.append(row)
        elif row.ok and transponders.get(row.parent) is not None:
            result.channels.append(_listed_channel(transponders[row.parent], row.values))
        else:
            if row.ok:
                row.errors.append("its transponder row is unreadable")
            result.unreadable.append(row)
    return result


def satellite_links(body: bytes, url: str, content_type: str | None = None) -> list[str]:
    """The satellite pages a region index links to (absolute URLs, in page order, once)."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode_html(body, content_type))
    origin = urlsplit(url)
    folder = origin.path.rsplit("/", 1)[0]  # satellite pages sit next to the region pages
    found: list[str] = []
    for link in tree.css("a[href]"):
        target = urljoin(url, link.attributes.get("href") or "")
        parts = urlsplit(target)
        name = parts.path.rsplit("/", 1)[-1]
        if parts.netloc != origin.netloc or parts.path.rsplit("/", 1)[0] != folder:
            continue
        if _SATELLITE_LINK.match(name) and name not in _NOT_SATELLITES and target not in found:
            found.append(target)
    return found


def as_date(value: Any) -> date | None:
    """A date from a date or ISO text (None stays None)."""
    if value is None or isinstance(value, date):
        return value
    return datetime.strptime(str(value), "%Y-%m-%d").date()
