"""`rcm report`: the page from hand-made marts (pure rendering), then from a real sample run,
read in headless Chromium the way a person reads it."""

import html
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from rcm_assets.gold import report_format as fmt
from rcm_assets.gold.kpis import AGING_BUCKETS
from rcm_assets.gold.report import SECTIONS, render_report
from rcm_assets.gold.report_data import (
    PARETO_REASONS,
    REJECTED_SCHEMA,
    ReportInputs,
    as_of_month,
    denial_pareto,
    month_ends,
    open_denials,
)
from rcm_assets.metadata import KpiTarget
from rcm_assets.settings import REPO_ROOT
from rcm_assets_tests.conftest import SAMPLE_SCALE, Project

BIN = Path(sys.executable).parent
SCREENSHOT = REPO_ROOT / "test-artifacts" / "rcm_report.png"
# What must never show on the page: a value that was not formatted.
UNFORMATTED = re.compile(r"\b(NaN|nan|None|null|inf|Infinity|undefined)\b")
AS_OF = date(2025, 12, 31)  # the hand-made marts' last month in which both hospitals charge
MONTHS = month_ends(AS_OF, 14)
NAMES = {"hos-a": "Hospital A", "hos-b": "Hospital B"}
PROXY_NOTE = "payments are payer payments only (no patient payments in the data)"


# The marts' schemas (money Float64, counts Int64, rates 0-1, dates Date), as `rcm run` writes them.
_KEYS = {"datasource": pl.String, "month_end": pl.Date}
MAP_KEYS_SCHEMA = pl.Schema(
    {
        **_KEYS,
        **dict.fromkeys(["billed_claims", "remitted_claims", "initial_denials"], pl.Int64),
        **dict.fromkeys(
            ["billed_charges", "remitted_charges", "initial_denied_amount"], pl.Float64
        ),
        **dict.fromkeys(["initial_denial_rate_count", "initial_denial_rate_amount"], pl.Float64),
        **dict.fromkeys(
            [
                "payments",
                "contractual_adjustments",
                "patient_responsibility",
                "net_patient_service_revenue",
                "net_collection_rate",
                "gross_collection_rate",
                "cash_collection_pct_npsr",
                "denial_write_offs",
                "denial_write_off_rate",
                "net_ar",
                "ar_over_90",
                "aged_ar_over_90_pct",
                "days_in_net_ar",
            ],
            pl.Float64,
        ),
        "first_pass_claims": pl.Int64,
        "first_pass_resolution_rate": pl.Float64,
        "avg_days_service_to_bill": pl.Float64,
        "avg_days_bill_to_payment": pl.Float64,
        "underpaid_lines": pl.Int64,
        "underpaid_amount": pl.Float64,
        "proxies": pl.String,
    }
)
SCORECARD_SCHEMA = pl.Schema(
    {
        **_KEYS,
        "payer_name": pl.String,
        "remitted_claims": pl.Int64,
        **dict.fromkeys(
            ["charges", "allowed", "payments", "contractual_adjustments", "patient_responsibility"],
            pl.Float64,
        ),
        "denied_claims": pl.Int64,
        "denial_rate": pl.Float64,
        "avg_days_to_pay": pl.Float64,
        "underpaid_lines": pl.Int64,
        "underpaid_amount": pl.Float64,
    }
)
DENIALS_SCHEMA = pl.Schema(
    {
        **_KEYS,
        **dict.fromkeys(
            [
                "group_code",
                "reason_code",
                "payer_name",
                "procedure_code",
                "provider_key",
                "department_key",
                "reason_description",
                "category",
            ],
            pl.String,
        ),
        "avoidable": pl.Boolean,
        "denials": pl.Int64,
        "denied_amount": pl.Float64,
        "resubmitted": pl.Int64,
        "recovered": pl.Int64,
        "recovered_amount": pl.Float64,
    }
)
DENIED_CLAIMS_SCHEMA = pl.Schema(
    {
        **dict.fromkeys(
            [
                "adjudication_key",
                "remittance_claim_key",
                "patient_control_number",
                "datasource",
                "payer_name",
            ],
            pl.String,
        ),
        "denial_date": pl.Date,
        "denied_amount": pl.Float64,
        **dict.fromkeys(["primary_reason", "reason_description", "category"], pl.String),
        "avoidable": pl.Boolean,
        "resubmitted_date": pl.Date,
        "recovered_date": pl.Date,
        "recovered_amount": pl.Float64,
        "written_off_date": pl.Date,
        "status": pl.String,
        "age_days": pl.Int64,
        "as_of_date": pl.Date,
    }
)


