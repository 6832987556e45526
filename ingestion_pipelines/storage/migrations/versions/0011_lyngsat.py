"""satellite, satellite_transponder, satellite_channel: LyngSat's satellite pages (issue 20)

Revision ID: 0011
Revises: 0009
"""

import sqlalchemy as sa

from ingestion_pipelines.storage.migration_ops import op
from ingestion_pipelines.storage.types import ExactDecimal, JsonDocument

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

UTF8MB4 = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _exact(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, ExactDecimal(precision=38, scale=18), nullable=nullable)


def _transponder_key() -> list[sa.Column]:
    return [
        sa.Column("satellite", sa.String(length=128), nullable=False),
        _exact("frequency_mhz", nullable=False),
        sa.Column("polarization", sa.String(length=1), nullable=False),
        sa.Column("beam", sa.String(length=128), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "satellite",
        sa.Column("satellite", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        _exact("orbital_position", nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("page_url", sa.String(length=512), nullable=False),
        sa.Column("last_updated", sa.Date(), nullable=True),
        sa.Column("extra", JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint("satellite", name=op.f("pk_satellite")),
        **UTF8MB4,
    )
    op.create_table(
        "satellite_transponder",
        *_transponder_key(),
        sa.Column("eirp", sa.String(length=32), nullable=True),
        sa.Column("system", sa.String(length=32), nullable=True),
        sa.Column("modulation", sa.String(length=16), nullable=True),
        sa.Column("symbol_rate", sa.Integer(), nullable=True),
        sa.Column("fec", sa.String(length=8), nullable=True),
        sa.Column("onid", sa.Integer(), nullable=True),
        sa.Column("tid", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=128), nullable=True),
        sa.Column("source_date", sa.Date(), nullable=True),
        sa.Column("page_url", sa.String(length=512), nullable=False),
        sa.Column("extra", JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint(
            "satellite",
            "frequency_mhz",
            "polarization",
            "beam",
            name=op.f("pk_satellite_transponder"),
        ),
        **UTF8MB4,
    )
    op.create_table(
        "satellite_channel",
        *_transponder_key(),
        sa.Column("channel_key", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("encryption", sa.String(length=256), nullable=True),
        sa.Column("sid", sa.Integer(), nullable=True),
        sa.Column("video_pid", sa.Integer(), nullable=True),
        sa.Column("audio_pids", sa.String(length=256), nullable=True),
        sa.Column("audio_languages", sa.String(length=256), nullable=True),
        sa.Column("provider", sa.String(length=256), nullable=True),
        sa.Column("extra", JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint(
            "satellite",
            "frequency_mhz",
            "polarization",
            "beam",
            "channel_key",
            name=op.f("pk_satellite_channel"),
        ),
        **UTF8MB4,
    )


def downgrade() -> None:
    op.drop_table("satellite_channel")
    op.drop_table("satellite_transponder")
    op.drop_table("satellite")
