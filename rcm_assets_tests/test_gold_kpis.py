"""gold/kpis.py on hand-made fact frames whose answers are known."""

from datetime import date, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rcm_assets.gold import changes, kpis
from rcm_assets.gold.builds import KPI_MARTS

JAN_31 = date(2025, 1, 31)


def fact(*rows: dict) -> pl.LazyFrame:
    base = {
        "datasource": "hos-a",
        "provider_key": "P1-hos-a",
        "department_key": "D1-hos-a",
        "payor_type": "Medicare",
        "paid_date": None,
        "paid_amount": 0.0,
        "claim_status": "Pending",
    }
    frame = pl.DataFrame([base | row for row in rows])
    return frame.with_columns(
        pl.col("service_date", "claim_date", "paid_date").cast(pl.Date),
        pl.col("amount", "paid_amount").cast(pl.Float64),
    ).lazy()


# A settled zero-charge claim on Jan 31: it makes January the last month of the data.
ANCHOR = {
    "service_date": JAN_31,
    "claim_date": JAN_31,
    "amount": 0.0,
    "claim_status": "Paid",
    "paid_date": JAN_31,
}


def aged(days: int, amount: float = 100.0) -> dict:
    served = JAN_31 - timedelta(days=days)
    return {"service_date": served, "claim_date": served, "amount": amount}


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (0, "0-30"),
        (30, "0-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "91-120"),
        (120, "91-120"),
        (121, "120+"),
    ],
)
def test_aging_bucket_boundaries(days: int, bucket: str) -> None:
    aging = kpis.ar_aging(fact(aged(days), ANCHOR)).collect()
    at_jan_31 = aging.filter(pl.col("month_end") == JAN_31)
    assert at_jan_31.select("bucket", "open_balance").rows() == [(bucket, 100.0)]


def test_open_balance_is_charged_minus_paid_and_a_paid_claim_is_settled() -> None:
    rows = fact(
        aged(10, 100.0)
        | {
            "claim_status": "Partially Paid",
            "paid_amount": 30.0,
            "paid_date": JAN_31 - timedelta(days=2),
        },
        aged(10, 100.0)
        | {"claim_status": "Paid", "paid_amount": 80.0, "paid_date": JAN_31 - timedelta(days=2)},
        aged(10, 100.0) | {"claim_status": "Denied"},
    )
    aging = kpis.ar_aging(rows).collect().filter(pl.col("month_end") == JAN_31)
    assert aging.select("bucket", "open_balance", "open_items").rows() == [("0-30", 170.0, 2)]


def test_denial_rate_by_count_and_amount() -> None:
    statuses = [("Denied", 100.0), ("Rejected", 300.0), ("Paid", 400.0), ("Pending", 200.0)]
    rows = fact(*(aged(5, amount) | {"claim_status": status} for status, amount in statuses))
    month = kpis.monthly(rows).collect().filter(pl.col("month_end") == JAN_31).row(0, named=True)
    assert month["claims_submitted"] == 4
    assert month["denial_rate_count"] == pytest.approx(0.5)
    assert month["denial_rate_amount"] == pytest.approx(400 / 1000)


def test_days_in_ar_is_open_ar_over_average_daily_charges_of_90_days() -> None:
    # 9,000 charged within the 90 days up to Jan 31 -> 100 a day; 2,000 of it still open.
    rows = fact(
        aged(10, 2_000.0),
        aged(40, 7_000.0)
        | {
            "claim_status": "Paid",
            "paid_amount": 7_000.0,
            "paid_date": JAN_31 - timedelta(days=20),
        },
        aged(95, 50_000.0)
        | {
            "claim_status": "Paid",
            "paid_amount": 50_000.0,
            "paid_date": JAN_31 - timedelta(days=60),
        },
    )
    month = kpis.monthly(rows).collect().filter(pl.col("month_end") == JAN_31).row(0, named=True)
    assert month["open_ar"] == pytest.approx(2_000.0)
    assert month["avg_daily_charges"] == pytest.approx(100.0)
    assert month["days_in_ar"] == pytest.approx(20.0)
    assert month["ar_over_90_share"] == pytest.approx(0.0)


