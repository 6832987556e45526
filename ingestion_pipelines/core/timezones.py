"""The platform's time zones, each defined once (sources, feeds, calendar, derived assets)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

# Vietnam's market time: UTC+7 all year (no daylight saving since 1975).
ICT_NAME = "Asia/Ho_Chi_Minh"
ICT = ZoneInfo(ICT_NAME)
# The same offset in seconds, for hot paths that compute ICT day numbers from epoch seconds.
ICT_UTC_OFFSET_S = 7 * 3600
