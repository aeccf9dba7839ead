"""`rcm report`: one self-contained HTML page of the KPI marts, charts drawn as inline SVG.

No JavaScript and no external assets, so the page opens offline and can be mailed as is.
"""

from html import escape

import polars as pl

from rcm_assets.gold.kpis import AGING_BUCKETS

COLOURS = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2")
WIDTH, HEIGHT, PAD = 720, 260, 48


def _frame(title: str, body: str, legend: list[tuple[str, str]]) -> str:
    keys = "".join(
        f'<span style="margin-right:14px"><span style="display:inline-block;width:10px;'
        f'height:10px;background:{colour}"></span> {escape(name)}</span>'
        for name, colour in legend
    )
    return (
        f"<h2>{escape(title)}</h2><div>{keys}</div>"
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"{body}</svg>"
    )


def _axis(top: float, label: str) -> str:
    bottom = HEIGHT - PAD
    return (
        f'<line x1="{PAD}" y1="{bottom}" x2="{WIDTH - 10}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{bottom}" stroke="#999"/>'
        f'<text x="4" y="18" font-size="11">{escape(label)}</text>'
        f'<text x="4" y="{bottom}" font-size="11">0</text>'
        f'<text x="4" y="32" font-size="11">{top:,.0f}</text>'
    )


def bar_chart(title: str, groups: list[str], series: dict[str, list[float]], unit: str) -> str:
    """Grouped bars: one group per category, one bar per series."""
    top = max([v for values in series.values() for v in values] + [1e-9])
    slot = (WIDTH - PAD - 20) / max(len(groups), 1)
    bar = slot * 0.8 / max(len(series), 1)
    scale = (HEIGHT - PAD - 30) / top
    body = [_axis(top, unit)]
    for g, group in enumerate(groups):
        x0 = PAD + 10 + g * slot
        body.append(
            f'<text x="{x0 + slot * 0.4:.0f}" y="{HEIGHT - PAD + 16}" font-size="11" '
            f'text-anchor="middle">{escape(group)}</text>'
        )
        for s, (_, values) in enumerate(series.items()):
            height = values[g] * scale
            body.append(
                f'<rect x="{x0 + s * bar:.1f}" y="{HEIGHT - PAD - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{COLOURS[s % len(COLOURS)]}">'
                f"<title>{escape(group)}: {values[g]:,.2f}</title></rect>"
            )
    legend = [(name, COLOURS[i % len(COLOURS)]) for i, name in enumerate(series)]
    return _frame(title, "".join(body), legend)


def line_chart(
    title: str, labels: list[str], series: dict[str, list[float | None]], unit: str
) -> str:
    values = [v for line in series.values() for v in line if v is not None]
    top = max([*values, 1e-9])
    step = (WIDTH - PAD - 20) / max(len(labels) - 1, 1)
    scale = (HEIGHT - PAD - 30) / top
    body = [_axis(top * 100, unit)]
    for i, label in enumerate(labels):
        if i % max(len(labels) // 8, 1) == 0:
            body.append(
                f'<text x="{PAD + i * step:.0f}" y="{HEIGHT - PAD + 16}" font-size="10" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for s, (_, line) in enumerate(series.items()):
        points = " ".join(
            f"{PAD + i * step:.1f},{HEIGHT - PAD - v * scale:.1f}"
            for i, v in enumerate(line)
            if v is not None
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{COLOURS[s % len(COLOURS)]}" '
            'stroke-width="2"/>'
        )
    legend = [(name, COLOURS[i % len(COLOURS)]) for i, name in enumerate(series)]
    return _frame(title, "".join(body), legend)


def render_report(aging: pl.DataFrame, monthly: pl.DataFrame, payer_mix: pl.DataFrame) -> str:
    """The report page from the three KPI marts."""
    latest = aging.get_column("month_end").max()
    datasources = sorted(monthly.get_column("datasource").unique().to_list())
    now = aging.filter(pl.col("month_end") == latest)
    aging_series = {
        ds: [
            float(
                now.filter((pl.col("datasource") == ds) & (pl.col("bucket") == b))
                .get_column("open_balance")
                .sum()
            )
            for b in AGING_BUCKETS
        ]
        for ds in datasources
    }
    months = sorted(monthly.get_column("month_end").unique().to_list())
    denial = {
        ds: [
            next(
                iter(
                    monthly.filter((pl.col("datasource") == ds) & (pl.col("month_end") == m))
                    .get_column("denial_rate_count")
                    .to_list()
                ),
                None,
            )
            for m in months
        ]
        for ds in datasources
    }
    mix_month = payer_mix.get_column("month_end").max()
    payers = sorted(payer_mix.get_column("payor_type").drop_nulls().unique().to_list())
    mix_now = payer_mix.filter(pl.col("month_end") == mix_month)
    mix = {
        ds: [
            float(
                mix_now.filter((pl.col("datasource") == ds) & (pl.col("payor_type") == p))
                .get_column("share_of_charges")
                .sum()
            )
            * 100
            for p in payers
        ]
        for ds in datasources
    }
    charged = monthly.filter(pl.col("charges") > 0)
    table = charged.filter(pl.col("month_end") == charged.get_column("month_end").max())
    rows = "".join(
        f"<tr><td>{escape(r['datasource'])}</td><td>{r['charges']:,.0f}</td>"
        f"<td>{r['payments']:,.0f}</td><td>{_pct(r['gross_collection_rate'])}</td>"
        f"<td>{_pct(r['denial_rate_count'])}</td><td>{r['open_ar']:,.0f}</td>"
        f"<td>{_pct(r['ar_over_90_share'])}</td><td>{_num(r['days_in_ar'])}</td></tr>"
        for r in table.iter_rows(named=True)
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>RCM KPI report</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:760px}}
td,th{{padding:4px 8px;text-align:right}}th{{background:#f1f5f9}}</style></head><body>
<h1>Revenue cycle KPIs</h1>
<p>Latest month with charges: {escape(str(table.get_column("month_end").max()))}.</p>
<p>From the gold KPI marts; formulas and proxies in docs/kpis.md.</p>
<table><tr><th>datasource</th><th>charges</th><th>payments</th><th>gross collection</th>
<th>denial rate</th><th>open A/R</th><th>A/R &gt; 90 days</th><th>days in A/R</th></tr>
{rows}</table>
{bar_chart(f"A/R aging at {latest}", list(AGING_BUCKETS), aging_series, "open balance")}
{line_chart("Denial rate by claim month", [str(m)[:7] for m in months], denial, "denial %")}
{bar_chart(f"Payer mix, {str(mix_month)[:7]} (share of charges, %)", payers, mix, "%")}
</body></html>
"""


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"
