"""The 837 / 835 marts (HFMA MAP Keys, payer scorecard, denials) on a hand-made claim history
whose answers are worked out below, claim by claim.

  C1 served Jan 5, billed Jan 10, $100: paid $70 on Feb 10, CO-45 $20, PR-2 $10 (first pass).
  C2 served Jan 8, billed Jan 12, $200: denied CO-197 on Feb 15, resubmitted Feb 20,
     paid $150 + CO-45 $50 on Mar 20 (recovered).
  C3 served Jan 20, billed Jan 25, $300: denied CO-50 on Feb 25, never paid: presumed written
     off 120 days later, on Jun 25.
  C4 served Feb 1, billed Feb 5, $400: no 835 yet.
  C5 served Jun 1, billed Jun 5, $5,000: paid $4,000 + CO-45 $1,000 on Jun 28.
"""

from datetime import date

import polars as pl
import pytest

from rcm_assets.gold import denials, revenue_kpis
from rcm_assets.gold.adjudications import (
    classified,
    denial_reasons_frame,
    fact_claim_adjudications,
)
from rcm_assets.metadata import DenialReason

DS = "hos-a"
REASONS = denial_reasons_frame(
    [
        DenialReason(line=2, group_code="*", reason_code="197", category="front-end", avoidable=1),
        DenialReason(line=3, group_code="*", reason_code="50", category="clinical", avoidable=0),
        DenialReason(line=4, group_code="OA", reason_code="45", category="odd", avoidable=1),
    ]
)


def claim(key: str, number: int, status: str, charge: float, paid: float, pr: float, day: date):
    return {
        "remittance_claim_key": f"{key}-{DS}",
        "remittance_claim_id": f"T{number}:{key}",
        "submission_key": f"{key}-{DS}",
        "patient_control_number": key,
        "claim_status_code": status,
        "charge_amount": charge,
        "paid_amount": paid,
        "patient_responsibility_amount": pr,
        "payer_name": "ACME" if key != "C5" else "ZENITH",
        "payer_id": "P1",
        "payment_date": day,
        "remittance_sequence": f"{day.isoformat()}-{number}",
        "datasource": DS,
        "is_current": True,
        "is_quarantined": False,
    }


def adjustment(claim_id: str, group: str, reason: str, amount: float, line: int | None = 1):
    return {
        "remittance_claim_id": claim_id,
        "datasource": DS,
        "level": "service" if line else "claim",
        "line_number": line,
        "group_code": group,
        "reason_code": reason,
        "amount": amount,
        "is_current": True,
        "is_quarantined": False,
    }


