"""Data-quality measures, as tidy frames (a row per datasource, check and rule).

The same rows feed the asset checks' metadata and `audit/dq_results`, so a trend chart and the
UI always agree.
"""

from datetime import datetime

import polars as pl

from rcm_assets.metadata import QualityThreshold

MEASURES_SCHEMA = pl.Schema(
    {
        "datasource": pl.String,
        "check": pl.String,
        "rule": pl.String,
        "rows_checked": pl.Int64,
        "rows_failed": pl.Int64,
        "rate": pl.Float64,
    }
)
# audit/dq_results: every measure with the run, time and table it belongs to
DQ_SCHEMA = pl.Schema(
    {
        "run_id": pl.String,
        "measured_at": pl.Datetime("us", "UTC"),
        "table": pl.String,
        **MEASURES_SCHEMA,
    }
)
CURRENT_SCHEMA = {
    "datasource": pl.String,
    "is_quarantined": pl.Boolean,
    "quarantine_reasons": pl.List(pl.String),
    "quality_flags": pl.List(pl.String),
}


def _measure(frame: pl.DataFrame, check: str, rule: pl.Expr) -> pl.DataFrame:
    return frame.select(
        "datasource",
        pl.lit(check).alias("check"),
        rule.alias("rule"),
        pl.col("rows_checked").cast(pl.Int64),
        pl.col("rows_failed").cast(pl.Int64),
        pl.when(pl.col("rows_checked") > 0)
        .then(pl.col("rows_failed") / pl.col("rows_checked"))
        .otherwise(0.0)
        .alias("rate"),
    ).cast(dict(MEASURES_SCHEMA))


def quarantine_measures(current: pl.DataFrame) -> pl.DataFrame:
    """Per datasource: the quarantine rate overall and per reason, and each flag's count."""
    totals = current.group_by("datasource").agg(
        pl.len().alias("rows_checked"), pl.col("is_quarantined").sum().alias("rows_failed")
    )
    per_list = []
    for column, check in (("quarantine_reasons", "quarantine_reason"), ("quality_flags", "flag")):
        counted = (
            current.select("datasource", pl.col(column).alias("rule"))
            .explode("rule")
            .drop_nulls("rule")
            .group_by("datasource", "rule")
            .agg(pl.len().alias("rows_failed"))
            .join(totals.select("datasource", "rows_checked"), on="datasource")
        )
        per_list.append(_measure(counted, check, pl.col("rule")))
    return pl.concat([_measure(totals, "quarantine_rate", pl.lit("all")), *per_list]).sort(
        "datasource", "check", "rule"
    )


def duplicate_measures(current: pl.DataFrame, key: str) -> pl.DataFrame:
    """Keys with more than one current row, over the whole table (datasource `*`)."""
    duplicated = current.group_by(key).len().filter(pl.col("len") > 1).height
    counted = pl.DataFrame(
        {"datasource": ["*"], "rows_checked": [current.height], "rows_failed": [duplicated]}
    )
    return _measure(counted, "duplicate_current_keys", pl.lit(key))


def worst_rate(measures: pl.DataFrame, check: str) -> float:
    return float(measures.filter(pl.col("check") == check).get_column("rate").max() or 0.0)


def orphan_measures(
    child: pl.LazyFrame, column: str, parent_keys: pl.LazyFrame, parent: str
) -> pl.DataFrame:
    """Per datasource: rows whose `column` is set but matches no parent key.

    `child` holds `datasource` and `column`; `parent_keys` one column of keys. Streamed: only
    the parent's keys are held (a semi join's hash set), never the child's rows, so it counts
    10M rows against 10M keys in linear time and bounded memory.
    """
    keys = parent_keys.select(pl.first().cast(child.collect_schema()[column]).alias(column))
    checked = child.filter(pl.col(column).is_not_null())
    counted = (
        checked.group_by("datasource")
        .agg(pl.len().alias("rows_checked"))
        .join(
            checked.join(keys, on=column, how="semi")
            .group_by("datasource")
            .agg(pl.len().alias("rows_found")),
            on="datasource",
            how="left",
        )
        .select(
            "datasource",
            "rows_checked",
            (pl.col("rows_checked") - pl.col("rows_found").fill_null(0)).alias("rows_failed"),
        )
        .collect(engine="streaming")
    )
    return _measure(counted, "orphan_rate", pl.lit(f"{column}->{parent}"))


def bounds_measures(
    frame: pl.DataFrame, bounds: dict[str, tuple[float | None, float | None]]
) -> pl.DataFrame:
    """Per datasource and bounded column: values outside [low, high] (an open end: None)."""
    measures = []
    for column, (low, high) in bounds.items():
        if column not in frame.columns:
            continue
        value = pl.col(column).cast(pl.Float64)
        outside = pl.lit(False)
        if low is not None:
            outside = outside | (value < low)
        if high is not None:
            outside = outside | (value > high)
        counted = (
            frame.filter(value.is_not_null() & value.is_not_nan())
            .group_by("datasource")
            .agg(pl.len().alias("rows_checked"), outside.sum().alias("rows_failed"))
        )
        span = f"[{'' if low is None else low}, {'' if high is None else high}]"
        measures.append(_measure(counted, "value_bounds", pl.lit(f"{column} in {span}")))
    return pl.concat([pl.DataFrame(schema=MEASURES_SCHEMA), *measures])


def dq_rows(measures: pl.DataFrame, table: str, run_id: str, at: datetime) -> pl.DataFrame:
    return measures.select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(at).cast(pl.Datetime("us", "UTC")).alias("measured_at"),
        pl.lit(table).alias("table"),
        *DQ_SCHEMA.names()[3:],
    ).cast(dict(DQ_SCHEMA))


def markdown(measures: pl.DataFrame) -> str:
    lines = ["| datasource | check | rule | rows | failed | rate |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['datasource']} | {r['check']} | {r['rule']} | {r['rows_checked']:,} | "
        f"{r['rows_failed']:,} | {r['rate']:.2%} |"
        for r in measures.iter_rows(named=True)
    ]
    return "\n".join(lines)


def within_threshold(
    threshold: QualityThreshold | None, measures: pl.DataFrame, check: str
) -> bool:
    """Every datasource's rate of `check` at most the threshold's (no threshold: always)."""
    return worst_rate(measures, check) <= max_rate(threshold)


def max_rate(threshold: QualityThreshold | None) -> float:
    return threshold.max_rate if threshold else 1.0
