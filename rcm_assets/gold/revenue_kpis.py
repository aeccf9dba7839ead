"""HFMA MAP Keys, MGMA measures and the payer scorecard from 837 and 835 data, per datasource and
calendar month (`month_end`). Formulas, their published sources and the proxies the data still
needs are in docs/kpis.md; every mart row says which proxies it rests on in `proxies`.
"""

import polars as pl

from rcm_assets.gold.adjudications import MONEY, WRITE_OFF_DAYS
from rcm_assets.gold.kpis import month_of, ratio

AGED_DAYS = 90  # aged A/R: older than this since the date of service
TRAILING_MONTHS = 3  # net revenue averaged over this many months (HFMA: three)
# A line is underpaid when its allowed amount is this far below the expected allowed: the median
# allowed amount of the same payer and procedure, once it has at least UNDERPAYMENT_MIN_LINES.
UNDERPAYMENT_TOLERANCE = 0.10
UNDERPAYMENT_MIN_LINES = 3
PROXIES = "; ".join(
    (
        "payments are payer payments from 835s (no patient payments in the data), so patient "
        "responsibility counts as uncollected",
        "net revenue is recognised when an 835 adjudicates the claim",
        "net A/R holds billed claims without an 835 at full charge",
        f"denials not paid within {WRITE_OFF_DAYS} days are presumed written off (no write-off "
        "transactions)",
        "expected allowed = median allowed of the payer and procedure (no contract fee schedule)",
    )
)
KEYS = ["datasource", "month_end"]


def calendar(adjudications: pl.LazyFrame, submissions: pl.LazyFrame) -> pl.LazyFrame:
    """(datasource, month_end) from the first bill to the last bill or payment, per datasource."""
    days = pl.concat(
        [
            submissions.select("datasource", pl.col("first_bill_date").alias("day")),
            adjudications.select("datasource", pl.col("payment_date").alias("day")),
        ]
    ).drop_nulls()
    return (
        days.group_by("datasource")
        .agg(
            pl.date_ranges(
                pl.col("day").min().dt.month_start(), pl.col("day").max().dt.month_start(), "1mo"
            )
            .first()
            .alias("month_end")
        )
        .explode("month_end")
        .with_columns(pl.col("month_end").dt.month_end())
    )


def _days(later: str, earlier: str) -> pl.Expr:
    return (pl.col(later) - pl.col(earlier)).dt.total_days()


def underpayments(lines: pl.LazyFrame, adjudications: pl.LazyFrame) -> pl.LazyFrame:
    """Paid service lines of current adjudications with their expected allowed amount and the
    shortfall (`underpaid_amount`, 0 unless below expected by more than the tolerance)."""
    claims = adjudications.filter("is_current_adjudication").select(
        "remittance_claim_id", "datasource", "payer_name", "payment_date"
    )
    group = ["datasource", "payer_name", "procedure_code"]
    allowed = pl.col("allowed_amount").cast(MONEY)
    return (
        lines.filter(pl.col("paid_amount") > 0)
        .join(claims, on=["remittance_claim_id", "datasource"])
        .with_columns(
            pl.when(allowed.count().over(group) >= UNDERPAYMENT_MIN_LINES)
            .then(allowed.median().over(group))
            .alias("expected_allowed")
        )
        .with_columns(
            pl.when(allowed < pl.col("expected_allowed") * (1 - UNDERPAYMENT_TOLERANCE))
            .then(pl.col("expected_allowed") - allowed)
            .otherwise(0.0)
            .alias("underpaid_amount")
        )
    )


