"""What the KPI report shows, as frames: pure functions of the gold marts at one as-of month.

The as-of month is the latest month end in which every datasource has charges
(`gold/kpi_monthly`); each section is that month, or a trend ending there, never a later month.
Nothing here reads storage: `report_inputs` gathers the frames, `report` draws the page.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from rcm_assets.errors import RcmError
from rcm_assets.gold.kpis import AGING_BUCKETS, aging_bucket
from rcm_assets.metadata import KpiTarget

TREND_MONTHS = 12
PARETO_REASONS = 10  # bars in a denial Pareto; the rest are one "other reasons" bar
MARTS = (
    "kpi_monthly",
    "kpi_ar_aging",
    "kpi_map_keys",
    "kpi_payer_scorecard",
    "kpi_denials",
    "kpi_denied_claims",
)


@dataclass(frozen=True)
class Volume:
    """A money or count figure shown beside the targeted KPIs (it has no target)."""

    mart: str
    kpi: str
    label: str
    unit: str
    target: None = None
    better: None = None
    source: str = ""


VOLUMES = (
    Volume("kpi_map_keys", "billed_claims", "Claims billed (837)", "count"),
    Volume("kpi_map_keys", "billed_charges", "Billed charges (837)", "currency"),
    Volume("kpi_map_keys", "payments", "Payer payments (835)", "currency"),
    Volume(
        "kpi_map_keys", "net_patient_service_revenue", "Net patient service revenue", "currency"
    ),
    Volume("kpi_map_keys", "initial_denied_amount", "Initially denied amount", "currency"),
    Volume("kpi_map_keys", "net_ar", "Net A/R at month end", "currency"),
    Volume("kpi_monthly", "charges", "Charges (EMR)", "currency"),
    Volume("kpi_monthly", "payments", "Payments (EMR)", "currency"),
    Volume("kpi_monthly", "open_ar", "Open A/R at month end (EMR)", "currency"),
)

# The EMR marts have no proxies column; what they stand in for is in docs/kpis.md ("Proxies").
DOCUMENTED_PROXIES: dict[str, tuple[str, ...]] = {
    "kpi_monthly": (
        "gross collection rate is paid ÷ charged: the EMR data has no contractual adjustments",
        "a claim in status Paid is settled once paid; its unpaid remainder counts as a "
        "contractual adjustment",
        "denied and rejected claims stay open A/R (no write-off data), so they age into 120+",
    ),
    "kpi_ar_aging": (
        "aging counts from the date of service",
        "denied and rejected claims stay open A/R (no write-off data), so they age into 120+",
        "a claim in status Paid is settled once paid; its unpaid remainder counts as a "
        "contractual adjustment",
    ),
}


FRESHNESS_SCHEMA = pl.Schema(
    {
        "datasource": pl.String,
        "newest_service_date": pl.Date,
        "newest_emr_payment": pl.Date,
        "newest_835_payment": pl.Date,
        "last_load": pl.Datetime("us", "UTC"),
    }
)
QUARANTINE_SCHEMA = pl.Schema(
    {
        "table": pl.String,
        "datasource": pl.String,
        "reason": pl.String,
        "rows": pl.Int64,
        "current_rows": pl.Int64,
    }
)
ORPHAN_SCHEMA = pl.Schema(
    {
        "table": pl.String,
        "datasource": pl.String,
        "rule": pl.String,
        "rows_checked": pl.Int64,
        "rows_failed": pl.Int64,
        "rate": pl.Float64,
    }
)
REJECTED_SCHEMA = pl.Schema({"folder": pl.String, "file": pl.String, "reason": pl.String})


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report draws; frames in the gold marts' own schemas."""

    marts: Mapping[str, pl.DataFrame]  # MARTS and every mart a target names
    targets: Sequence[KpiTarget]
    hospital_names: Mapping[str, str]  # datasource → display name
    generated_at: datetime
    freshness: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FRESHNESS_SCHEMA))
    mart_written_at: Mapping[str, datetime | None] = field(default_factory=dict)
    quarantine: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUARANTINE_SCHEMA))
    orphans: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ORPHAN_SCHEMA))
    rejected_files: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=REJECTED_SCHEMA)
    )

    def name(self, datasource: str) -> str:
        return self.hospital_names.get(datasource, datasource)


def as_of_month(monthly: pl.DataFrame) -> date:
    """The latest month end in which every datasource of `kpi_monthly` has charges.

    A later month holds only some hospitals' data (or A/R rolling on without new charges), so
    putting it beside complete months would compare unlike things.
    """
    latest = (
        monthly.filter(pl.col("charges") > 0)
        .group_by("datasource")
        .agg(pl.col("month_end").max())
        .get_column("month_end")
    )
    if latest.is_empty():
        raise RcmError("gold/kpi_monthly has no month with charges: run `rcm run` on source data")
    return latest.min()