def _target(line: int, kpi: str, label: str, unit: str, target: float | None, better: str):
    return KpiTarget(
        line=line,
        mart="kpi_map_keys",
        kpi=kpi,
        label=label,
        unit=unit,
        target=target,
        better=better,
        source=f"benchmark for {label}",
    )


TARGETS = (
    _target(2, "net_collection_rate", "Net collection rate", "percent", 0.95, "higher"),
    _target(3, "days_in_net_ar", "Days in net A/R", "days", 45, "lower"),
    _target(
        4, "first_pass_resolution_rate", "First-pass resolution rate", "percent", None, "higher"
    ),
)


def _monthly() -> pl.DataFrame:
    rows = [
        {
            "datasource": ds,
            "month_end": m,
            "charges": 100_000.0 + i,
            "payments": 80_000.0 + i,
            "open_ar": 250_000.0 + i,
        }
        for ds in NAMES
        for i, m in enumerate(MONTHS)
    ]
    # January: hospital A charges, hospital B only rolls A/R on; and a month with no charges.
    rows.append(
        {
            "datasource": "hos-a",
            "month_end": date(2026, 1, 31),
            "charges": 5.0,
            "payments": 1.0,
            "open_ar": 1.0,
        }
    )
    rows.append(
        {
            "datasource": "hos-b",
            "month_end": date(2026, 1, 31),
            "charges": 0.0,
            "payments": 1.0,
            "open_ar": 1.0,
        }
    )
    return pl.DataFrame(rows)


def _map_keys() -> pl.DataFrame:
    rows = []
    for ds in NAMES:
        for i, m in enumerate(MONTHS):
            rows.append(
                {
                    "datasource": ds,
                    "month_end": m,
                    "billed_claims": 100 + i,
                    "billed_charges": 1_234_567.4 + i,
                    "payments": 900_000.0,
                    "net_patient_service_revenue": 950_000.0,
                    "initial_denied_amount": 12_345.0,
                    "net_ar": 400_000.0,
                    "net_collection_rate": 0.85 + 0.05 * (m == AS_OF),
                    "days_in_net_ar": 40.0 + 10 * (m == AS_OF),
                    "first_pass_resolution_rate": 0.8,
                    "proxies": PROXY_NOTE,
                }
            )
    frame = pl.DataFrame(rows, schema=MAP_KEYS_SCHEMA)
    # Hospital B's as-of month lacks two values: one null, one NaN from a division by zero.
    missing = (pl.col("datasource") == "hos-b") & (pl.col("month_end") == AS_OF)
    return frame.with_columns(
        pl.when(missing).then(None).otherwise(pl.col("billed_charges")).alias("billed_charges"),
        pl.when(missing)
        .then(float("nan"))
        .otherwise(pl.col("net_collection_rate"))
        .alias("net_collection_rate"),
    )


def _scorecard() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "datasource": ds,
                "month_end": m,
                "payer_name": payer,
                "remitted_claims": 40,
                "charges": 50_000.0,
                "allowed": 40_000.0,
                "payments": 30_000.0,
                "contractual_adjustments": 10_000.0,
                "patient_responsibility": 5_000.0,
                "denied_claims": 4,
                "denial_rate": 0.1,
                "avg_days_to_pay": None,
                "underpaid_lines": 1,
                "underpaid_amount": 99.5,
            }
            for ds in NAMES
            for m in MONTHS
            for payer in ("ACME HEALTH", "BLUE PAYER")
        ],
        schema=SCORECARD_SCHEMA,
    )


def _denials() -> pl.DataFrame:
    rows = []
    for ds in NAMES:
        for m in (AS_OF, MONTHS[-2]):
            for code in range(1, PARETO_REASONS + 4):  # more reasons than the Pareto shows
                rows.append(
                    {
                        "datasource": ds,
                        "month_end": m,
                        "group_code": "CO",
                        "reason_code": str(code),
                        "payer_name": "ACME HEALTH",
                        "procedure_code": "99213",
                        "provider_key": "P1",
                        "department_key": "D1",
                        "reason_description": None if code == 3 else f"reason {code}",
                        "category": "eligibility",
                        "avoidable": code % 2 == 0,
                        "denials": 1,
                        "denied_amount": 100.0 * code,
                        "resubmitted": 0,
                        "recovered": 0,
                        "recovered_amount": 0.0,
                    }
                )
    return pl.DataFrame(rows, schema=DENIALS_SCHEMA)


