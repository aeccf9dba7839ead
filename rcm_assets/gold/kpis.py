"""RCM KPI marts as pure Polars functions over `fact_transactions` (formulas in docs/kpis.md).

Every mart is per datasource and calendar month. A/R is measured at each month end: a claim is
open when it was filed by then and its charge is not fully paid by then. The data has no
contractual adjustments or remittance advice, so the textbook "net" measures are replaced by
the proxies named in the docs.
"""

import polars as pl

AGING_BUCKETS = ("0-30", "31-60", "61-90", "91-120", "120+")
DENIED = ("Denied", "Rejected")
TRAILING_DAYS = 90  # days of charges averaged for days in A/R


def month_ends(fact: pl.LazyFrame) -> pl.LazyFrame:
    """Every month end from the first service month to the last claim or payment month."""
    bounds = fact.select(
        pl.col("service_date").min().alias("first"),
        pl.max_horizontal(
            pl.col("service_date").max(), pl.col("claim_date").max(), pl.col("paid_date").max()
        ).alias("last"),
    )
    return bounds.select(
        pl.date_ranges(pl.col("first").dt.month_start(), pl.col("last").dt.month_start(), "1mo")
        .explode()
        .dt.month_end()
        .alias("month_end")
    )


def open_balances(fact: pl.LazyFrame, ends: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """(datasource, month_end, transaction) open balance and age in days at each month end
    (`ends`, by default `month_ends(fact)`).

    Balance = charged minus paid by that date (nothing once a `Paid` claim is paid); age counts
    from the date of service.
    """
    filed = fact.filter(pl.col("claim_date").is_not_null())
    paid = pl.col("paid_date").is_not_null() & (pl.col("paid_date") <= pl.col("month_end"))
    # A claim paid in full status is settled: what the payer did not pay is a contractual
    # adjustment (absent from the data), not open A/R.
    paid_by_then = (
        pl.when(paid & (pl.col("claim_status") == "Paid"))
        .then(pl.col("amount"))
        .when(paid)
        .then(pl.col("paid_amount").fill_null(0))
        .otherwise(0)
    )
    return (
        filed.join(month_ends(fact) if ends is None else ends, how="cross")
        .filter(pl.col("claim_date") <= pl.col("month_end"))
        .with_columns(
            (pl.col("amount") - paid_by_then).cast(pl.Float64).alias("open_balance"),
            (pl.col("month_end") - pl.col("service_date")).dt.total_days().alias("age_days"),
        )
        .filter(pl.col("open_balance") > 0)
    )


def aging_bucket(age_days: pl.Expr) -> pl.Expr:
    return (
        pl.when(age_days <= 30)
        .then(pl.lit("0-30"))
        .when(age_days <= 60)
        .then(pl.lit("31-60"))
        .when(age_days <= 90)
        .then(pl.lit("61-90"))
        .when(age_days <= 120)
        .then(pl.lit("91-120"))
        .otherwise(pl.lit("120+"))
    )


def ar_aging(fact: pl.LazyFrame, ends: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Open A/R by aging bucket at each month end (only buckets that hold a balance)."""
    return (
        open_balances(fact, ends)
        .group_by("datasource", "month_end", aging_bucket(pl.col("age_days")).alias("bucket"))
        .agg(pl.col("open_balance").sum().round(2), pl.len().alias("open_items"))
        .sort("datasource", "month_end", "bucket")
    )


def month_of(column: str) -> pl.Expr:
    """The month end of a date column, as `month_end`: the month a mart row counts it in."""
    return pl.col(column).dt.month_end().alias("month_end")


def monthly(
    fact: pl.LazyFrame, ends: pl.LazyFrame | None = None, trailing_days: int = TRAILING_DAYS
) -> pl.LazyFrame:
    """Charges, payments, collection rate, denial rates, A/R over 90, days in A/R, charge lag."""
    charges = fact.group_by("datasource", month_of("service_date")).agg(
        pl.col("amount").sum().cast(pl.Float64).alias("charges"),
    )
    payments = (
        fact.filter(pl.col("paid_date").is_not_null())
        .group_by("datasource", month_of("paid_date"))
        .agg(pl.col("paid_amount").sum().cast(pl.Float64).alias("payments"))
    )
    claims = (
        fact.filter(pl.col("claim_date").is_not_null())
        .group_by("datasource", month_of("claim_date"))
        .agg(
            pl.len().alias("claims_submitted"),
            pl.col("claim_status").is_in(DENIED).sum().alias("claims_denied"),
            pl.col("amount").sum().cast(pl.Float64).alias("claimed_amount"),
            pl.col("amount").filter(pl.col("claim_status").is_in(DENIED)).sum().cast(pl.Float64)
            .alias("denied_amount"),
            (pl.col("claim_date") - pl.col("service_date")).dt.total_days().mean()
            .alias("avg_charge_lag_days"),
        )
    )  # fmt: skip
    open_ar = (
        open_balances(fact, ends)
        .group_by("datasource", "month_end")
        .agg(
            pl.col("open_balance").sum().alias("open_ar"),
            pl.col("open_balance").filter(pl.col("age_days") > 90).sum().alias("ar_over_90"),
        )
    )
    daily = trailing_charges(fact, trailing_days, ends)
    keys = ["datasource", "month_end"]
    return (
        charges.join(payments, on=keys, how="full", coalesce=True)
        .join(claims, on=keys, how="full", coalesce=True)
        .join(open_ar, on=keys, how="full", coalesce=True)
        .join(daily, on=keys, how="left")
        .with_columns(pl.col("charges", "payments", "open_ar", "ar_over_90").fill_null(0.0))
        .with_columns(
            ratio(pl.col("payments"), pl.col("charges")).alias("gross_collection_rate"),
            ratio(pl.col("claims_denied"), pl.col("claims_submitted")).alias("denial_rate_count"),
            ratio(pl.col("denied_amount"), pl.col("claimed_amount")).alias("denial_rate_amount"),
            ratio(pl.col("ar_over_90"), pl.col("open_ar")).alias("ar_over_90_share"),
            ratio(pl.col("open_ar"), pl.col("avg_daily_charges")).alias("days_in_ar"),
        )
        .sort(keys)
    )


def trailing_charges(
    fact: pl.LazyFrame, days: int = TRAILING_DAYS, ends: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Average daily charges over the `days` days up to each month end."""
    return (
        fact.select("datasource", "service_date", "amount")
        .join(month_ends(fact) if ends is None else ends, how="cross")
        .filter(
            (pl.col("service_date") <= pl.col("month_end"))
            & (pl.col("service_date") > pl.col("month_end") - pl.duration(days=days))
        )
        .group_by("datasource", "month_end")
        .agg((pl.col("amount").sum().cast(pl.Float64) / days).alias("avg_daily_charges"))
    )


def ratio(numerator: pl.Expr | str, denominator: pl.Expr | str) -> pl.Expr:
    """numerator ÷ denominator, empty (not 0, not infinite) when there is no denominator."""
    if isinstance(numerator, str):
        numerator = pl.col(numerator)
    if isinstance(denominator, str):
        denominator = pl.col(denominator)
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def payer_mix(fact: pl.LazyFrame) -> pl.LazyFrame:
    """Share of each payer type in the month's charges, with its denial rate."""
    by_payer = fact.group_by("datasource", month_of("service_date"), "payor_type").agg(
        pl.col("amount").sum().cast(pl.Float64).alias("charges"),
        pl.len().alias("lines"),
        pl.col("claim_status").is_in(DENIED).sum().alias("denied"),
    )
    return by_payer.with_columns(
        (pl.col("charges") / pl.col("charges").sum().over("datasource", "month_end")).alias(
            "share_of_charges"
        ),
        ratio(pl.col("denied"), pl.col("lines")).alias("denial_rate_count"),
    ).sort("datasource", "month_end", "payor_type")


def provider_department(fact: pl.LazyFrame) -> pl.LazyFrame:
    """Monthly charges (by service date) and payments (by paid date) per provider/department."""
    keys = ["datasource", "month_end", "provider_key", "department_key"]
    charges = fact.group_by(
        "datasource", month_of("service_date"), "provider_key", "department_key"
    ).agg(pl.col("amount").sum().cast(pl.Float64).alias("charges"), pl.len().alias("lines"))
    payments = (
        fact.filter(pl.col("paid_date").is_not_null())
        .group_by("datasource", month_of("paid_date"), "provider_key", "department_key")
        .agg(pl.col("paid_amount").sum().cast(pl.Float64).alias("payments"))
    )
    return (
        charges.join(payments, on=keys, how="full", coalesce=True)
        .with_columns(pl.col("charges", "payments").fill_null(0.0), pl.col("lines").fill_null(0))
        .sort(keys)
    )


RATE, DAYS, AMOUNT = (0.0, 1.0), (0.0, None), (0.0, None)
# What a KPI mart's column can possibly hold, by column name (a name means the same in every
# mart); a value outside is a broken mart, flagged by the `value_bounds` check.
VALUE_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    **dict.fromkeys(
        (
            "denial_rate_count",
            "denial_rate_amount",
            "ar_over_90_share",
            "share_of_charges",
            "initial_denial_rate_count",
            "initial_denial_rate_amount",
            "aged_ar_over_90_pct",
            "first_pass_resolution_rate",
            "denial_rate",
        ),
        RATE,
    ),
    **dict.fromkeys(
        (
            "days_in_ar",
            "avg_charge_lag_days",
            "days_in_net_ar",
            "avg_days_service_to_bill",
            "avg_days_bill_to_payment",
            "avg_days_to_pay",
            "age_days",
        ),
        DAYS,
    ),
    **dict.fromkeys(
        ("open_balance", "open_ar", "net_ar", "ar_over_90", "billed_charges", "underpaid_amount"),
        AMOUNT,
    ),
}