def month_ends(as_of: date, months: int = TREND_MONTHS) -> list[date]:
    """The `months` month ends up to and including `as_of`, oldest first."""
    first = pl.select(pl.lit(as_of).dt.offset_by(f"-{months - 1}mo").dt.month_end()).item()
    return pl.date_range(first, as_of, "1mo", eager=True).dt.month_end().to_list()


def previous_month(as_of: date) -> date:
    return month_ends(as_of, 2)[0]


def datasources(inputs: ReportInputs) -> list[str]:
    """Every datasource of the marts, in display-name order."""
    found: set[str] = set()
    for frame in inputs.marts.values():
        if "datasource" in frame.columns:
            found.update(frame.get_column("datasource").drop_nulls().to_list())
    return sorted(found, key=lambda ds: (inputs.name(ds), ds))


def _cell(frame: pl.DataFrame, datasource: str, month: date, column: str) -> float | None:
    cells = frame.filter(
        (pl.col("datasource") == datasource) & (pl.col("month_end") == month)
    ).get_column(column)
    # one row per (datasource, month); no row or a null cell is missing, not zero
    return None if cells.null_count() == cells.len() else cells.cast(pl.Float64).sum()


@dataclass(frozen=True)
class KpiRow:
    label: str
    unit: str
    current: float | None
    previous: float | None
    target: float | None = None
    better: str | None = None
    source: str = ""
    mart: str = ""


def headline_rows(inputs: ReportInputs, datasource: str, as_of: date) -> list[KpiRow]:
    """The targeted KPIs (in kpi_targets.csv order), then the volumes, at `as_of` and the
    month before."""
    before = previous_month(as_of)
    rows = []
    for kpi in [*inputs.targets, *VOLUMES]:
        frame = inputs.marts[kpi.mart]
        rows.append(
            KpiRow(
                label=kpi.label,
                unit=kpi.unit,
                current=_cell(frame, datasource, as_of, kpi.kpi),
                previous=_cell(frame, datasource, before, kpi.kpi),
                target=kpi.target,
                better=kpi.better,
                source=kpi.source,
                mart=kpi.mart,
            )
        )
    return rows


def trend(inputs: ReportInputs, target: KpiTarget, as_of: date) -> pl.DataFrame:
    """(hospital, month_end, value) of one KPI over the trend window; months without a value
    are left out, so a line never drops to zero for lack of data."""
    window = month_ends(as_of)
    return (
        inputs.marts[target.mart]
        .filter(pl.col("month_end").is_in(window))
        .select(
            _hospital(inputs),
            "month_end",
            pl.col(target.kpi).cast(pl.Float64).alias("value"),
        )
        .filter(pl.col("value").is_not_null() & pl.col("value").is_finite())
        .sort("hospital", "month_end")
    )


def proxies(inputs: ReportInputs, mart: str, months: Sequence[date]) -> list[str]:
    """The proxy notes behind a mart's figures for `months`: its `proxies` column (notes
    separated by "; "), else what docs/kpis.md says about it."""
    frame = inputs.marts.get(mart)
    notes: list[str] = list(DOCUMENTED_PROXIES.get(mart, ()))
    if frame is not None and "proxies" in frame.columns:
        for text in (
            frame.filter(pl.col("month_end").is_in(list(months)))
            .sort("month_end", "datasource")
            .get_column("proxies")
            .drop_nulls()
            .to_list()
        ):
            notes.extend(note.strip() for note in text.split(";"))
    return list(dict.fromkeys(note for note in notes if note))


def ar_aging(inputs: ReportInputs, as_of: date) -> pl.DataFrame:
    """(hospital, bucket, open_balance, open_items) at `as_of`, every bucket present."""
    return _by_bucket(
        inputs,
        inputs.marts["kpi_ar_aging"]
        .filter(pl.col("month_end") == as_of)
        .select("datasource", "bucket", "open_balance", pl.col("open_items").cast(pl.Int64)),
        ("open_balance", "open_items"),
    )


def _by_bucket(inputs: ReportInputs, frame: pl.DataFrame, measures: Sequence[str]) -> pl.DataFrame:
    grid = pl.DataFrame({"datasource": datasources(inputs)}).join(
        pl.DataFrame({"bucket": list(AGING_BUCKETS)}), how="cross"
    )
    return (
        grid.join(frame, on=["datasource", "bucket"], how="left")
        .with_columns(pl.col(measures).fill_null(0))
        .with_columns(_hospital(inputs))
        .select("hospital", "bucket", *measures)
    )


