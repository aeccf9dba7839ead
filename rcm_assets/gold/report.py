"""`rcm report`: one self-contained HTML page of the KPI marts at one as-of month.

No JavaScript and nothing fetched (charts are inline SVG from `report_charts`), so the page
opens offline and can be mailed as is. `render_report` is a pure function of `ReportInputs`;
`report_inputs` reads them from the lake.
"""

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from html import escape

import polars as pl

from rcm_assets.gold import report_charts as charts
from rcm_assets.gold import report_format as fmt
from rcm_assets.gold.kpis import AGING_BUCKETS
from rcm_assets.gold.report_data import (
    VOLUMES,
    KpiRow,
    ReportInputs,
    ar_aging,
    as_of_month,
    datasources,
    denial_pareto,
    denials_by_payer,
    headline_rows,
    month_ends,
    open_denials,
    payer_scorecard,
    previous_month,
    proxies,
    trend,
)

SECTIONS = (
    "Sources and freshness",
    "Headline KPIs",
    "KPI trends",
    "A/R aging",
    "Denial reasons",
    "Denials by payer",
    "Payer scorecard",
    "Open denials by age",
    "Data quality",
)
MARKERS = ("*", "†", "‡", "§", "¶")  # which proxy notes a table row depends on

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
 max-width:1040px;color:#111827;padding:0 16px}