def frames() -> dict[str, pl.LazyFrame]:
    claims = pl.DataFrame(
        [
            claim("C1", 1, "1", 100, 70, 10, date(2025, 2, 10)),
            claim("C2", 2, "4", 200, 0, 0, date(2025, 2, 15)) | {"is_current": False},
            claim("C2", 3, "1", 200, 150, 0, date(2025, 3, 20)),
            claim("C3", 4, "4", 300, 0, 0, date(2025, 2, 25)),
            claim("C5", 5, "1", 5000, 4000, 0, date(2025, 6, 28)),
            claim("C9", 6, "1", 10, 10, 0, date(2025, 2, 1)) | {"is_quarantined": True},
        ]
    )
    adjustments = pl.DataFrame(
        [
            adjustment("T1:C1", "CO", "45", 20),
            adjustment("T1:C1", "PR", "2", 10),
            adjustment("T2:C2", "CO", "197", 200, line=None),
            adjustment("T3:C2", "CO", "45", 50),
            adjustment("T4:C3", "CO", "50", 300),
            adjustment("T5:C5", "CO", "45", 1000),
        ]
    )
    submissions = pl.DataFrame(
        [
            ("C1", date(2025, 1, 10), date(2025, 1, 5), None, 100.0),
            ("C2", date(2025, 1, 12), date(2025, 1, 8), date(2025, 2, 20), 200.0),
            ("C3", date(2025, 1, 25), date(2025, 1, 20), None, 300.0),
            ("C4", date(2025, 2, 5), date(2025, 2, 1), None, 400.0),
            ("C5", date(2025, 6, 5), date(2025, 6, 1), None, 5000.0),
        ],
        schema=[
            "claim_id",
            "first_bill_date",
            "service_date",
            "resubmission_date",
            "total_charge_amount",
        ],
        orient="row",
    ).select(
        (pl.col("claim_id") + f"-{DS}").alias("submission_key"),
        (pl.col("claim_id") + f"-{DS}").alias("claim_key"),
        pl.all().exclude("claim_id"),
        pl.lit("99213").alias("procedure_code"),
        pl.lit(False).alias("is_void"),
        pl.lit(DS).alias("datasource"),
    )
    transactions = pl.DataFrame(
        {
            "transaction_key": ["T-C1", "T-C2", "T-C3"],
            "claim_key": [f"C1-{DS}", f"C2-{DS}", f"C3-{DS}"],
            "provider_key": ["PR1", "PR1", "PR2"],
            "department_key": ["D1", "D1", "D2"],
        }
    )
    lines = pl.DataFrame(
        {
            "remittance_claim_id": ["T1:C1", "T3:C2", "T4:C3"],
            "line_number": [1, 1, 1],
            "procedure_code": ["99213", "99214", "99215"],
            "allowed_amount": [80.0, 150.0, 0.0],
            "paid_amount": [70.0, 150.0, 0.0],
            "datasource": [DS] * 3,
            "is_current": [True] * 3,
            "is_quarantined": [False] * 3,
        }
    )
    carc = pl.DataFrame(
        {
            "code": ["197", "50"],
            "description": ["Precertification absent.", "Not medically necessary."],
            "is_current": [True, True],
            "is_quarantined": [False, False],
        }
    )
    adjudications = fact_claim_adjudications(
        claims.lazy(), adjustments.lazy(), submissions.lazy(), transactions.lazy(), REASONS
    )
    return {
        "adjudications": adjudications,
        "submissions": submissions.lazy(),
        "adjustments": adjustments.lazy(),
        "lines": lines.lazy(),
        "carc": carc.lazy(),
    }


@pytest.fixture(scope="module")
def built() -> dict[str, pl.LazyFrame]:
    return frames()


def by_claim(adjudications: pl.LazyFrame) -> dict[tuple[str, int], dict]:
    rows = adjudications.collect().iter_rows(named=True)
    return {(r["patient_control_number"], r["adjudication_number"]): r for r in rows}


def test_every_adjudication_is_numbered_and_classified(built: dict) -> None:
    rows = by_claim(built["adjudications"])
    assert sorted(rows) == [("C1", 1), ("C2", 1), ("C2", 2), ("C3", 1), ("C5", 1)]  # no C9
    c1, c2_denied, c2_paid, c3 = rows["C1", 1], rows["C2", 1], rows["C2", 2], rows["C3", 1]
    assert (c1["contractual_amount"], c1["denied_amount"], c1["allowed_amount"]) == (20, 0, 80)
    assert not c1["is_denied"] and c1["written_off_date"] is None
    assert c2_denied["is_denied"] and c2_denied["denial_reason"] == "CO-197"
    assert (c2_denied["denial_category"], c2_denied["is_avoidable_denial"]) == ("front-end", True)
    assert c2_denied["recovered_date"] == date(2025, 3, 20)
    assert c2_denied["recovered_amount"] == 150
    assert c2_denied["resubmitted_date"] == date(2025, 2, 20)
    assert c2_denied["written_off_date"] is None and not c2_denied["is_current_adjudication"]
    assert not c2_paid["is_denied"] and c2_paid["is_current_adjudication"]
    assert (c3["denial_reason"], c3["is_avoidable_denial"]) == ("CO-50", False)
    assert c3["written_off_date"] == date(2025, 6, 25)
    assert (c3["provider_key"], c3["department_key"]) == ("PR2", "D2")


def test_a_reason_listed_for_a_group_wins_and_patient_responsibility_never_denies() -> None:
    adjustments = pl.LazyFrame(
        {"group_code": ["OA", "CO", "PR"], "reason_code": ["45", "45", "50"]}
    )
    rows = classified(adjustments, REASONS).sort("group_code").collect()  # CO, OA, PR
    assert rows.get_column("is_denial").to_list() == [False, True, False]
    assert rows.get_column("category").to_list() == [None, "odd", "clinical"]