def _denied_claims() -> pl.DataFrame:
    def claim(denied: date, recovered: date | None = None, written_off: date | None = None):
        return {
            "adjudication_key": f"A{denied}{recovered}{written_off}",
            "datasource": "hos-a",
            "payer_name": "ACME HEALTH",
            "denial_date": denied,
            "denied_amount": 1000.0,
            "primary_reason": "CO-50",
            "recovered_date": recovered,
            "written_off_date": written_off,
            "status": "open",
            "age_days": 1,
            "as_of_date": date(2026, 3, 1),
        }

    return pl.DataFrame(
        [
            claim(date(2025, 12, 20)),  # open, 0-30 days
            claim(date(2025, 11, 10), recovered=date(2026, 1, 15)),  # recovered later: open, 31-60
            claim(date(2025, 6, 1), written_off=date(2026, 2, 1)),  # written off later: open, 120+
            claim(date(2025, 10, 1), recovered=date(2025, 12, 1)),  # recovered by then
            claim(date(2025, 9, 1), written_off=date(2025, 12, 31)),  # written off by then
            claim(date(2026, 1, 5)),  # after the report month
        ],
        schema=DENIED_CLAIMS_SCHEMA,
    )


def _aging() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"datasource": ds, "month_end": m, "bucket": b, "open_balance": 1000.0, "open_items": 3}
            for ds in NAMES
            for m in MONTHS
            for b in AGING_BUCKETS[:-1]  # nothing in 120+: the bucket still shows, as $0
        ]
    )


def _inputs(**changes: object) -> ReportInputs:
    values: dict[str, object] = {
        "marts": {
            "kpi_monthly": _monthly(),
            "kpi_ar_aging": _aging(),
            "kpi_map_keys": _map_keys(),
            "kpi_payer_scorecard": _scorecard(),
            "kpi_denials": _denials(),
            "kpi_denied_claims": _denied_claims(),
        },
        "targets": TARGETS,
        "hospital_names": NAMES,
        "generated_at": datetime(2026, 2, 3, 4, 5, tzinfo=UTC),
        "rejected_files": pl.DataFrame(
            [{"folder": "rejected/claims", "file": "bad.csv", "reason": "header missing"}],
            schema=REJECTED_SCHEMA,
        ),
    }
    return ReportInputs(**{**values, **changes})  # type: ignore[arg-type]