h1{margin-bottom:4px}h2{margin-top:36px;border-bottom:2px solid #e5e7eb;padding-bottom:4px}
h3{margin-top:22px}
.as-of{font-size:1.15em;background:#eff6ff;border-left:4px solid #2563eb;padding:8px 12px}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
td,th{padding:4px 10px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left;white-space:normal}
table.wide{font-size:12.5px}table.wide th{white-space:normal;vertical-align:bottom}
.good{color:#15803d}.bad{color:#b91c1c}
.caption{font-size:12.5px;color:#4b5563;margin:2px 0 14px;max-width:900px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:8px 20px}
figure{margin:6px 0}figure svg{max-width:100%;height:auto}
"""


def render_report(inputs: ReportInputs) -> str:
    """The report page; every section at the as-of month of `inputs`."""
    as_of = as_of_month(inputs.marts["kpi_monthly"])
    body = [
        "<h1>Revenue cycle report</h1>",
        f'<p class="as-of">Data as of <strong>{fmt.day(as_of)}</strong> (month end): every '
        "figure is that month, or a trend ending with it. Generated "
        f"{fmt.timestamp(inputs.generated_at)}.</p>",
        _freshness(inputs, as_of),
        _headline(inputs, as_of),
        _trends(inputs, as_of),
        _ar_aging(inputs, as_of),
        _denial_reasons(inputs, as_of),
        _payer_denials(inputs, as_of),
        _scorecards(inputs, as_of),
        _open_denials(inputs, as_of),
        _data_quality(inputs),
        '<p class="caption">Formulas, and the proxies used where the data lacks something: '
        "docs/kpis.md in the project.</p>",
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Revenue cycle report, {fmt.month(as_of)}</title><style>{STYLE}</style>"
        "</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _table(
    header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: int = 1, wide: bool = False
) -> str:
    """A table of already escaped cells; the first `text_columns` are left-aligned text."""

    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f'<{tag} class="text">{v}</{tag}>' if i < text_columns else f"<{tag}>{v}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    css = ' class="wide"' if wide else ""
    return f"<table{css}><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def _caption(text: str) -> str:
    return f'<p class="caption">{text}</p>'


def _proxy_caption(notes: Sequence[str], lead: str = "Proxies") -> str:
    if not notes:
        return ""
    return _caption(
        f"<strong>{escape(lead)}:</strong> " + "; ".join(escape(n) for n in notes) + "."
    )


def _figure(svg: str, caption: str = "") -> str:
    return f"<figure>{svg}{caption}</figure>"


def _text(value: object) -> str:
    """A text cell: escaped, or an em dash when missing."""
    return fmt.MISSING if value is None or value == "" else escape(str(value))


def _freshness(inputs: ReportInputs, as_of: date) -> str:
    frame = inputs.freshness
    by_source = {row["datasource"]: row for row in frame.iter_rows(named=True)}
    rows = [
        [
            escape(inputs.name(ds)),
            fmt.day(by_source.get(ds, {}).get("newest_service_date")),
            fmt.day(by_source.get(ds, {}).get("newest_emr_payment")),
            fmt.day(by_source.get(ds, {}).get("newest_835_payment")),
            fmt.timestamp(by_source.get(ds, {}).get("last_load")),
        ]
        for ds in datasources(inputs)
    ]
    written = [
        f"{escape(mart)} {fmt.timestamp(at)}" for mart, at in sorted(inputs.mart_written_at.items())
    ]
    later = [
        escape(inputs.name(ds))
        for ds in datasources(inputs)
        if (newest := by_source.get(ds, {}).get("newest_service_date")) and newest > as_of
    ]
    left_out = (
        f"later service dates ({', '.join(later)}) are left out"
        if later
        else "no hospital has service dates after it"
    )
    return "\n".join(
        [
            f"<h2>{SECTIONS[0]}</h2>",
            _table(
                [
                    "Hospital",
                    "Newest service date (EMR)",
                    "Newest payment (EMR)",
                    "Newest payment (835)",
                    "Last successful load",
                ],
                rows,
            ),
            _caption(
                "The report month is the latest month in which every hospital has charges; "
                f"{left_out}. Gold marts last written: {'; '.join(written) or fmt.MISSING}."
            ),
        ]
    )


def _change_class(row: KpiRow) -> str:
    step = fmt.direction(row.current, row.previous)
    if step == 0 or row.better is None:
        return ""
    return "good" if (step > 0) == (row.better == "higher") else "bad"


def _headline(inputs: ReportInputs, as_of: date) -> str:
    before = previous_month(as_of)
    marts = list(dict.fromkeys(kpi.mart for kpi in [*inputs.targets, *VOLUMES]))
    notes = {mart: proxies(inputs, mart, [as_of]) for mart in marts}
    markers = dict(zip([m for m in marts if notes[m]], MARKERS, strict=False))
    parts = [f"<h2>{SECTIONS[1]}</h2>"]
    for ds in datasources(inputs):
        rows = []
        for row in headline_rows(inputs, ds, as_of):
            met = fmt.meets(row.current, row.target, row.better or "higher")
            status = {
                True: '<span class="good">met</span>',
                False: '<span class="bad">missed</span>',
            }
            rows.append(
                [
                    escape(row.label) + escape(markers.get(row.mart, "")),
                    fmt.value(row.current, row.unit),
                    fmt.value(row.previous, row.unit),
                    f'<span class="{_change_class(row)}">'
                    f"{fmt.change(row.current, row.previous, row.unit)}</span>",
                    fmt.value(row.target, row.unit),
                    status.get(met, fmt.MISSING),
                ]
            )
        parts.append(f"<h3>{escape(inputs.name(ds))}</h3>")
        parts.append(
            _table(
                ["KPI", fmt.month(as_of), fmt.month(before), "Change", "Target", "Target met"],
                rows,
            )
        )
    for mart, marker in markers.items():
        parts.append(_proxy_caption(notes[mart], f"{marker} Proxies ({mart})"))
    targets = [
        f"{escape(t.label)}: {fmt.value(t.target, t.unit)}, {t.better} is better"
        + (f" ({escape(t.source)})" if t.source else "")
        for t in inputs.targets
    ]
    if targets:
        parts.append(_caption("<strong>Targets:</strong> " + "; ".join(targets) + "."))
    parts.append(
        _caption(
            "Change: the report month against the month before, in percentage points (pp) "
            "for rates; green when it moved the better way."
        )
    )
    return "\n".join(parts)


def _trends(inputs: ReportInputs, as_of: date) -> str:
    window = month_ends(as_of)
    figures = []
    for target in inputs.targets:
        frame = trend(inputs, target, as_of)
        caption = _proxy_caption(proxies(inputs, target.mart, window))
        if frame.is_empty():
            figures.append(
                _figure(
                    f"<p><strong>{escape(target.label)}</strong>: no values in these months.</p>",
                    caption,
                )
            )
            continue
        chart = charts.trend_chart(
            frame,
            target.label,
            target.unit,
            target.target,
            f"target {fmt.value(target.target, target.unit)}",
        )
        figures.append(_figure(charts.to_svg(chart), caption))
    return "\n".join(
        [
            f"<h2>{SECTIONS[2]}</h2>",
            _caption(
                f"{len(window)} months, {fmt.month(window[0])} to {fmt.month(window[-1])}; "
                "the dashed red line is the target."
            ),
            f'<div class="grid">{"".join(figures)}</div>',
        ]
    )


def _bucket_table(frame: pl.DataFrame, measure: str, render: Callable[[float | None], str]) -> str:
    rows = []
    for hospital in frame.get_column("hospital").unique(maintain_order=True).to_list():
        values = frame.filter(pl.col("hospital") == hospital)
        by_bucket = dict(zip(values.get_column("bucket"), values.get_column(measure), strict=True))
        rows.append(
            [escape(hospital)]
            + [render(by_bucket.get(b)) for b in AGING_BUCKETS]
            + [render(values.get_column(measure).sum())]
        )
    return _table(["Hospital", *AGING_BUCKETS, "Total"], rows)


def _ar_aging(inputs: ReportInputs, as_of: date) -> str:
    frame = ar_aging(inputs, as_of)
    chart = charts.bucket_chart(
        frame, "open_balance", "currency", f"Open A/R by days since service, {fmt.day(as_of)}"
    )
    return "\n".join(
        [
            f"<h2>{SECTIONS[3]}</h2>",
            _figure(charts.to_svg(chart)),
            _bucket_table(frame, "open_balance", fmt.currency),
            _proxy_caption(proxies(inputs, "kpi_ar_aging", [as_of])),
        ]
    )


def _denial_reasons(inputs: ReportInputs, as_of: date) -> str:
    window = month_ends(as_of)
    year = f"12 months to {fmt.month(as_of)}"
    parts = [
        f"<h2>{SECTIONS[4]}</h2>",
        _caption(
            f"Denied amount by CARC group and reason in {fmt.month(as_of)}, largest first, with "
            f"the cumulative share (line, right axis); beside it the {year}, which a single "
            "month's few denials can hide."
        ),
    ]
    notes = _proxy_caption(proxies(inputs, "kpi_denials", window))
    for ds in datasources(inputs):
        name = inputs.name(ds)
        month = denial_pareto(inputs, ds, [as_of])
        parts.append(f"<h3>{escape(name)}</h3>")
        figures = []
        for pareto, period in (
            (month, fmt.month(as_of)),
            (denial_pareto(inputs, ds, window), year),
        ):
            if pareto.is_empty():
                figures.append(f"<figure><p>No denials in {period}.</p></figure>")
            else:
                chart = charts.pareto_chart(pareto, f"{name}: denied amount by reason, {period}")
                figures.append(_figure(charts.to_svg(chart), notes))
        parts.append(f'<div class="grid">{"".join(figures)}</div>')
        if month.is_empty():
            continue
        avoidable = {True: "yes", False: "no"}
        parts.append(
            _table(
                [
                    "Reason",
                    "Description",
                    "Category",
                    "Avoidable",
                    "Denials",
                    "Denied amount",
                    "Cumulative share",
                ],
                (
                    [
                        escape(r["reason"]),
                        _text(r["reason_description"]),
                        _text(r["category"]),
                        avoidable.get(r["avoidable"], fmt.MISSING),
                        fmt.count(r["denials"]),
                        fmt.currency(r["denied_amount"]),
                        fmt.percent(r["cumulative_share"]),
                    ]
                    for r in month.iter_rows(named=True)
                ),
                text_columns=3,
                wide=True,
            )
        )
    return "\n".join(parts)


def _payer_denials(inputs: ReportInputs, as_of: date) -> str:
    frame = denials_by_payer(inputs, as_of)
    parts = [f"<h2>{SECTIONS[5]}</h2>"]
    if frame.is_empty():
        return "\n".join([*parts, f"<p>No remittances in {fmt.month(as_of)}.</p>"])
    chart = charts.payer_denial_chart(frame, f"Denial rate by payer, {fmt.month(as_of)}")
    parts.append(_figure(charts.to_svg(chart)))
    parts.append(
        _table(
            [
                "Hospital",
                "Payer",
                "Claims remitted",
                "Claims denied",
                "Denial rate",
                "Denied amount",
            ],
            (
                [
                    escape(r["hospital"]),
                    _text(r["payer_name"]),
                    fmt.count(r["remitted_claims"]),
                    fmt.count(r["denied_claims"]),
                    fmt.percent(r["denial_rate"]),
                    fmt.currency(r["denied_amount"]),
                ]
                for r in frame.iter_rows(named=True)
            ),
            text_columns=2,
        )
    )
    return "\n".join(parts)


SCORECARD_COLUMNS: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("remitted_claims", "Claims remitted", fmt.count),
    ("charges", "Charges", fmt.currency),
    ("allowed", "Allowed", fmt.currency),
    ("payments", "Paid", fmt.currency),
    ("contractual_adjustments", "Contractual adj.", fmt.currency),
    ("patient_responsibility", "Patient resp.", fmt.currency),
    ("denied_claims", "Claims denied", fmt.count),
    ("denial_rate", "Denial rate", fmt.percent),
    ("avg_days_to_pay", "Days to pay", fmt.days),
    ("underpaid_lines", "Underpaid lines", fmt.count),
    ("underpaid_amount", "Underpaid", fmt.currency),
)


def _scorecards(inputs: ReportInputs, as_of: date) -> str:
    parts = [f"<h2>{SECTIONS[6]}</h2>", _caption(f"Remittances (835) of {fmt.month(as_of)}.")]
    for ds in datasources(inputs):
        frame = payer_scorecard(inputs, ds, as_of)
        parts.append(f"<h3>{escape(inputs.name(ds))}</h3>")
        if frame.is_empty():
            parts.append(f"<p>No remittances in {fmt.month(as_of)}.</p>")
            continue
        parts.append(
            _table(
                ["Payer", *(label for _, label, _ in SCORECARD_COLUMNS)],
                (
                    [_text(r["payer_name"])]
                    + [render(r[column]) for column, _, render in SCORECARD_COLUMNS]
                    for r in frame.iter_rows(named=True)
                ),
                wide=True,
            )
        )
    parts.append(_proxy_caption(proxies(inputs, "kpi_payer_scorecard", [as_of])))
    return "\n".join(parts)


def _open_denials(inputs: ReportInputs, as_of: date) -> str:
    frame = open_denials(inputs, as_of)
    chart = charts.bucket_chart(
        frame,
        "open_amount",
        "currency",
        f"Open denied amount by days since denial, {fmt.day(as_of)}",
    )
    return "\n".join(
        [
            f"<h2>{SECTIONS[7]}</h2>",
            _caption(
                f"Denials made by {fmt.day(as_of)} and neither recovered nor written off by then, "
                "aged from the denial date."
            ),
            _figure(charts.to_svg(chart)),
            "<h3>Open denials (count)</h3>",
            _bucket_table(frame, "open_denials", fmt.count),
            "<h3>Open denied amount</h3>",
            _bucket_table(frame, "open_amount", fmt.currency),
            _proxy_caption(proxies(inputs, "kpi_denied_claims", [as_of])),
        ]
    )


def _data_quality(inputs: ReportInputs) -> str:
    parts = [
        f"<h2>{SECTIONS[8]}</h2>",
        _caption(
            "The lake when the report was generated: current silver rows held out of gold, "
            "gold rows whose key has no dimension row, and landing files that could not be read."
        ),
        "<h3>Quarantined silver rows</h3>",
    ]
    quarantine = inputs.quarantine
    if quarantine.is_empty():
        parts.append("<p>No current silver row is quarantined.</p>")
    else:
        parts.append(
            _table(
                ["Silver table", "Hospital", "Reason", "Rows", "Share of current rows"],
                (
                    [
                        escape(r["table"]),
                        escape(inputs.name(r["datasource"])),
                        escape(r["reason"]),
                        fmt.count(r["rows"]),
                        fmt.percent(r["rows"] / r["current_rows"] if r["current_rows"] else None),
                    ]
                    for r in quarantine.sort("table", "datasource", "reason").iter_rows(named=True)
                ),
                text_columns=3,
            )
        )
    parts.append("<h3>Orphan rates</h3>")
    orphans = inputs.orphans
    if orphans.is_empty():
        parts.append("<p>No gold table with foreign keys was found.</p>")
    else:
        parts.append(
            _table(
                ["Gold table", "Foreign key", "Hospital", "Rows checked", "Orphans", "Orphan rate"],
                (
                    [
                        escape(r["table"]),
                        escape(r["rule"].replace("->", " → ")),
                        escape(inputs.name(r["datasource"])),
                        fmt.count(r["rows_checked"]),
                        fmt.count(r["rows_failed"]),
                        fmt.percent(r["rate"]),
                    ]
                    for r in orphans.sort("table", "rule", "datasource").iter_rows(named=True)
                ),
                text_columns=3,
            )
        )
    parts.append("<h3>Rejected files</h3>")
    rejected = inputs.rejected_files
    if rejected.is_empty():
        parts.append("<p>No landing file is kept under rejected/.</p>")
    else:
        rows = []
        for (folder,), files in rejected.sort("folder", "file").group_by(
            "folder", maintain_order=True
        ):
            rows.append(
                [
                    escape(folder),
                    "<br>".join(
                        f"{escape(r['file'])}: {_text(r['reason'])}"
                        for r in files.iter_rows(named=True)
                    ),
                    fmt.count(files.height),
                ]
            )
        parts.append(_table(["Folder", "File: reason", "Files"], rows, text_columns=2))
    return "\n".join(parts)