def month(frame: pl.LazyFrame, day: date, **keys: str) -> dict:
    rows = frame.filter(pl.col("month_end") == day, **keys).collect()
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_map_keys_have_the_hand_computed_values(built: dict) -> None:
    keys = revenue_kpis.map_keys(built["adjudications"], built["submissions"], built["lines"])
    months = keys.collect().get_column("month_end").to_list()
    assert months == [date(2025, m, d) for m, d in ((1, 31), (2, 28), (3, 31), (4, 30))] + [
        date(2025, 5, 31),
        date(2025, 6, 30),
    ]
    jan = month(keys, date(2025, 1, 31))
    assert (jan["billed_claims"], jan["billed_charges"]) == (3, 600)
    assert jan["avg_days_service_to_bill"] == pytest.approx(14 / 3)  # 5, 4 and 5 days
    assert (jan["net_ar"], jan["ar_over_90"], jan["remitted_claims"]) == (600, 0, 0)
    assert jan["initial_denial_rate_count"] is None  # nothing remitted: no rate, not 0

    feb = month(keys, date(2025, 2, 28))
    assert (feb["remitted_claims"], feb["remitted_charges"], feb["initial_denials"]) == (3, 600, 2)
    assert feb["initial_denial_rate_count"] == pytest.approx(2 / 3)
    assert feb["initial_denial_rate_amount"] == pytest.approx(500 / 600)
    assert feb["first_pass_resolution_rate"] == pytest.approx(1 / 3)  # C1 only
    assert feb["avg_days_bill_to_payment"] == 31  # C1: Jan 10 to Feb 10
    assert (feb["payments"], feb["contractual_adjustments"], feb["patient_responsibility"]) == (
        70,
        20,
        10,
    )
    assert feb["net_patient_service_revenue"] == 580  # 600 charged - 20 contractual
    assert feb["net_collection_rate"] == pytest.approx(70 / 580)
    assert feb["gross_collection_rate"] == pytest.approx(70 / 600)
    assert feb["net_ar"] == 900  # C2 200 (denied, still open) + C3 300 + C4 400

    mar = month(keys, date(2025, 3, 31))
    assert mar["net_collection_rate"] == 1.0  # 150 / (200 - 50)
    assert mar["cash_collection_pct_npsr"] == pytest.approx(150 / ((0 + 580 + 150) / 3))
    assert mar["net_ar"] == 700  # C2 settled by the recovery

    apr = month(keys, date(2025, 4, 30))
    assert (apr["net_ar"], apr["ar_over_90"]) == (700, 300)  # C3 is 100 days old, C4 88
    assert apr["aged_ar_over_90_pct"] == pytest.approx(3 / 7)
    assert apr["days_in_net_ar"] == pytest.approx(700 / ((580 + 150 + 0) / (28 + 31 + 30)))

    jun = month(keys, date(2025, 6, 30))
    assert jun["denial_write_offs"] == 300  # C3, presumed on Jun 25
    assert jun["denial_write_off_rate"] == pytest.approx(300 / 4000)
    assert (jun["net_ar"], jun["ar_over_90"]) == (400, 400)  # C4 only, 149 days old
    assert "presumed written off" in jun["proxies"]


def test_a_line_allowed_well_below_the_payers_usual_amount_is_underpaid() -> None:
    lines = pl.LazyFrame(
        {
            "remittance_claim_id": ["A", "B", "C", "D", "E"],
            "procedure_code": ["99213"] * 4 + ["99999"],
            "allowed_amount": [100.0, 100.0, 95.0, 80.0, 10.0],
            "paid_amount": [90.0, 90.0, 85.0, 70.0, 10.0],
            "datasource": [DS] * 5,
        }
    )
    claims = pl.LazyFrame(
        {
            "remittance_claim_id": ["A", "B", "C", "D", "E"],
            "datasource": [DS] * 5,
            "payer_name": ["ACME"] * 5,
            "payment_date": [date(2025, 3, 1)] * 5,
            "is_current_adjudication": [True] * 5,
        }
    )
    rows = revenue_kpis.underpayments(lines, claims).sort("remittance_claim_id").collect()
    # median 97.5; D (80) is more than 10 % below it, C (95) is not; E has no peers.
    assert rows.get_column("underpaid_amount").to_list() == [0.0, 0.0, 0.0, 17.5, 0.0]
    assert rows.get_column("expected_allowed").to_list()[-1] is None


