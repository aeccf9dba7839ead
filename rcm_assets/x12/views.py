"""Bronze X12 segments → one row per business record (payment, claim, line, adjustment).

Pure Polars. A segment's elements are named by their X12 reference (`CLP01`, `SVC03`), so
metadata/silver_columns.csv maps implementation-guide elements to the common data model; what a
record takes from around it (the payment's trace number, the claim a service line belongs to)
comes from its place in the transaction set: the rows are in file order, and each claim, service
line and hierarchical level is numbered by a running count of the segment that opens it.

Each view keeps `datasource`, `load_id`, `source_file` and `ingested_at`, and adds
`balance_difference` where the 835 says what must add up, so a quality rule can quarantine a
record that does not balance and name by how much.
"""

from collections.abc import Callable

import polars as pl

SET = [
    "load_id",
    "interchange_control_number",
    "group_control_number",
    "transaction_set_control_number",
]
LINEAGE = ["datasource", "source_file", "ingested_at"]  # beside the load id, in SET
CAS_TRIPLETS = 6  # CAS02-04 … CAS17-19: reason, amount, quantity
PLB_PAIRS = 6  # PLB03-04 … PLB13-14: reason (composite), amount


def _el(position: int) -> pl.Expr:
    return pl.col("_elements").list.get(position, null_on_oob=True)


def _part(position: int, component: int) -> pl.Expr:
    """A component of a composite element (`HC:99213:25` → HC, 99213, 25)."""
    return (
        _el(position).str.split(pl.col("component_separator")).list.get(component, null_on_oob=True)
    )


def _is(segment: str, qualifier: str | None = None) -> pl.Expr:
    matched = pl.col("segment_id") == segment
    return matched & (_el(1) == qualifier) if qualifier else matched


def _amount(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Float64, strict=False)


def _elements(segments: pl.LazyFrame, opens: dict[str, pl.Expr]) -> pl.LazyFrame:
    """The transaction sets' segments in file order, split, with running counts `opens`
    (name → the segment that starts a new one) per set."""
    rows = (
        segments.filter(pl.col("transaction_set_control_number").is_not_null())
        .sort([*SET, "segment_number"])
        .with_columns(pl.col("raw_text").str.split(pl.col("element_separator")).alias("_elements"))
    )
    scope = list(SET)
    for name, opens_one in opens.items():
        rows = rows.with_columns(opens_one.cast(pl.Int64).cum_sum().over(scope).alias(name))
        scope.append(name)
    return rows


def _first(condition: pl.Expr, value: pl.Expr) -> pl.Expr:
    return value.filter(condition).first()


def _sequence(date: pl.Expr) -> pl.Expr:
    """A text that sorts versions of one record in the order the payer sent them: the date of
    the transaction, the interchange and set, then the position in the file."""
    return pl.concat_str(
        [
            date.fill_null(""),
            pl.col("interchange_control_number"),
            pl.col("transaction_set_control_number"),
            pl.col("segment_number").cast(pl.String).str.zfill(9),
        ],
        separator="-",
    )


# --- 835 remittance advice --------------------------------------------------------------------


def _remittance(segments: pl.LazyFrame) -> pl.LazyFrame:
    return _elements(
        segments.filter(pl.col("transaction_type") == "835"),
        {"claim_number": _is("CLP")},
    ).with_columns(
        (_is("SVC").cast(pl.Int64).cum_sum().over([*SET, "claim_number"])).alias("line_number")
    )