def test_gross_collection_rate_charge_lag_and_payer_mix() -> None:
    rows = fact(
        {
            "service_date": date(2025, 1, 2),
            "claim_date": date(2025, 1, 12),
            "amount": 300.0,
            "paid_date": date(2025, 1, 20),
            "paid_amount": 150.0,
            "claim_status": "Partially Paid",
        },
        {
            "service_date": date(2025, 1, 3),
            "claim_date": date(2025, 1, 7),
            "amount": 100.0,
            "payor_type": "Commercial",
        },
    )
    month = kpis.monthly(rows).collect().filter(pl.col("month_end") == JAN_31).row(0, named=True)
    assert month["gross_collection_rate"] == pytest.approx(150 / 400)
    assert month["avg_charge_lag_days"] == pytest.approx(7.0)
    mix = kpis.payer_mix(rows).collect()
    assert dict(mix.select("payor_type", "share_of_charges").rows()) == {
        "Commercial": pytest.approx(0.25),
        "Medicare": pytest.approx(0.75),
    }


def random_fact(seed: int, rows: int = 400) -> pl.DataFrame:
    """Charges of two hospitals over two years: paid, partly paid, denied, unfiled, open."""
    import random

    rng = random.Random(seed)
    records = []
    for index in range(rows):
        served = date(2024, 1, 1) + timedelta(days=rng.randrange(700))
        filed = served + timedelta(days=rng.randrange(30)) if rng.random() < 0.9 else None
        status = rng.choice(["Paid", "Paid", "Partially Paid", "Denied", "Pending"])
        amount = float(rng.randrange(50, 900))
        paid = (
            filed + timedelta(days=rng.randrange(10, 200)) if filed and status != "Denied" else None
        )
        records.append(
            {
                "transaction_key": f"T{index}",
                "datasource": rng.choice(["hos-a", "hos-b"]),
                "provider_key": f"P{rng.randrange(4)}",
                "department_key": f"D{rng.randrange(3)}",
                "payor_type": rng.choice(["Medicare", "Commercial"]),
                "service_date": served,
                "claim_date": filed,
                "paid_date": paid if status != "Pending" else None,
                "amount": amount,
                "paid_amount": amount * rng.choice([1.0, 0.6]) if paid else 0.0,
                "claim_status": status if filed else None,
            }
        )
    return pl.DataFrame(records)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("mart", sorted(KPI_MARTS))
def test_recomputing_the_touched_cells_equals_recomputing_every_cell(seed: int, mart: str) -> None:
    """A KPI refresh: only the cells the changed rows (before and after) touch, from the rows
    that contribute to them, replace the old mart's cells; the result is the full mart."""
    import random

    before = random_fact(seed)
    rng = random.Random(seed)
    changed = rng.sample(range(before.height), 12)
    later = (
        random_fact(seed + 100)
        .slice(0, 12)
        .with_columns(pl.Series("transaction_key", [f"T{i}" for i in changed]))
    )
    after = pl.concat(
        [before.filter(~pl.col("transaction_key").is_in(later["transaction_key"].implode())), later]
    )
    touched = changes.merge_ranges(
        changes.touched_months(
            before.lazy().filter(
                pl.col("transaction_key").is_in(later["transaction_key"].implode())
            )
        ),
        changes.touched_months(later.lazy()),
    )
    build = KPI_MARTS[mart]
    calendar = kpis.month_ends(after.lazy())
    assert kpis.month_ends(before.lazy()).collect().equals(calendar.collect())  # else: rebuild
    old = build(before.lazy(), kpis.month_ends(before.lazy())).collect()
    cells = (
        build(changes.contributing(after.lazy(), touched), calendar)
        .filter(changes.in_ranges(touched))
        .collect()
    )
    refreshed = pl.concat([old.filter(~changes.in_ranges(touched)), cells])
    full = build(after.lazy(), calendar).collect()

    assert 0 < cells.height < full.height  # a part of the mart, not all of it
    assert_frame_equal(refreshed, full, check_row_order=False, check_dtypes=False)
