"""LyngSat's tables (issue 20, `lyngsat`), in the one metadata of `storage.tables`."""

from __future__ import annotations

from sqlalchemy import Column, Date, Integer, String, Table

from ingestion_pipelines.storage.schema_base import extra_column, metadata
from ingestion_pipelines.storage.types import ExactDecimal

# ---- LyngSat (issue 20): satellites, transponders, channels -------------------------------
# Orbital positions are signed degrees east (19.2°E -> 19.2, 30.0°W -> -30.0); frequencies are
# exact decimals in MHz as the page shows them (12639.7); symbol rates integer ksym/s; FEC as
# shown ("2/3"). `beam` is "" when the page names none (it is part of the key).

satellite = Table(
    "satellite",
    metadata,
    Column("satellite", String(128), primary_key=True),  # page name: Astra-1KR-1L-1M-1N
    Column("name", String(256), nullable=False),
    Column("orbital_position", ExactDecimal, nullable=False),
    Column("region", String(64)),
    Column("page_url", String(512), nullable=False),
    Column("last_updated", Date),
    extra_column(),
)

satellite_transponder = Table(
    "satellite_transponder",
    metadata,
    Column("satellite", String(128), primary_key=True),
    Column("frequency_mhz", ExactDecimal, primary_key=True),
    Column("polarization", String(1), primary_key=True),  # H / V / L / R
    Column("beam", String(128), primary_key=True),
    Column("eirp", String(32)),  # dBW as shown: "51", "56-58"
    Column("system", String(32)),  # DVB-S, DVB-S2...
    Column("modulation", String(16)),  # QPSK, 8PSK... (DVB-S rows show none)
    Column("symbol_rate", Integer),  # ksym/s
    Column("fec", String(8)),
    Column("onid", Integer),
    Column("tid", Integer),
    Column("source", String(128)),
    Column("source_date", Date),
    Column("page_url", String(512), nullable=False),
    extra_column(),
)

satellite_channel = Table(
    "satellite_channel",
    metadata,
    Column("satellite", String(128), primary_key=True),
    Column("frequency_mhz", ExactDecimal, primary_key=True),
    Column("polarization", String(1), primary_key=True),
    Column("beam", String(128), primary_key=True),
    Column("channel_key", String(300), primary_key=True),  # "<SID>:<name>" (SID may be empty)
    Column("name", String(256), nullable=False),
    Column("encryption", String(256)),  # systems, comma-separated; None: free to air
    Column("sid", Integer),
    Column("video_pid", Integer),
    Column("audio_pids", String(256)),  # comma-separated, as shown
    Column("audio_languages", String(256)),
    Column("provider", String(256)),  # the package the transponder row names
    extra_column(),
)
