"""Definitions of the assets computed from our own tables, and the sensor that automates them."""

from __future__ import annotations

import dagster as dg

from ingestion_pipelines.derived.kline_check import kline_bars_check
from ingestion_pipelines.derived.market_hours import market_bars_check
from ingestion_pipelines.derived.ssi_bars import ssi_trade_bars_asset
from ingestion_pipelines.derived.stock_eod_adjusted import adjusted_eod_asset
from ingestion_pipelines.derived.trade_bars import GROUP, trade_bars_asset

AUTOMATION_SENSOR = "derived_automation"


def defs() -> dg.Definitions:
    """`trade_bars_1m`, `ssi_trade_bars_1m`, `vn_stock_eod_adjusted` and a running
    automation-condition sensor for the `derived` group.

    Dagster would otherwise add `default_automation_condition_sensor`, which starts stopped.
    """
    return dg.Definitions(
        assets=[trade_bars_asset(), ssi_trade_bars_asset(), adjusted_eod_asset()],
        asset_checks=[market_bars_check(), kline_bars_check()],
        sensors=[
            dg.AutomationConditionSensorDefinition(
                AUTOMATION_SENSOR,
                target=dg.AssetSelection.groups(GROUP),
                default_status=dg.DefaultSensorStatus.RUNNING,
                description="Evaluates the automation conditions of the derived assets.",
            )
        ],
    )
