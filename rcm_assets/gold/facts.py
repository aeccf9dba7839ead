"""fact_transactions: one row per current, non-quarantined transaction, with its claim.

Foreign keys keep the silver key format (`<source id>-<datasource>`), which is the format of
every dimension's key, so they join without translation. A row whose dimension row is missing
stays in the fact; the referential-integrity check counts it.
"""

import polars as pl

from rcm_assets.gold.dims import usable

FACT_COLUMNS = (
    "transaction_key",
    "patient_key",
    "provider_key",
    "department_key",
    "encounter_key",
    "claim_key",
    "procedure_code",
    "icd_code",
    "service_date",
    "paid_date",
    "amount",
    "paid_amount",
    "amount_type",
    "payor_id",
    "line_of_business",
    "datasource",
    "quality_flags",
)
CLAIM_COLUMNS = ("claim_key", "claim_date", "claim_status", "payor_type", "claim_amount")


def fact_transactions(transactions: pl.LazyFrame, claims: pl.LazyFrame) -> pl.LazyFrame:
    return (
        usable(transactions)
        .select(FACT_COLUMNS)
        .join(usable(claims).select(CLAIM_COLUMNS), on="claim_key", how="left")
        .sort("transaction_key")
    )
