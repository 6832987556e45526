"""The captured LyngSat pages read into rows: every transponder row, exactly as the page shows."""

import re
from datetime import date
from decimal import Decimal

import pytest

from ingestion_pipelines.replay.routes import read_data
from ingestion_pipelines.sources.lyngsat.pages import (
    PageError,
    orbital_position,
    parse_satellite_page,
    satellite_links,
)

# A frequency cell as LyngSat writes it: bold "11644&nbsp;H", a link around it or not, and the
# decimals of a fractional frequency in a smaller font ("12639.<font size=1>7</font>").
FREQUENCY_CELL = re.compile(
    rb"<b>(?:<a [^>]*>)?(\d+)(?:\.<font size=1>(\d+)</font>)?&nbsp;([HVLR])(?:</a>)?</b>"
)
SR_FEC_CELL = re.compile(rb"colspan=2><font face=\"Verdana\" size=1>(\d+)-(\d+/\d+)<br>")


def page(name: str):
    return parse_satellite_page(read_data(f"{name}.html"), f"https://www.lyngsat.com/{name}.html")


@pytest.mark.parametrize("name", ["Amos-3-7", "Astra-3B"])
def test_every_transponder_row_is_read_with_its_frequency_and_polarization(name):
    raw = read_data(f"{name}.html")
    shown = [
        (Decimal(whole.decode() + (f".{frac.decode()}" if frac else "")), pol.decode())
        for whole, frac, pol in FREQUENCY_CELL.findall(raw)
    ]
    parsed = page(name)
    assert parsed.unreadable == []
    assert [(t["frequency_mhz"], t["polarization"]) for t in parsed.transponders] == shown
    assert len(shown) == {"Amos-3-7": 48, "Astra-3B": 120}[name]
    # symbol rate and FEC: every SR-FEC cell of the page, in order
    shown_sr_fec = [(int(sr), fec.decode()) for sr, fec in SR_FEC_CELL.findall(raw)]
    parsed_sr_fec = [(t["symbol_rate"], t["fec"]) for t in parsed.transponders if t["symbol_rate"]]
    assert parsed_sr_fec == shown_sr_fec


def test_a_transponder_row_exactly():
    amos = page("Amos-3-7")
    assert amos.satellite == {
        "satellite": "Amos-3-7",
        "name": "Amos 3/7",
        "orbital_position": Decimal("-4.0"),
        "region": None,
        "page_url": "https://www.lyngsat.com/Amos-3-7.html",
        "last_updated": date(2020, 4, 9),
        "extra": None,
    }
    middle_east = next(t for t in amos.transponders if t["beam"] == "Middle East")
    assert middle_east == {
        "satellite": "Amos-3-7",
        "frequency_mhz": Decimal("10758"),
        "polarization": "V",
        "beam": "Middle East",
        "eirp": "0",
        "system": "DVB-S",
        "modulation": None,
        "symbol_rate": 27500,
        "fec": "5/6",
        "onid": 171,
        "tid": 14,
        "source": "DX Bozóth",  # ISO-8859-1 on the page
        "source_date": date(2018, 11, 15),
        "page_url": "https://www.lyngsat.com/Amos-3-7.html",
        "extra": {
            "transponder": "11U",
            "provider": "Yes",
            "cn_lock": "6.5",
            "mux_url": "http://www.lyngsat.com/muxes/Amos-3_Middle-East_10758-V.html",
        },
    }
    fractional = next(
        t for t in page("Astra-3B").transponders if t["frequency_mhz"] == Decimal("12639.7")
    )
    assert fractional["polarization"] == "V" and fractional["system"] == "DVB-S"


def test_channels_under_their_transponder_and_on_a_one_channel_transponder_row():
    amos = page("Amos-3-7")
    shopping = next(c for c in amos.channels if c["name"] == "The Shopping Channel")
    assert (shopping["frequency_mhz"], shopping["polarization"], shopping["beam"]) == (
        Decimal("10926"),
        "V",
        "Middle East",
    )
    assert (shopping["sid"], shopping["video_pid"], shopping["audio_pids"]) == (1202, 513, "661")
    assert shopping["audio_languages"] == "Heb" and shopping["provider"] == "Yes"
    assert shopping["extra"]["country"] == "Israel"
    # România TV is the transponder row's own channel: SID - VPID under SR-FEC
    romania = next(c for c in amos.channels if c["name"] == "România TV")
    assert (romania["sid"], romania["video_pid"], romania["audio_pids"]) == (1, 256, "258")
    assert romania["extra"]["video_format"] == "MPEG-2/SD" and romania["provider"] is None
    encrypted = next(c for c in page("Astra-3B").channels if c["name"] == "NPO Politiek")
    assert encrypted["encryption"] == "Mediaguard,Nagravision,Viaccess"


def test_orbital_positions_are_signed_degrees_east():
    assert orbital_position("19.2", "E") == Decimal("19.2")
    assert orbital_position("30.0", "W") == Decimal("-30.0")
    assert page("Astra-3B").satellite["orbital_position"] == Decimal("23.5")


def test_an_unreadable_row_is_kept_with_its_html_and_the_rest_is_read():
    raw = read_data("Amos-3-7.html").replace(b"30000-2/3<br>8PSK", b"thirty-2/3<br>8PSK", 1)
    parsed = parse_satellite_page(raw, "https://www.lyngsat.com/Amos-3-7.html")
    assert len(parsed.transponders) == 47
    (bad,) = [row for row in parsed.unreadable if row.kind == "transponder"]
    assert "symbol_rate" in bad.errors[0] and "thirty-2/3" in bad.html
    assert parsed.unreadable[1:] == [] or all(
        "its transponder row is unreadable" in row.errors for row in parsed.unreadable[1:]
    )


def test_a_page_without_a_position_is_refused():
    with pytest.raises(PageError, match="names no orbital position"):
        parse_satellite_page(b"<html><title>Just a moment...</title></html>", "https://x/y.html")


def test_region_links_are_the_satellite_pages():
    body = b'<a href="Astra-3B.html">A</a><a href="index.html">i</a><a href="/tvchannels/x/Y.html">c</a><a href="https://other.example/Z.html">z</a>'
    assert satellite_links(body, "https://www.lyngsat.com/europe.html") == [
        "https://www.lyngsat.com/Astra-3B.html"
    ]
