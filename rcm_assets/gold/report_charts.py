"""The report's charts: Vega-Altair specifications rendered to static SVG by vl-convert.

vl-convert runs Vega in an embedded engine with its own fonts, so rendering needs no browser
and no network, and the page needs no JavaScript. Months are encoded as UTC year-months, so a
chart drawn on a machine in any time zone labels the same months.
"""

import itertools
import re

import altair as alt
import polars as pl
import vl_convert

from rcm_assets.gold.kpis import AGING_BUCKETS
from rcm_assets.gold.report_format import Unit

WIDTH, HEIGHT = 380, 200
AXIS_FORMATS: dict[str, str] = {
    "percent": ".0%",
    "days": ",.0f",
    "currency": "$,.0f",
    "count": ",d",
}
AXIS_TITLES: dict[str, str] = {
    "percent": "percent",
    "days": "days",
    "currency": "US dollars",
    "count": "count",
}
TARGET_COLOUR = "#b91c1c"
CUMULATIVE_COLOUR = "#111827"
_ids = itertools.count(1)


def to_svg(chart: alt.TopLevelMixin) -> str:
    """The chart as an inline `<svg>` element whose ids cannot clash with another chart's."""
    # No base URL is allowed: every chart carries its data inline, and nothing may be fetched.
    svg = vl_convert.vegalite_to_svg(chart.to_dict(), allowed_base_urls=[])
    prefix = f"c{next(_ids)}-"
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
    return re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', svg)


def _values(frame: pl.DataFrame) -> alt.Data:
    """Inline data; dates as ISO strings, which Vega reads as UTC midnight."""
    rows = frame.with_columns(pl.col(pl.Date).dt.to_string("%Y-%m-%d")).to_dicts()
    return alt.Data(values=rows)


def _month_axis() -> alt.X:
    return alt.X(
        "month_end:T",
        timeUnit="utcyearmonth",
        title=None,
        axis=alt.Axis(format="%b %y", labelAngle=-40, grid=True, tickCount="month"),
    )


def _value_axis(field: str, unit: Unit, title: str | None = None) -> alt.Y:
    return alt.Y(
        field,
        type="quantitative",
        title=title or AXIS_TITLES[unit],
        axis=alt.Axis(format=AXIS_FORMATS[unit], grid=True, tickCount=5),
    )


def trend_chart(
    frame: pl.DataFrame, title: str, unit: Unit, target: float | None, target_label: str
) -> alt.TopLevelMixin:
    """One KPI per hospital by month (`hospital`, `month_end`, `value`), its target a dashed
    rule labelled with its value."""
    lines = (
        alt.Chart(_values(frame))
        .mark_line(point=True)
        .encode(
            x=_month_axis(),
            y=_value_axis("value", unit),
            color=alt.Color("hospital:N", title="Hospital", legend=alt.Legend(orient="bottom")),
            tooltip=[
                "hospital:N",
                "month_end:T",
                alt.Tooltip("value:Q", format=AXIS_FORMATS[unit]),
            ],
        )
    )
    layers: list[alt.Chart] = [lines]
    if target is not None:
        rule = alt.Chart(alt.Data(values=[{"target": target}]))
        layers += [
            rule.mark_rule(color=TARGET_COLOUR, strokeDash=[6, 4], strokeWidth=1.5).encode(
                y="target:Q"
            ),
            rule.mark_text(
                color=TARGET_COLOUR, align="right", baseline="bottom", dy=-3, fontSize=10
            ).encode(y="target:Q", x=alt.value(WIDTH), text=alt.value(target_label)),
        ]
    return alt.layer(*layers).properties(title=title, width=WIDTH, height=HEIGHT)


def bucket_chart(frame: pl.DataFrame, measure: str, unit: Unit, title: str) -> alt.Chart:
    """Grouped bars by aging bucket (`hospital`, `bucket`, measure)."""
    return (
        alt.Chart(_values(frame))
        .mark_bar()
        .encode(
            x=alt.X(
                "bucket:N", sort=list(AGING_BUCKETS), title="days", axis=alt.Axis(labelAngle=0)
            ),
            xOffset="hospital:N",
            y=_value_axis(measure, unit),
            color=alt.Color("hospital:N", title="Hospital", legend=alt.Legend(orient="bottom")),
            tooltip=[
                "hospital:N",
                "bucket:N",
                alt.Tooltip(f"{measure}:Q", format=AXIS_FORMATS[unit]),
            ],
        )
        .properties(title=title, width=WIDTH, height=HEIGHT)
    )


def pareto_chart(frame: pl.DataFrame, title: str) -> alt.TopLevelMixin:
    """Denied amount by reason, largest first (`reason`, `denied_amount`), and the cumulative
    share of the total (`cumulative_share`) on its own 0-100 % axis."""
    order = frame.get_column("reason").to_list()
    base = alt.Chart(_values(frame)).encode(
        x=alt.X("reason:N", sort=order, title="CARC group-reason", axis=alt.Axis(labelAngle=-40))
    )
    bars = base.mark_bar(color="#2563eb").encode(
        y=_value_axis("denied_amount", "currency", "denied amount (US dollars)"),
        tooltip=["reason:N", alt.Tooltip("denied_amount:Q", format="$,.0f")],
    )
    cumulative = base.mark_line(
        color=CUMULATIVE_COLOUR, point=alt.OverlayMarkDef(color=CUMULATIVE_COLOUR)
    ).encode(
        y=alt.Y(
            "cumulative_share:Q",
            title="cumulative share",
            scale=alt.Scale(domain=[0, 1]),
            axis=alt.Axis(format=".0%", orient="right", grid=False),
        ),
        tooltip=["reason:N", alt.Tooltip("cumulative_share:Q", format=".1%")],
    )
    return (
        alt.layer(bars, cumulative)
        .resolve_scale(y="independent")
        .properties(title=title, width=WIDTH, height=HEIGHT)
    )


def payer_denial_chart(frame: pl.DataFrame, title: str) -> alt.Chart:
    """Denial rate by payer, one bar per hospital (`hospital`, `payer_name`, `denial_rate`)."""
    return (
        alt.Chart(_values(frame.filter(pl.col("denial_rate").is_not_null())))
        .mark_bar()
        .encode(
            y=alt.Y("payer_name:N", title=None, sort="ascending"),
            yOffset="hospital:N",
            x=alt.X(
                "denial_rate:Q",
                title="denial rate (claims)",
                axis=alt.Axis(format=".0%", grid=True, tickCount=5),
            ),
            color=alt.Color("hospital:N", title="Hospital", legend=alt.Legend(orient="bottom")),
            tooltip=["hospital:N", "payer_name:N", alt.Tooltip("denial_rate:Q", format=".1%")],
        )
        .properties(title=title, width=WIDTH)
    )
