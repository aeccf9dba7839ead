"""fact_transactions: one row per current, non-quarantined transaction, with its claim.

Foreign keys keep the silver key format (`<source id>-<datasource>`), which is the format of
every dimension's key, so they join without translation. A row whose dimension row is missing
stays in the fact; the referential-integrity check counts it. `fact_transactions` is not
sorted: delta-rs does not keep the order of the rows it writes (polars#26912), and Polars
would hold all 20M rows of scale 1000 to sort them.
"""

import polars as pl

from rcm_assets.gold.adjudications import fact_claim_adjudications
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
    )


ADJUSTMENT_GROUPS = ("CO", "PR", "OA", "PI", "CR")


def _current_adjudications(claims: pl.LazyFrame) -> pl.LazyFrame:
    """The adjudication of each claim that is current: a reversed or re-adjudicated one's
    lines and adjustments drop out of gold with it."""
    return usable(claims).select(
        "remittance_claim_id",
        "datasource",
        "remittance_claim_key",
        "submission_key",
        "claim_status_code",
        "payer_claim_control_number",
    )


def fact_remittance_lines(
    lines: pl.LazyFrame, adjustments: pl.LazyFrame, claims: pl.LazyFrame
) -> pl.LazyFrame:
    """One row per paid service line of a current claim adjudication, its CAS amounts summed
    by group (`co_adjustment_amount` …)."""
    by_group = (
        usable(adjustments)
        .filter(pl.col("level") == "service")
        .group_by("remittance_claim_id", "line_number", "datasource")
        .agg(
            pl.col("amount")
            .filter(pl.col("group_code") == group)
            .sum()
            .alias(f"{group.lower()}_adjustment_amount")
            for group in ADJUSTMENT_GROUPS
        )
    )
    return (
        usable(lines)
        .join(_current_adjudications(claims), on=["remittance_claim_id", "datasource"])
        .join(by_group, on=["remittance_claim_id", "line_number", "datasource"], how="left")
        .select(
            "service_line_key",
            "remittance_claim_key",
            "submission_key",
            "remittance_claim_id",
            "patient_control_number",
            "line_number",
            "procedure_qualifier",
            "procedure_code",
            "modifiers",
            "revenue_code",
            "service_date_start",
            "service_date_end",
            "charge_amount",
            "allowed_amount",
            "paid_amount",
            "units_paid",
            *[f"{g.lower()}_adjustment_amount" for g in ADJUSTMENT_GROUPS],
            "claim_status_code",
            "datasource",
        )
        .with_columns(
            pl.col(f"{g.lower()}_adjustment_amount").fill_null(0) for g in ADJUSTMENT_GROUPS
        )
        .sort("service_line_key")
    )


def fact_adjustments(
    adjustments: pl.LazyFrame, claims: pl.LazyFrame, reason_codes: pl.LazyFrame
) -> pl.LazyFrame:
    """One row per CAS amount of a current claim adjudication, with the CARC description; a
    code the published list lacks keeps a null description and `is_known_reason` false."""
    reasons = usable(reason_codes).select(
        pl.col("code").alias("reason_code"),
        pl.col("description").alias("reason_description"),
    )
    return (
        usable(adjustments)
        .join(_current_adjudications(claims), on=["remittance_claim_id", "datasource"])
        .join(reasons, on="reason_code", how="left")
        .select(
            "adjustment_key",
            "remittance_claim_key",
            "submission_key",
            "remittance_claim_id",
            "patient_control_number",
            "level",
            "line_number",
            "group_code",
            "reason_code",
            "reason_description",
            pl.col("reason_description").is_not_null().alias("is_known_reason"),
            "amount",
            "quantity",
            "payer_name",
            "claim_status_code",
            "datasource",
        )
        .sort("adjustment_key")
    )


def fact_claim_submissions(claims: pl.LazyFrame, lines: pl.LazyFrame) -> pl.LazyFrame:
    """One row per current 837 claim; a voided claim (frequency 8) stays, flagged. Its first
    bill date and latest resubmission come from the claim's earlier versions, its service date
    and first procedure from its lines."""
    history = (
        claims.filter(~pl.col("is_quarantined"))
        .group_by("submission_key")
        .agg(
            pl.col("submission_date").min().alias("first_bill_date"),
            pl.col("submission_date").max().filter(pl.len() > 1).first().alias("resubmission_date"),
            (pl.len() - 1).cast(pl.Int64).alias("resubmissions"),
        )
    )
    services = (
        usable(lines)
        .group_by("claim_id", "datasource")
        .agg(
            pl.col("service_date").min().alias("line_service_date"),
            pl.col("procedure_code").sort_by("line_number").first(),
        )
    )
    return (
        usable(claims)
        .join(history, on="submission_key", how="left")
        .join(services, on=["claim_id", "datasource"], how="left")
        .select(
            "submission_key",
            "claim_key",
            "claim_id",
            "claim_type",
            "total_charge_amount",
            "facility_code",
            "frequency_code",
            (pl.col("frequency_code") == "8").alias("is_void"),
            "billing_npi",
            "rendering_npi",
            "payer_name",
            "payer_id",
            "statement_date_start",
            "statement_date_end",
            pl.coalesce("statement_date_start", "line_service_date").alias("service_date"),
            "submission_date",
            "first_bill_date",
            "resubmission_date",
            "resubmissions",
            "procedure_code",
            "diagnosis_codes",
            "datasource",
        )
        .sort("submission_key")
    )


# Each fact: the tables it reads, in the order its function takes them.
FACTS = {
    "fact_transactions": (("silver/transactions", "silver/claims"), fact_transactions),
    "fact_remittance_lines": (
        (
            "silver/remittance_service_lines",
            "silver/remittance_adjustments",
            "silver/remittance_claims",
        ),
        fact_remittance_lines,
    ),
    "fact_adjustments": (
        ("silver/remittance_adjustments", "silver/remittance_claims", "silver/carc_codes"),
        fact_adjustments,
    ),
    "fact_claim_submissions": (
        ("silver/claim_submissions", "silver/claim_submission_lines"),
        fact_claim_submissions,
    ),
    "fact_claim_adjudications": (
        (
            "silver/remittance_claims",
            "silver/remittance_adjustments",
            "gold/fact_claim_submissions",
            "gold/fact_transactions",
            "metadata/denial_reasons",
        ),
        fact_claim_adjudications,
    ),
}