def test_payer_scorecard_per_payer_and_month(built: dict) -> None:
    card = revenue_kpis.payer_scorecard(built["adjudications"], built["lines"])
    feb = month(card, date(2025, 2, 28), payer_name="ACME")
    assert (feb["remitted_claims"], feb["charges"], feb["allowed"], feb["payments"]) == (
        3,
        600,
        80,
        70,
    )
    assert (feb["denied_claims"], feb["denial_rate"]) == (2, pytest.approx(2 / 3))
    assert feb["avg_days_to_pay"] == 31
    mar = month(card, date(2025, 3, 31), payer_name="ACME")
    assert (mar["remitted_claims"], mar["denied_claims"], mar["payments"]) == (0, 0, 150)
    assert month(card, date(2025, 6, 30), payer_name="ZENITH")["payments"] == 4000


def test_denials_by_reason_with_recoveries(built: dict) -> None:
    cube = denials.denials(
        built["adjudications"], built["adjustments"], built["lines"], built["carc"], REASONS
    ).collect()
    pareto = {
        (r["group_code"], r["reason_code"]): r
        for r in cube.group_by("group_code", "reason_code")
        .agg(
            pl.col("denied_amount", "recovered_amount", "resubmitted", "recovered").sum(),
            pl.col("category", "avoidable", "procedure_code", "reason_description").first(),
        )
        .iter_rows(named=True)
    }
    assert set(pareto) == {("CO", "197"), ("CO", "50")}
    co197, co50 = pareto["CO", "197"], pareto["CO", "50"]
    assert (co197["denied_amount"], co197["resubmitted"], co197["recovered"]) == (200, 1, 1)
    assert (co197["recovered_amount"], co197["procedure_code"]) == (200, "(claim)")
    assert (co197["category"], co197["avoidable"]) == ("front-end", True)
    assert (co50["denied_amount"], co50["recovered"], co50["procedure_code"]) == (300, 0, "99215")
    assert co50["reason_description"] == "Not medically necessary."


def test_denied_claims_worklist_has_status_and_age(built: dict) -> None:
    rows = denials.denied_claims(built["adjudications"], built["carc"]).collect()
    found = {r["patient_control_number"]: r for r in rows.iter_rows(named=True)}
    assert set(found) == {"C2", "C3"}
    assert found["C2"]["status"] == "recovered" and found["C2"]["age_days"] == 33
    assert found["C3"]["status"] == "written_off" and found["C3"]["age_days"] == 120
    assert found["C3"]["as_of_date"] == date(2025, 6, 28)  # the latest payment
    assert found["C3"]["primary_reason"] == "CO-50"


def test_an_open_denial_ages_to_the_as_of_date(built: dict) -> None:
    early = built["adjudications"].filter(pl.col("payment_date") < date(2025, 6, 1))
    rows = denials.denied_claims(early, built["carc"]).collect()
    c3 = rows.filter(pl.col("patient_control_number") == "C3").row(0, named=True)
    assert (c3["status"], c3["as_of_date"]) == ("open", date(2025, 3, 20))
    assert c3["age_days"] == 23 and c3["written_off_date"] is None


def test_the_bounds_check_flags_an_impossible_rate_and_negative_days() -> None:
    from rcm_assets.asset_checks import check_result
    from rcm_assets.gold.kpis import VALUE_BOUNDS
    from rcm_assets.metadata import load_metadata
    from rcm_assets.quality.measures import bounds_measures

    mart = pl.DataFrame(
        {
            "datasource": ["hos-a", "hos-a", "hos-b"],
            "initial_denial_rate_count": [0.2, 1.4, None],
            "days_in_net_ar": [40.0, 50.0, -3.0],
            "net_collection_rate": [1.2, 0.9, 0.8],  # can exceed 1: not bounded
        }
    )
    measured = bounds_measures(mart, VALUE_BOUNDS)
    failed = {
        (r["datasource"], r["rule"]): r["rows_failed"] for r in measured.iter_rows(named=True)
    }
    assert failed == {
        ("hos-a", "initial_denial_rate_count in [0.0, 1.0]"): 1,
        ("hos-a", "days_in_net_ar in [0.0, ]"): 0,
        ("hos-b", "days_in_net_ar in [0.0, ]"): 1,
    }
    threshold = load_metadata().threshold("kpi_map_keys", "value_bounds")
    assert not check_result("value_bounds", threshold, measured).passed
    clean = bounds_measures(mart.head(1), VALUE_BOUNDS)
    assert check_result("value_bounds", threshold, clean).passed