def _underpaid_by(lines: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    return lines.group_by(*keys, month_of("payment_date")).agg(
        (pl.col("underpaid_amount") > 0).sum().cast(pl.Int64).alias("underpaid_lines"),
        pl.col("underpaid_amount").sum().alias("underpaid_amount"),
    )


def map_keys(
    adjudications: pl.LazyFrame, submissions: pl.LazyFrame, lines: pl.LazyFrame
) -> pl.LazyFrame:
    """kpi_map_keys: one row per datasource and month end (see docs/kpis.md)."""
    bills = submissions.filter(~pl.col("is_void"))
    billed = bills.group_by("datasource", month_of("first_bill_date")).agg(
        pl.len().cast(pl.Int64).alias("billed_claims"),
        pl.col("total_charge_amount").cast(MONEY).sum().alias("billed_charges"),
        _days("first_bill_date", "service_date").mean().alias("avg_days_service_to_bill"),
    )
    counted = adjudications.with_columns(
        pl.col("adjudication_number").max().over("remittance_claim_key").alias("adjudications")
    )
    first = counted.filter(pl.col("adjudication_number") == 1)
    paid_first_time = (
        (pl.col("paid_amount") > 0)
        & ~pl.col("is_denied")
        & (pl.col("adjudications") == 1)
        & pl.col("resubmitted_date").is_null()
    )
    remitted = first.group_by("datasource", month_of("payment_date")).agg(
        pl.len().cast(pl.Int64).alias("remitted_claims"),
        pl.col("charge_amount").sum().alias("remitted_charges"),
        pl.col("is_denied").sum().cast(pl.Int64).alias("initial_denials"),
        pl.col("charge_amount").filter("is_denied").sum().alias("initial_denied_amount"),
        paid_first_time.sum().cast(pl.Int64).alias("first_pass_claims"),
        _days("payment_date", "first_bill_date")
        .filter(pl.col("paid_amount") > 0)
        .mean()
        .alias("avg_days_bill_to_payment"),
    )
    posted = adjudications.group_by("datasource", month_of("payment_date")).agg(
        pl.col("paid_amount").sum().alias("payments"),
        pl.col("charge_amount").sum().alias("adjudicated_charges"),
        pl.col("contractual_amount").sum().alias("contractual_adjustments"),
        pl.col("patient_responsibility_amount").sum().alias("patient_responsibility"),
    )
    written_off = (
        adjudications.filter(pl.col("written_off_date").is_not_null())
        .group_by("datasource", month_of("written_off_date"))
        .agg(pl.col("denied_amount").sum().alias("denial_write_offs"))
    )
    months = calendar(adjudications, submissions)
    rows = months
    for part in (
        billed,
        remitted,
        posted,
        written_off,
        net_ar(adjudications, bills, months),
        _underpaid_by(underpayments(lines, adjudications), ["datasource"]),
    ):
        rows = rows.join(part, on=KEYS, how="left")
    counts = ["billed_claims", "remitted_claims", "initial_denials", "first_pass_claims"]
    amounts = [
        "billed_charges",
        "remitted_charges",
        "initial_denied_amount",
        "payments",
        "adjudicated_charges",
        "contractual_adjustments",
        "patient_responsibility",
        "denial_write_offs",
        "net_ar",
        "ar_over_90",
        "underpaid_amount",
    ]
    trailing = pl.col("net_patient_service_revenue").rolling_sum(TRAILING_MONTHS, min_samples=1)
    trailing_days = pl.col("month_end").dt.day().rolling_sum(TRAILING_MONTHS, min_samples=1)
    return (
        rows.sort(KEYS)
        .with_columns(
            pl.col(*counts, "underpaid_lines").fill_null(0), pl.col(*amounts).fill_null(0.0)
        )
        .with_columns(
            (pl.col("adjudicated_charges") - pl.col("contractual_adjustments")).alias(
                "net_patient_service_revenue"
            )
        )
        .with_columns(
            (trailing / TRAILING_MONTHS).over("datasource").alias("avg_monthly_npsr"),
            (trailing / trailing_days).over("datasource").alias("avg_daily_npsr"),
        )
        .with_columns(
            ratio("initial_denials", "remitted_claims").alias("initial_denial_rate_count"),
            ratio("initial_denied_amount", "remitted_charges").alias("initial_denial_rate_amount"),
            ratio("payments", "net_patient_service_revenue").alias("net_collection_rate"),
            ratio("payments", "adjudicated_charges").alias("gross_collection_rate"),
            ratio("payments", "avg_monthly_npsr").alias("cash_collection_pct_npsr"),
            ratio("denial_write_offs", "net_patient_service_revenue").alias(
                "denial_write_off_rate"
            ),
            ratio("ar_over_90", "net_ar").alias("aged_ar_over_90_pct"),
            ratio("net_ar", "avg_daily_npsr").alias("days_in_net_ar"),
            ratio("first_pass_claims", "remitted_claims").alias("first_pass_resolution_rate"),
            pl.lit(PROXIES).alias("proxies"),
        )
        .drop("avg_monthly_npsr", "avg_daily_npsr")
    )


def net_ar(adjudications: pl.LazyFrame, bills: pl.LazyFrame, months: pl.LazyFrame) -> pl.LazyFrame:
    """Net A/R at each month end: every claim billed by then, its charge less what the 835s
    posted by then paid or adjusted (payments, contractual, patient responsibility, other) and
    the denials written off by then; a denial stays open until recovered or written off.
    `ar_over_90`: the part of claims more than 90 days past their date of service."""
    reduced = pl.col("paid_amount") + pl.col("contractual_amount")
    reduced = reduced + pl.col("patient_responsibility_amount") + pl.col("other_adjustment_amount")
    postings = pl.concat(
        [
            adjudications.select("submission_key", month_of("payment_date"), reduced.alias("off")),
            adjudications.filter(pl.col("written_off_date").is_not_null()).select(
                "submission_key", month_of("written_off_date"), pl.col("denied_amount").alias("off")
            ),
        ]
    )
    postings = postings.group_by("submission_key", "month_end").agg(pl.col("off").sum())
    balances = (
        bills.select(
            "submission_key",
            "datasource",
            "first_bill_date",
            "service_date",
            pl.col("total_charge_amount").cast(MONEY).alias("charge"),
        )
        .join(months, on="datasource")
        .filter(pl.col("first_bill_date") <= pl.col("month_end"))
        .join(postings, on=["submission_key", "month_end"], how="left")
        .sort("submission_key", "month_end")
        .with_columns(
            (pl.col("charge") - pl.col("off").fill_null(0.0).cum_sum().over("submission_key"))
            .round(2)
            .alias("balance")
        )
        .filter(pl.col("balance") > 0)
    )
    aged = _days("month_end", "service_date") > AGED_DAYS
    return balances.group_by(KEYS).agg(
        pl.col("balance").sum().alias("net_ar"),
        pl.col("balance").filter(aged).sum().alias("ar_over_90"),
    )


def payer_scorecard(adjudications: pl.LazyFrame, lines: pl.LazyFrame) -> pl.LazyFrame:
    """kpi_payer_scorecard: per datasource, payment month and payer."""
    keys = ["datasource", "month_end", "payer_name"]
    adjudicated = adjudications.filter(~pl.col("is_reversal"))
    scores = adjudications.group_by("datasource", month_of("payment_date"), "payer_name").agg(
        (pl.col("adjudication_number") == 1).sum().cast(pl.Int64).alias("remitted_claims"),
        pl.col("charge_amount").sum().alias("charges"),
        pl.col("allowed_amount").sum().alias("allowed"),
        pl.col("paid_amount").sum().alias("payments"),
        pl.col("contractual_amount").sum().alias("contractual_adjustments"),
        pl.col("patient_responsibility_amount").sum().alias("patient_responsibility"),
    )
    denials = adjudicated.group_by("datasource", month_of("payment_date"), "payer_name").agg(
        pl.len().cast(pl.Int64).alias("adjudications"),
        pl.col("is_denied").sum().cast(pl.Int64).alias("denied_claims"),
        _days("payment_date", "first_bill_date")
        .filter(pl.col("paid_amount") > 0)
        .mean()
        .alias("avg_days_to_pay"),
    )
    underpaid = _underpaid_by(underpayments(lines, adjudications), ["datasource", "payer_name"])
    return (
        scores.join(denials, on=keys, how="left")
        .join(underpaid, on=keys, how="left")
        .with_columns(
            pl.col("adjudications", "denied_claims", "underpaid_lines").fill_null(0),
            pl.col("underpaid_amount").fill_null(0.0),
        )
        .with_columns(ratio("denied_claims", "adjudications").alias("denial_rate"))
        .drop("adjudications")
        .sort(keys)
    )