def visible_text(page: str) -> str:
    """The page as text: tags dropped (SVG text kept), entities decoded."""
    page = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def table_rows(page: str, after: str) -> list[list[str]]:
    """The cells of the first table after the text `after`, each as visible text."""
    table = page[page.index(after) :].split("<table", 1)[1].split("</table>", 1)[0]
    cell = re.compile(r"<t[dh][^>]*>(.*?)</t[dh]>")
    return [
        [" ".join(visible_text(text).split()) for text in cell.findall(row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    ]


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(_inputs())


def test_the_as_of_month_is_the_latest_in_which_every_hospital_charges() -> None:
    assert as_of_month(_monthly()) == AS_OF
    # One hospital alone decides nothing: the other's latest charged month holds it back.
    assert as_of_month(_monthly().filter(pl.col("datasource") == "hos-a")) == date(2026, 1, 31)


def test_the_page_states_one_as_of_date_and_shows_no_later_month(page: str) -> None:
    text = visible_text(page)

    assert len(re.findall(r"\bas of\b", text, flags=re.I)) == 1
    assert f"Data as of {fmt.day(AS_OF)}" in " ".join(text.split())
    assert "Generated 2026-02-03 04:05 UTC" in " ".join(text.split())
    assert "Jan 2026" not in text and "Jan 26" not in text  # the month after the as-of month
    for heading in SECTIONS:
        assert f"<h2>{heading}</h2>" in page


def test_the_headline_table_formats_values_changes_and_targets(page: str) -> None:
    rows = {row[0]: row for row in table_rows(page, "<h3>Hospital A</h3>")}

    header = table_rows(page, "<h3>Hospital A</h3>")[0]
    assert header[1:3] == [fmt.month(AS_OF), fmt.month(MONTHS[-2])]
    # a rate: percent with one decimal, change in points, above its "higher" target or not
    assert rows["Net collection rate*"][1:] == ["90.0 %", "85.0 %", "+5.0 pp", "95.0 %", "missed"]
    assert rows["Days in net A/R*"][1:] == [
        "50.0 days",
        "40.0 days",
        "+10.0 days",
        "45.0 days",
        "missed",
    ]
    assert rows["First-pass resolution rate*"][1:] == ["80.0 %", "80.0 %", "0.0 pp", "—", "—"]
    assert rows["Billed charges (837)*"][1:3] == ["$1,234,580", "$1,234,579"]
    assert rows["Billed charges (837)*"][3] == "+$1"
    # the change is green when it moved the better way, red otherwise
    assert '<span class="good">+5.0 pp</span>' in page
    assert '<span class="bad">+10.0 days</span>' in page


def test_missing_values_show_as_an_em_dash_and_nothing_unformatted_shows(page: str) -> None:
    rows = {row[0]: row for row in table_rows(page, "<h3>Hospital B</h3>")}

    assert rows["Billed charges (837)*"][1] == "—"  # null
    assert rows["Net collection rate*"][1] == "—"  # NaN
    assert rows["Net collection rate*"][3] == "—"  # no change without both months
    assert not UNFORMATTED.findall(page)  # nor in the charts' markup
    days_to_pay = table_rows(page, "<h2>Payer scorecard</h2>")[1][9]
    assert days_to_pay == "—"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (fmt.currency(1_234_567.49), "$1,234,567"),
        (fmt.currency(-1_234.6), "-$1,235"),
        (fmt.currency(float("inf")), "—"),
        (fmt.percent(0.1234), "12.3 %"),
        (fmt.percent(float("nan")), "—"),
        (fmt.days(None), "—"),
        (fmt.count(12_345), "12,345"),
        (fmt.change(0.12, 0.10, "percent"), "+2.0 pp"),
        (fmt.change(0.10, 0.12, "percent"), "-2.0 pp"),
        (fmt.change(900.0, 1_000.0, "currency"), "-$100"),
        (fmt.change(30.0, 28.5, "days"), "+1.5 days"),
        (fmt.change(5.0, 5.2, "count"), "0"),  # rounds to no change: no sign
        (fmt.change(5.0, None, "count"), "—"),
        (fmt.day(date(2025, 3, 1)), "1 Mar 2025"),
    ],
)
def test_numbers_are_written_for_people(written: str, expected: str) -> None:
    assert written == expected


def test_proxies_are_captioned_under_the_headline_table_and_every_chart_they_affect(
    page: str,
) -> None:
    headline = page[page.index("<h2>Headline KPIs</h2>") : page.index("<h2>KPI trends</h2>")]
    trends = page[page.index("<h2>KPI trends</h2>") : page.index("<h2>A/R aging</h2>")]

    assert PROXY_NOTE in html.unescape(headline)
    assert html.unescape(trends).count(PROXY_NOTE) == len(TARGETS)
    assert "aging counts from the date of service" in html.unescape(page)


def test_charts_are_inline_svg_with_real_axes_and_the_page_fetches_nothing(page: str) -> None:
    charts = re.findall(r"<svg.*?</svg>", page, flags=re.S)

    # a trend per target, the A/R aging, two Paretos per hospital, payers, open denials
    assert len(charts) == len(TARGETS) + 1 + 2 * len(NAMES) + 1 + 1
    for chart in charts:
        axes = [
            re.findall(r">([^<]*)</text>", labels)
            for labels in re.findall(r'role-axis-label".*?</g>', chart, flags=re.S)
        ]
        numeric = [labels for labels in axes if all(re.search(r"\d", x) for x in labels)]
        assert numeric, "a chart without a value axis"
        assert all(len(labels) >= 3 for labels in numeric)  # ticks between 0 and the top
    trend = charts[0]
    assert "95.0 %" in visible_text(trend) and "Net collection rate" in visible_text(trend)
    assert re.search(r">\d+%<", trend)  # a percent axis
    assert "<script" not in page and "<link" not in page and "@import" not in page
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"')<]*", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_denial_pareto_is_sorted_and_cumulative() -> None:
    pareto = denial_pareto(_inputs(), "hos-a", [AS_OF])

    amounts = pareto.get_column("denied_amount").to_list()
    assert pareto.height == PARETO_REASONS + 1  # the tail in one row
    assert amounts[:-1] == sorted(amounts[:-1], reverse=True)
    assert pareto.get_column("reason")[0] == f"CO-{PARETO_REASONS + 3}"
    assert pareto.get_column("cumulative_share")[-1] == pytest.approx(1.0)
    assert (
        sum(amounts)
        == _denials()
        .filter((pl.col("datasource") == "hos-a") & (pl.col("month_end") == AS_OF))
        .get_column("denied_amount")
        .sum()
    )