def _hospital(inputs: ReportInputs) -> pl.Expr:
    """The datasource's display name, as column `hospital`."""
    return pl.col("datasource").replace(dict(inputs.hospital_names)).alias("hospital")


def denial_pareto(inputs: ReportInputs, datasource: str, months: Sequence[date]) -> pl.DataFrame:
    """Denied amount by CARC group-reason (`CO-50`) over `months`, largest first, with each
    reason's cumulative share of the total; reasons past the first PARETO_REASONS are summed
    into one "other reasons" row."""
    by_reason = (
        inputs.marts["kpi_denials"]
        .filter((pl.col("datasource") == datasource) & pl.col("month_end").is_in(list(months)))
        .group_by(pl.concat_str("group_code", pl.lit("-"), "reason_code").alias("reason"))
        .agg(
            pl.col("reason_description").drop_nulls().first(),
            pl.col("category").drop_nulls().first(),
            pl.col("avoidable").drop_nulls().first(),
            pl.col("denials").sum().cast(pl.Int64),
            pl.col("denied_amount").sum().cast(pl.Float64),
        )
        .sort(["denied_amount", "reason"], descending=[True, False])
    )
    if by_reason.height > PARETO_REASONS:
        rest = by_reason.slice(PARETO_REASONS)
        other = pl.DataFrame(
            {
                "reason": [f"{rest.height} other reasons"],
                "reason_description": [None],
                "category": [None],
                "avoidable": [None],
                "denials": [rest.get_column("denials").sum()],
                "denied_amount": [rest.get_column("denied_amount").sum()],
            },
            schema=by_reason.schema,
        )
        by_reason = pl.concat([by_reason.head(PARETO_REASONS), other])
    total = by_reason.get_column("denied_amount").sum()
    return by_reason.with_columns(
        (pl.col("denied_amount").cum_sum() / total if total else pl.lit(None, pl.Float64)).alias(
            "cumulative_share"
        )
    )


def denials_by_payer(inputs: ReportInputs, as_of: date) -> pl.DataFrame:
    """(hospital, payer_name, denied_claims, remitted_claims, denial_rate, denied_amount) at
    `as_of`: rates from the payer scorecard, amounts from the denial mart."""
    scorecard = inputs.marts["kpi_payer_scorecard"].filter(pl.col("month_end") == as_of)
    amounts = (
        inputs.marts["kpi_denials"]
        .filter(pl.col("month_end") == as_of)
        .group_by("datasource", "payer_name")
        .agg(pl.col("denied_amount").sum().cast(pl.Float64))
    )
    return (
        scorecard.select(
            "datasource", "payer_name", "denied_claims", "remitted_claims", "denial_rate"
        )
        .join(amounts, on=["datasource", "payer_name"], how="full", coalesce=True)
        .with_columns(_hospital(inputs))
        .select(
            "hospital",
            "payer_name",
            "denied_claims",
            "remitted_claims",
            "denial_rate",
            "denied_amount",
        )
        .sort("hospital", "payer_name")
    )


def payer_scorecard(inputs: ReportInputs, datasource: str, as_of: date) -> pl.DataFrame:
    return (
        inputs.marts["kpi_payer_scorecard"]
        .filter((pl.col("datasource") == datasource) & (pl.col("month_end") == as_of))
        .sort(["charges", "payer_name"], descending=[True, False])
    )


def open_denials(inputs: ReportInputs, as_of: date) -> pl.DataFrame:
    """(hospital, bucket, open_denials, open_amount) of the denials open at `as_of`: denied
    by then and neither recovered nor written off by then, aged from the denial date.

    Computed from the dates rather than the worklist's own status and age, which are at the
    worklist's (later) date.
    """

    def settled_by_then(column: str) -> pl.Expr:
        return pl.col(column).is_not_null() & (pl.col(column) <= as_of)

    still_open = (
        inputs.marts["kpi_denied_claims"]
        .filter(
            (pl.col("denial_date") <= as_of)
            & ~settled_by_then("recovered_date")
            & ~settled_by_then("written_off_date")
        )
        .with_columns((pl.lit(as_of) - pl.col("denial_date")).dt.total_days().alias("age_days"))
        .group_by("datasource", aging_bucket(pl.col("age_days")).alias("bucket"))
        .agg(
            pl.len().cast(pl.Int64).alias("open_denials"),
            pl.col("denied_amount").sum().cast(pl.Float64).alias("open_amount"),
        )
    )
    return _by_bucket(inputs, still_open, ("open_denials", "open_amount"))
