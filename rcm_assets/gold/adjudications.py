"""What each claim's 835s did to it: every adjudication, its denials, recoveries, write-offs.

Silver keeps every adjudication of a claim as a version (a reversal and its re-adjudication
included), so the first one, the current one and everything between are all here. Which CAS
reason codes are denials, their category and whether they were avoidable is metadata
(`metadata/denial_reasons.csv`); the formulas built on these rows are in docs/kpis.md.
"""

from collections.abc import Iterable

import polars as pl

from rcm_assets.gold.dims import usable
from rcm_assets.metadata import DenialReason

DENIED_STATUS = "4"  # CLP02: denied
REVERSAL_STATUS = "22"  # CLP02: reversal of a previous payment
# A denial not paid by a later adjudication this many days after it is presumed written off:
# the data has no write-off transactions, and most payers' appeal windows are 90 to 180 days.
WRITE_OFF_DAYS = 120
MONEY = pl.Float64


def denial_reasons_frame(rows: Iterable[DenialReason]) -> pl.LazyFrame:
    """metadata/denial_reasons.csv as a frame (group `*`: any group)."""
    return pl.LazyFrame(
        [(r.group_code, r.reason_code, r.category, r.avoidable) for r in rows],
        schema={
            "group_code": pl.String,
            "reason_code": pl.String,
            "category": pl.String,
            "avoidable": pl.Boolean,
        },
        orient="row",
    )


def classified(adjustments: pl.LazyFrame, reasons: pl.LazyFrame) -> pl.LazyFrame:
    """Adjustments with `is_denial`, `category` and `avoidable`: a reason listed for the
    adjustment's group, else for any group (`*`). Patient responsibility (PR) never denies."""
    exact = reasons.filter(pl.col("group_code") != "*")
    any_group = reasons.filter(pl.col("group_code") == "*").drop("group_code")
    return (
        adjustments.join(exact, on=["group_code", "reason_code"], how="left")
        .join(any_group, on="reason_code", how="left", suffix="_any")
        .with_columns(
            pl.coalesce("category", "category_any").alias("category"),
            pl.coalesce("avoidable", "avoidable_any").alias("avoidable"),
        )
        .drop("category_any", "avoidable_any")
        .with_columns(
            (pl.col("category").is_not_null() & (pl.col("group_code") != "PR")).alias("is_denial")
        )
    )


def _adjustment_sums(adjustments: pl.LazyFrame, reasons: pl.LazyFrame) -> pl.LazyFrame:
    """Per adjudication: contractual, denied and other adjustments, and the largest denial."""
    rows = (
        classified(usable(adjustments), reasons)
        .with_columns(
            pl.col("amount").cast(MONEY),
            pl.concat_str("group_code", pl.lit("-"), "reason_code").alias("reason"),
        )
        .sort("reason")  # of two equal denials, the lower code is the primary one, every run
    )
    denial, contractual = pl.col("is_denial"), (pl.col("group_code") == "CO") & ~pl.col("is_denial")
    largest = pl.col("amount").filter(denial).arg_max()
    return rows.group_by("remittance_claim_id", "datasource").agg(
        pl.col("amount").filter(contractual).sum().alias("contractual_amount"),
        pl.col("amount").filter(denial).sum().alias("denied_amount"),
        pl.col("amount").filter(~contractual & ~denial & (pl.col("group_code") != "PR")).sum()
        .alias("other_adjustment_amount"),
        pl.col("reason").filter(denial).get(largest).alias("denial_reason"),
        pl.col("category").filter(denial).get(largest).alias("denial_category"),
        pl.col("avoidable").filter(denial).get(largest).alias("is_avoidable_denial"),
    )  # fmt: skip