def test_open_denials_are_those_open_at_the_as_of_date() -> None:
    frame = open_denials(_inputs(), AS_OF).filter(pl.col("hospital") == "Hospital A")
    by_bucket = dict(zip(frame.get_column("bucket"), frame.get_column("open_denials"), strict=True))

    assert by_bucket == {"0-30": 1, "31-60": 1, "61-90": 0, "91-120": 0, "120+": 1}


def test_data_quality_panel_lists_rejected_files_per_folder(page: str) -> None:
    rows = table_rows(page, "<h3>Rejected files</h3>")

    assert rows[1] == ["rejected/claims", "bad.csv: header missing", "1"]
    empty = render_report(_inputs(rejected_files=pl.DataFrame(schema=REJECTED_SCHEMA)))
    assert "No landing file is kept under rejected/." in empty


def test_hospitals_show_by_display_name_and_fall_back_to_the_slug() -> None:
    page = render_report(_inputs(hospital_names={"hos-a": "St. Example's"}))

    assert "<h3>St. Example&#x27;s</h3>" in page
    assert "<h3>hos-b</h3>" in page


# End to end: `rcm generate`-like sample data, `rcm run`, `rcm report`, Chromium.


@dataclass
class SampleReport:
    project: Project
    path: Path
    env: dict[str, str]


def _rcm(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "rcm"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=REPO_ROOT,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleReport]:
    """One sample run for every end-to-end check: `rcm generate` (EMR, claims and X12 files),
    `rcm run`, `rcm report`."""
    root = tmp_path_factory.mktemp("report")
    project = Project(root / "rcm", root / "metadata")
    shutil.copytree(REPO_ROOT / "metadata", project.metadata)
    project.home.mkdir()
    (root / "dagster").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RCM_", "DAGSTER_"))},
        "RCM_HOME": str(project.home),
        "RCM_METADATA_DIR": str(project.metadata),
        "DAGSTER_HOME": str(root / "dagster"),
    }
    _rcm(env, "generate", "--scale", str(SAMPLE_SCALE), "--seed", "7")
    # A landing file that cannot be read, for the data-quality panel.
    (project.home / "landing" / "claims" / "hospital1_empty.csv").write_text("")
    _rcm(env, "run", check=False)  # the rejected file fails a check; the marts are built
    written = _rcm(env, "report")
    path = project.home / "reports" / "rcm_kpis.html"
    assert f"wrote {path}" in written.stdout
    yield SampleReport(project, path, env)


def _chromium_or_skip() -> str:
    from rcm_assets_tests.test_ui import _chromium_or_skip as find

    return find()


# Each table with the heading just above it, and its rows' cells, as the browser shows them.
TABLES_JS = """tables => tables.map(table => {
  let heading = table.previousElementSibling;
  while (heading && !/^H[23]$/.test(heading.tagName)) heading = heading.previousElementSibling;
  return [heading ? heading.innerText : '',
          [...table.rows].map(r => [...r.cells].map(c => c.innerText.trim()))];
})"""