def _payments(rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row per 835 transaction set: BPR, TRN, payer (N1*PR) and payee (N1*PE)."""
    return rows.group_by(SET).agg(
        *[pl.col(c).first() for c in LINEAGE],
        *[_first(_is("BPR"), _el(i)).alias(f"BPR{i:02d}") for i in (1, 2, 3, 4, 16)],
        _first(_is("TRN"), _el(2)).alias("TRN02"),
        _first(_is("TRN"), _el(3)).alias("TRN03"),
        _first(_is("N1", "PR"), _el(2)).alias("payer_name"),
        pl.coalesce(_first(_is("REF", "2U"), _el(2)), _first(_is("N1", "PR"), _el(4))).alias(
            "payer_id"
        ),
        _first(_is("N1", "PE"), _el(2)).alias("payee_name"),
        _first(_is("N1", "PE"), _el(3)).alias("payee_id_qualifier"),
        _first(_is("N1", "PE"), _el(4)).alias("payee_id"),
        _first(_is("REF", "TJ"), _el(2)).alias("payee_tax_id"),
        _amount(_el(4).filter(_is("CLP"))).sum().alias("claims_paid_total"),
        _plb_amounts().filter(_is("PLB")).list.sum().sum().alias("provider_adjustment_total"),
        _sequence(_first(_is("BPR"), _el(16))).first().alias("remittance_sequence"),
    )


def _plb_amounts() -> pl.Expr:
    return pl.concat_list([_amount(_el(4 + 2 * i)) for i in range(PLB_PAIRS)]).list.drop_nulls()


def remittance_payments(segments: pl.LazyFrame) -> pl.LazyFrame:
    return _payments(_remittance(segments)).with_columns(
        payee_npi=pl.when(pl.col("payee_id_qualifier") == "XX").then(pl.col("payee_id")),
        balance_difference=(
            _amount(pl.col("BPR02"))
            - (pl.col("claims_paid_total") - pl.col("provider_adjustment_total"))
        ).round(2),
    )


def _cas(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Every adjustment amount of every CAS segment, one row each, with its place."""
    triplets = pl.concat_list(
        [
            pl.struct(
                _el(2 + 3 * i).alias("reason_code"),
                _el(3 + 3 * i).alias("amount_text"),
                _el(4 + 3 * i).alias("quantity_text"),
                pl.lit(i + 1).alias("triplet"),
            )
            for i in range(CAS_TRIPLETS)
        ]
    )
    return (
        rows.filter(_is("CAS"))
        .with_columns(_el(1).alias("group_code"), triplets.alias("_triplets"))
        .explode("_triplets")
        .unnest("_triplets")
        .filter(pl.col("reason_code").is_not_null() & (pl.col("reason_code") != ""))
        .with_columns(
            _amount(pl.col("amount_text")).alias("amount"),
            _amount(pl.col("quantity_text")).alias("quantity"),
        )
    )


def _claim_id() -> pl.Expr:
    """A claim as it appears in one remittance: its payment's trace number and place."""
    return pl.concat_str(
        [pl.col("trace_number"), pl.col("claim_number").cast(pl.String)], separator=":"
    )


def _with_payment(frame: pl.LazyFrame, rows: pl.LazyFrame) -> pl.LazyFrame:
    payment = _payments(rows).select(
        *SET,
        pl.col("TRN02").alias("trace_number"),
        "payer_name",
        "payer_id",
        pl.col("BPR16").alias("payment_date"),
    )
    return frame.join(payment, on=SET, how="left")


def remittance_claims(segments: pl.LazyFrame) -> pl.LazyFrame:
    rows = _remittance(segments)
    claims = rows.filter(_is("CLP")).select(
        *SET,
        *LINEAGE,
        "claim_number",
        *[_el(i).alias(f"CLP{i:02d}") for i in range(1, 13)],
        _sequence(pl.lit(None, pl.String)).alias("_position"),
    )
    per_claim = [*SET, "claim_number"]
    patients = (
        rows.filter(_is("NM1", "QC"))
        .group_by(per_claim)
        .agg(
            _el(3).first().alias("patient_last_name"),
            _el(4).first().alias("patient_first_name"),
            _el(9).first().alias("patient_member_id"),
        )
    )
    adjusted = _cas(rows).group_by(per_claim).agg(pl.col("amount").sum().alias("adjustments"))
    return (
        _with_payment(claims, rows)
        .join(patients, on=per_claim, how="left")
        .join(adjusted, on=per_claim, how="left")
        .with_columns(
            remittance_claim_id=_claim_id(),
            remittance_sequence=pl.concat_str(
                [pl.col("payment_date").fill_null(""), pl.col("_position")], separator="-"
            ),
            balance_difference=(
                _amount(pl.col("CLP03"))
                - _amount(pl.col("CLP04"))
                - pl.col("adjustments").fill_null(0.0)
            ).round(2),
        )
        .drop("_position", "adjustments")
    )


def _modifiers(parts: list[pl.Expr]) -> pl.Expr:
    """A service line's procedure modifiers, space-separated; null when it has none. (`when`,
    not `replace("", None)`: `replace` takes a query out of Polars' streaming engine.)"""
    joined = pl.concat_str(parts, separator=" ", ignore_nulls=True)
    return pl.when(joined != "").then(joined).alias("modifiers")


def remittance_service_lines(segments: pl.LazyFrame) -> pl.LazyFrame:
    rows = _remittance(segments)
    per_line = [*SET, "claim_number", "line_number"]
    lines = rows.filter(_is("SVC")).select(
        *per_line,
        *LINEAGE,
        *[_el(i).alias(f"SVC{i:02d}") for i in range(1, 8)],
        _part(1, 0).alias("procedure_qualifier"),
        _part(1, 1).alias("procedure_code"),
        _modifiers([_part(1, i) for i in range(2, 6)]),
    )
    details = (
        rows.filter(pl.col("line_number") > 0)
        .group_by(per_line)
        .agg(
            pl.coalesce(_first(_is("DTM", "472"), _el(2)), _first(_is("DTM", "150"), _el(2))).alias(
                "service_date_start"
            ),
            pl.coalesce(_first(_is("DTM", "472"), _el(2)), _first(_is("DTM", "151"), _el(2))).alias(
                "service_date_end"
            ),
            _first(_is("AMT", "B6"), _el(2)).alias("allowed_amount"),
            _first(_is("REF", "6R"), _el(2)).alias("line_control_number"),
        )
    )
    adjusted = (
        _cas(rows.filter(pl.col("line_number") > 0))
        .group_by(per_line)
        .agg(pl.col("amount").sum().alias("adjustments"))
    )
    claims = rows.filter(_is("CLP")).select(
        *SET, "claim_number", _el(1).alias("patient_control_number")
    )
    return (
        _with_payment(lines, rows)
        .join(claims, on=[*SET, "claim_number"], how="left")
        .join(details, on=per_line, how="left")
        .join(adjusted, on=per_line, how="left")
        .with_columns(
            remittance_claim_id=_claim_id(),
            service_line_id=pl.concat_str(
                [_claim_id(), pl.col("line_number").cast(pl.String)], separator=":"
            ),
            balance_difference=(
                _amount(pl.col("SVC02"))
                - _amount(pl.col("SVC03"))
                - pl.col("adjustments").fill_null(0.0)
            ).round(2),
        )
        .drop("adjustments")
    )


def remittance_adjustments(segments: pl.LazyFrame) -> pl.LazyFrame:
    rows = _remittance(segments)
    claims = rows.filter(_is("CLP")).select(
        *SET, "claim_number", _el(1).alias("patient_control_number")
    )
    adjustments = _cas(rows).select(
        *SET,
        *LINEAGE,
        "claim_number",
        "line_number",
        "segment_number",
        "triplet",
        "group_code",
        "reason_code",
        "amount_text",
        "quantity_text",
    )
    return (
        _with_payment(adjustments, rows)
        .join(claims, on=[*SET, "claim_number"], how="left")
        .with_columns(
            level=pl.when(pl.col("line_number") == 0)
            .then(pl.lit("claim"))
            .otherwise(pl.lit("service")),
            line_number=pl.when(pl.col("line_number") > 0).then(pl.col("line_number")),
            remittance_claim_id=_claim_id(),
            adjustment_id=pl.concat_str(
                [
                    _claim_id(),
                    pl.col("segment_number").cast(pl.String),
                    pl.col("triplet").cast(pl.String),
                ],
                separator=":",
            ),
        )
    )


def remittance_provider_adjustments(segments: pl.LazyFrame) -> pl.LazyFrame:
    rows = _remittance(segments)
    pairs = pl.concat_list(
        [
            pl.struct(
                _part(3 + 2 * i, 0).alias("reason_code"),
                _part(3 + 2 * i, 1).alias("reference"),
                _el(4 + 2 * i).alias("amount_text"),
                pl.lit(i + 1).alias("pair"),
            )
            for i in range(PLB_PAIRS)
        ]
    )
    adjustments = (
        rows.filter(_is("PLB"))
        .select(
            *SET,
            *LINEAGE,
            "segment_number",
            _el(1).alias("provider_id"),
            _el(2).alias("fiscal_period_date"),
            pairs.alias("_pairs"),
        )
        .explode("_pairs")
        .unnest("_pairs")
        .filter(pl.col("reason_code").is_not_null() & (pl.col("reason_code") != ""))
    )
    return _with_payment(adjustments, rows).with_columns(
        provider_adjustment_id=pl.concat_str(
            [
                pl.col("trace_number"),
                pl.col("segment_number").cast(pl.String),
                pl.col("pair").cast(pl.String),
            ],
            separator=":",
        )
    )


# --- 837 claims -------------------------------------------------------------------------------


def _submission(segments: pl.LazyFrame) -> pl.LazyFrame:
    rows = _elements(
        segments.filter(pl.col("transaction_type").str.starts_with("837")),
        {"subscriber_number": _is("HL") & (_el(3) == "22"), "claim_number": _is("CLM")},
    )
    per_subscriber = [*SET, "subscriber_number"]
    return rows.with_columns(
        _is("LX")
        .cast(pl.Int64)
        .cum_sum()
        .over([*SET, "subscriber_number", "claim_number"])
        .alias("line_number"),
        pl.when(_is("NM1", "85")).then(_el(9)).forward_fill().over(SET).alias("billing_npi"),
        pl.when(_is("NM1", "85")).then(_el(3)).forward_fill().over(SET).alias("billing_name"),
        pl.when(_is("REF", "EI")).then(_el(2)).forward_fill().over(SET).alias("billing_tax_id"),
        pl.when(_is("BHT")).then(_el(4)).forward_fill().over(SET).alias("submission_date"),
        *[
            pl.when(_is("NM1", code)).then(_el(i)).forward_fill().over(per_subscriber).alias(name)
            for code, i, name in (
                ("IL", 3, "subscriber_last_name"),
                ("IL", 4, "subscriber_first_name"),
                ("IL", 9, "subscriber_member_id"),
                ("QC", 3, "patient_last_name"),
                ("QC", 4, "patient_first_name"),
                ("PR", 3, "payer_name"),
                ("PR", 9, "payer_id"),
            )
        ],
    )


def claim_submissions(segments: pl.LazyFrame) -> pl.LazyFrame:
    rows = _submission(segments)
    per_claim = [*SET, "subscriber_number", "claim_number"]
    diagnoses = pl.concat_list([_part(i, 1) for i in range(1, 13)]).list.drop_nulls()
    details = (
        rows.filter((pl.col("claim_number") > 0) & (pl.col("line_number") == 0))
        .group_by(per_claim)
        .agg(
            diagnoses.filter(_is("HI"))
            .list.explode(keep_nulls=False, empty_as_null=False)
            .str.join(" ")
            .alias("diagnosis_codes"),
            _first(_is("DTP", "434"), _el(3)).alias("statement_dates"),
            _first(_is("NM1", "82"), _el(9)).alias("rendering_npi"),
        )
    )
    claims = rows.filter(_is("CLM")).select(
        *per_claim,
        *LINEAGE,
        *[_el(i).alias(f"CLM{i:02d}") for i in (1, 2)],
        _part(5, 0).alias("facility_code"),
        _part(5, 2).alias("frequency_code"),
        pl.col("transaction_type").alias("claim_type"),
        "billing_npi",
        "billing_name",
        "billing_tax_id",
        "subscriber_last_name",
        "subscriber_first_name",
        "subscriber_member_id",
        pl.coalesce("patient_last_name", "subscriber_last_name").alias("patient_last_name"),
        pl.coalesce("patient_first_name", "subscriber_first_name").alias("patient_first_name"),
        "payer_name",
        "payer_id",
        "submission_date",
        _sequence(pl.col("submission_date")).alias("submission_sequence"),
    )
    return claims.join(details, on=per_claim, how="left").with_columns(
        statement_date_start=pl.col("statement_dates").str.split("-").list.first(),
        statement_date_end=pl.col("statement_dates").str.split("-").list.last(),
    )


def claim_submission_lines(segments: pl.LazyFrame) -> pl.LazyFrame:
    rows = _submission(segments)
    per_line = [*SET, "subscriber_number", "claim_number", "line_number"]
    professional, institutional = _is("SV1"), _is("SV2")
    procedure = pl.when(institutional).then(2).otherwise(1)
    lines = rows.filter(professional | institutional).select(
        *per_line,
        *LINEAGE,
        pl.when(institutional).then(_el(1)).alias("revenue_code"),
        pl.when(professional).then(_part(1, 1)).otherwise(_part(2, 1)).alias("procedure_code"),
        _modifiers(
            [pl.when(professional).then(_part(1, i)).otherwise(_part(2, i)) for i in range(2, 6)]
        ),
        pl.when(professional).then(_el(2)).otherwise(_el(3)).alias("charge_amount"),
        pl.when(professional).then(_el(4)).otherwise(_el(5)).alias("units"),
        procedure.alias("_procedure_element"),
    )
    dates = (
        rows.filter(pl.col("line_number") > 0)
        .group_by(per_line)
        .agg(_first(_is("DTP", "472"), _el(3)).alias("service_date"))
    )
    claims = rows.filter(_is("CLM")).select(
        *SET, "subscriber_number", "claim_number", _el(1).alias("claim_id")
    )
    return (
        lines.join(claims, on=[*SET, "subscriber_number", "claim_number"], how="left")
        .join(dates, on=per_line, how="left")
        .with_columns(
            submission_line_id=pl.concat_str(
                [pl.col("claim_id"), pl.col("line_number").cast(pl.String)], separator=":"
            ),
            service_date=pl.col("service_date").str.split("-").list.first(),
        )
        .drop("_procedure_element")
    )


VIEWS: dict[str, Callable[[pl.LazyFrame], pl.LazyFrame]] = {
    "remittance_payments": remittance_payments,
    "remittance_claims": remittance_claims,
    "remittance_service_lines": remittance_service_lines,
    "remittance_adjustments": remittance_adjustments,
    "remittance_provider_adjustments": remittance_provider_adjustments,
    "claim_submissions": claim_submissions,
    "claim_submission_lines": claim_submission_lines,
}
