"""The one adapter from `quality.measures` frames to Dagster asset-check results."""

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from rcm_assets.metadata import QualityThreshold
from rcm_assets.quality.measures import markdown, max_rate, within_threshold, worst_rate


def check_result(
    check: str, threshold: QualityThreshold | None, measures: pl.DataFrame, name: str = ""
) -> AssetCheckResult:
    """Pass while every datasource's rate is within the threshold (none: always pass).

    A blocking threshold fails with ERROR severity, which stops the assets below; any other
    fails with WARN.
    """
    blocking = bool(threshold and threshold.blocking)
    return AssetCheckResult(
        check_name=name or check,
        passed=within_threshold(threshold, measures, check),
        severity=AssetCheckSeverity.ERROR if blocking else AssetCheckSeverity.WARN,
        metadata={
            "max_rate": max_rate(threshold),
            "worst_rate": worst_rate(measures, check),
            "measures": MetadataValue.md(markdown(measures.filter(pl.col("check") == check))),
        },
    )
