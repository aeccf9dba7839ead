"""Denial management marts: denied amounts by reason, payer, procedure, provider and month, and
the worklist of denied claims with their age and outcome (docs/kpis.md)."""

import polars as pl

from rcm_assets.gold.adjudications import MONEY, classified
from rcm_assets.gold.dims import usable
from rcm_assets.gold.kpis import month_of

CLAIM_LEVEL = "(claim)"  # procedure of a denial made on the whole claim, not one line


def _descriptions(reason_codes: pl.LazyFrame) -> pl.LazyFrame:
    """The CARC list's description of each reason code."""
    return usable(reason_codes).select(
        pl.col("code").alias("reason_code"), pl.col("description").alias("reason_description")
    )


def denials(
    adjudications: pl.LazyFrame,
    adjustments: pl.LazyFrame,
    lines: pl.LazyFrame,
    reason_codes: pl.LazyFrame,
    reasons: pl.LazyFrame,
) -> pl.LazyFrame:
    """kpi_denials: denied amounts of every denied adjudication (a later recovery included) per
    denial month, CARC group and reason, payer, procedure, provider and department."""
    denied = adjudications.filter("is_denied").select(
        "remittance_claim_id",
        "datasource",
        "adjudication_key",
        "payer_name",
        "payment_date",
        "provider_key",
        "department_key",
        "resubmitted_date",
        "recovered_date",
    )
    procedures = usable(lines).select("remittance_claim_id", "line_number", "procedure_code")
    rows = (
        classified(usable(adjustments), reasons)
        .filter("is_denial")
        .join(denied, on=["remittance_claim_id", "datasource"])
        .join(procedures, on=["remittance_claim_id", "line_number"], how="left")
        .join(_descriptions(reason_codes), on="reason_code", how="left")
        .with_columns(
            pl.col("procedure_code").fill_null(CLAIM_LEVEL),
            pl.col("amount").cast(MONEY),
        )
    )
    keys = [
        "datasource",
        "month_end",
        "group_code",
        "reason_code",
        "payer_name",
        "procedure_code",
        "provider_key",
        "department_key",
    ]
    recovered = pl.col("recovered_date").is_not_null()
    return (
        rows.group_by(*keys[:1], month_of("payment_date"), *keys[2:])
        .agg(
            pl.col("reason_description", "category", "avoidable").first(),
            pl.col("adjudication_key").n_unique().cast(pl.Int64).alias("denials"),
            pl.col("amount").sum().alias("denied_amount"),
            pl.col("adjudication_key")
            .filter(pl.col("resubmitted_date").is_not_null())
            .n_unique()
            .cast(pl.Int64)
            .alias("resubmitted"),
            pl.col("adjudication_key")
            .filter(recovered)
            .n_unique()
            .cast(pl.Int64)
            .alias("recovered"),
            pl.col("amount").filter(recovered).sum().alias("recovered_amount"),
        )
        .sort(keys)
    )


def denied_claims(adjudications: pl.LazyFrame, reason_codes: pl.LazyFrame) -> pl.LazyFrame:
    """kpi_denied_claims: one row per denied adjudication, with its status at the data's as-of
    date (the datasource's latest payment date) and its age: days from the denial to its
    recovery or write-off, or to the as-of date while it is open."""
    as_of = pl.col("payment_date").max().over("datasource")
    rows = adjudications.with_columns(as_of.alias("as_of_date")).filter("is_denied")
    recovered = pl.col("recovered_date") <= pl.col("as_of_date")
    written_off = pl.col("written_off_date") <= pl.col("as_of_date")
    closed = pl.when(recovered).then("recovered_date").when(written_off).then("written_off_date")
    return (
        rows.with_columns(pl.col("denial_reason").str.split("-").list.last().alias("reason_code"))
        .join(_descriptions(reason_codes), on="reason_code", how="left")
        .select(
            "adjudication_key",
            "remittance_claim_key",
            "patient_control_number",
            "datasource",
            "payer_name",
            pl.col("payment_date").alias("denial_date"),
            "denied_amount",
            pl.col("denial_reason").alias("primary_reason"),
            "reason_description",
            pl.col("denial_category").alias("category"),
            pl.col("is_avoidable_denial").alias("avoidable"),
            "resubmitted_date",
            pl.when(recovered).then("recovered_date").alias("recovered_date"),
            pl.when(recovered).then("recovered_amount").alias("recovered_amount"),
            pl.when(written_off & ~recovered).then("written_off_date").alias("written_off_date"),
            pl.when(recovered)
            .then(pl.lit("recovered"))
            .when(written_off)
            .then(pl.lit("written_off"))
            .otherwise(pl.lit("open"))
            .alias("status"),
            (pl.coalesce(closed, "as_of_date") - pl.col("payment_date"))
            .dt.total_days()
            .alias("age_days"),
            "as_of_date",
        )
        .sort("adjudication_key")
    )