def _read_in_chromium(path: Path) -> tuple[str, list[str], list[tuple[str, list[list[str]]]]]:
    """(page text, URLs requested besides the page, (heading, rows of cells) of every table) in
    Chromium, after saving a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    from rcm_assets_tests.test_ui import CHROMIUM_ARGS

    chromium = _chromium_or_skip()
    requested: list[str] = []
    SCREENSHOT.parent.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(path.as_uri(), wait_until="load")
            page.screenshot(path=str(SCREENSHOT), full_page=True, timeout=120_000)
            text = page.inner_text("body")
            tables = page.locator("table").evaluate_all(TABLES_JS)
        finally:
            browser.close()
    return text, [url for url in requested if url != path.as_uri()], tables


def _headline_values(lake: Path) -> tuple[date, list[tuple[str, str, str]]]:
    """The as-of month, and (hospital, label, value as the report writes it) of every target,
    straight from the marts."""
    from rcm_assets.metadata import load_metadata

    monthly = pl.read_delta(str(lake / "gold" / "kpi_monthly"))
    as_of = (
        monthly.filter(pl.col("charges") > 0)
        .group_by("datasource")
        .agg(pl.col("month_end").max())
        .get_column("month_end")
        .min()
    )
    metadata = load_metadata()
    expected = []
    for target in metadata.kpi_targets:
        mart = pl.read_delta(str(lake / "gold" / target.mart)).filter(pl.col("month_end") == as_of)
        for row in mart.iter_rows(named=True):
            hospital = metadata.display_name(row["datasource"])
            expected.append((hospital, target.label, fmt.value(row[target.kpi], target.unit)))
    return as_of, expected


def test_report_of_a_sample_run_reads_right_in_chromium(
    sample_report: SampleReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rcm_assets.metadata import load_metadata

    monkeypatch.setenv("RCM_METADATA_DIR", str(sample_report.project.metadata))
    text, requested, tables = _read_in_chromium(sample_report.path)
    as_of, expected = _headline_values(sample_report.project.lake)
    display_name = load_metadata().display_name

    assert SCREENSHOT.stat().st_size > 50_000
    assert requested == []  # nothing fetched
    for heading in SECTIONS:
        assert heading in text
    statements = re.findall(r"\bas of\b.*", text, flags=re.I)
    assert len(statements) == 1 and fmt.day(as_of) in statements[0]
    assert not UNFORMATTED.findall(text)
    assert expected
    headline = text[text.index(SECTIONS[1]) : text.index(SECTIONS[2])]
    shown = {
        (heading, row[0].rstrip("*†‡§¶"), row[1])
        for heading, rows in tables
        if heading in headline
        for row in rows[1:]
    }
    for hospital, label, value in expected:
        assert (hospital, label, value) in shown, f"{hospital}: {label} {value} not shown"
    # freshness: each hospital's newest service date, as the fact table holds it
    fact = pl.read_delta(str(sample_report.project.lake / "gold" / "fact_transactions"))
    freshness = {
        row[0]: row[1] for heading, rows in tables if heading == SECTIONS[0] for row in rows[1:]
    }
    for datasource, newest in fact.group_by("datasource").agg(pl.col("service_date").max()).rows():
        assert freshness[display_name(datasource)] == fmt.day(newest)
    # data quality: every silver table with quarantined current rows is listed
    quarantine = {row[0] for heading, rows in tables if "Quarantined" in heading for row in rows}
    patients = pl.read_delta(str(sample_report.project.lake / "silver" / "patients"))
    assert patients.filter(pl.col("is_current") & pl.col("is_quarantined")).height > 0
    assert "patients" in quarantine
    # the rejected landing file, with the reason in the report beside it
    (report,) = (sample_report.project.home / "landing" / "rejected").rglob("*.error.txt")
    reason = report.read_text().split("reason: ", 1)[1].strip()
    assert f"{report.name.removesuffix('.error.txt')}: {reason}" in text


def test_report_html_of_a_sample_run_opens_offline(sample_report: SampleReport) -> None:
    page = sample_report.path.read_text(encoding="utf-8")

    assert "<script" not in page and "<link" not in page
    assert len(re.findall(r"<svg", page)) >= 5
    assert not UNFORMATTED.findall(page)


def test_report_prints_to_a_pdf_in_chromium(sample_report: SampleReport) -> None:
    _chromium_or_skip()
    pdf = sample_report.path.with_suffix(".pdf")

    printed = _rcm(sample_report.env, "report", "--pdf")

    assert f"wrote {pdf}" in printed.stdout
    content = pdf.read_bytes()
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
    assert len(content) > 50_000  # the charts are on the pages, not only text
    shutil.copy(pdf, SCREENSHOT.with_name("rcm_report.pdf"))


def test_report_pdf_without_chromium_names_what_to_install(sample_report: SampleReport) -> None:
    env = {**sample_report.env, "PATH": str(BIN)}  # rcm, but no browser

    result = _rcm(env, "report", "--pdf", check=False)

    assert result.returncode == 2
    assert result.stderr.startswith("rcm report: no Chromium on PATH to print the PDF")
    assert f"the HTML report is at {sample_report.path}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_names_the_mart_that_is_not_built(project: Project) -> None:
    result = _rcm(dict(os.environ), "report", check=False)

    assert result.returncode == 2
    assert result.stderr.startswith("rcm report: gold/kpi_monthly is not built yet at ")
    assert result.stderr.strip().endswith("run `rcm run` first")
    assert len(result.stderr.strip().splitlines()) == 1