def fact_claim_adjudications(
    claims: pl.LazyFrame,
    adjustments: pl.LazyFrame,
    submissions: pl.LazyFrame,
    transactions: pl.LazyFrame,
    reasons: pl.LazyFrame,
) -> pl.LazyFrame:
    """One row per adjudication of a claim (every non-quarantined silver version), numbered in
    the payer's order, with the claim's bill and service dates and its provider and department.

    `claims` is silver/remittance_claims (all versions), `submissions` gold/fact_claim_submissions,
    `transactions` gold/fact_transactions, `reasons` the denial classification."""
    versions = claims.filter(~pl.col("is_quarantined")).with_columns(
        pl.col("charge_amount", "paid_amount", "patient_responsibility_amount").cast(MONEY)
    )
    # Only the claims an 837 names: the fact holds every EMR transaction (20M rows at scale
    # 1000), and a group-by that sorts within groups holds what it reads.
    billed = submissions.select("claim_key")
    per_claim = (
        transactions.join(billed, on="claim_key", how="semi")
        .group_by("claim_key")
        .agg(pl.col("provider_key", "department_key").sort_by("transaction_key").first())
    )
    bills = submissions.select(
        "submission_key",
        "claim_key",
        "first_bill_date",
        "service_date",
        "resubmission_date",
        "procedure_code",
    ).join(per_claim, on="claim_key", how="left")
    rows = (
        versions.join(
            _adjustment_sums(adjustments, reasons),
            on=["remittance_claim_id", "datasource"],
            how="left",
        )
        .join(bills, on="submission_key", how="left")
        .with_columns(
            pl.col("contractual_amount", "denied_amount", "other_adjustment_amount").fill_null(0.0),
            pl.col("remittance_sequence")
            .rank("ordinal")
            .over("remittance_claim_key")
            .cast(pl.Int64)
            .alias("adjudication_number"),
            (pl.col("claim_status_code") == REVERSAL_STATUS).alias("is_reversal"),
        )
        .with_columns(
            (
                ~pl.col("is_reversal")
                & ((pl.col("claim_status_code") == DENIED_STATUS) | (pl.col("denied_amount") > 0))
            ).alias("is_denied"),
            (pl.col("paid_amount") + pl.col("patient_responsibility_amount")).alias(
                "allowed_amount"
            ),
        )
    )
    return (
        rows.join(_recoveries(rows), on="remittance_claim_id", how="left")
        .select(
            pl.concat_str("remittance_claim_id", pl.lit("-"), "datasource").alias(
                "adjudication_key"
            ),
            "remittance_claim_key",
            "remittance_claim_id",
            "submission_key",
            "claim_key",
            "patient_control_number",
            "adjudication_number",
            pl.col("is_current").alias("is_current_adjudication"),
            "claim_status_code",
            "is_reversal",
            "is_denied",
            "charge_amount",
            "paid_amount",
            "patient_responsibility_amount",
            "allowed_amount",
            "contractual_amount",
            "denied_amount",
            "other_adjustment_amount",
            "denial_reason",
            "denial_category",
            "is_avoidable_denial",
            "payer_name",
            "payer_id",
            "payment_date",
            "first_bill_date",
            "service_date",
            pl.when(pl.col("is_denied") & (pl.col("resubmission_date") > pl.col("payment_date")))
            .then("resubmission_date")
            .alias("resubmitted_date"),
            "recovered_date",
            "recovered_amount",
            pl.when(
                pl.col("is_denied")
                & (
                    pl.col("recovered_date").is_null()
                    | (pl.col("recovered_date") > _write_off_date())
                )
            )
            .then(_write_off_date())
            .alias("written_off_date"),
            "procedure_code",
            "provider_key",
            "department_key",
            "datasource",
        )
        .sort("adjudication_key")
    )


def _write_off_date() -> pl.Expr:
    return pl.col("payment_date") + pl.duration(days=WRITE_OFF_DAYS)


def _recoveries(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Per denied adjudication: the first later adjudication of the claim that paid more, its
    date and the amount it added."""
    denied = rows.filter("is_denied").select(
        "remittance_claim_id", "remittance_claim_key", "adjudication_number", "paid_amount"
    )
    later = rows.filter(~pl.col("is_reversal")).select(
        "remittance_claim_key",
        pl.col("adjudication_number").alias("later_number"),
        pl.col("paid_amount").alias("later_paid"),
        pl.col("payment_date").alias("recovered_date"),
    )
    return (
        denied.join(later, on="remittance_claim_key")
        .filter(
            (pl.col("later_number") > pl.col("adjudication_number"))
            & (pl.col("later_paid") > pl.col("paid_amount"))
        )
        .sort("later_number")
        .group_by("remittance_claim_id")
        .agg(
            pl.col("recovered_date").first(),
            (pl.col("later_paid") - pl.col("paid_amount")).first().alias("recovered_amount"),
        )
    )
