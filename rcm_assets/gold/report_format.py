"""How the report writes numbers, dates and changes: one place, so the page and its tests agree.

A missing, NaN or infinite value is written as an em dash, never as `None`, `nan` or `inf`.
A negative number takes an ASCII minus, so that a figure pasted into a spreadsheet stays a number.
"""

import math
from datetime import UTC, date, datetime
from typing import Literal

Unit = Literal["percent", "days", "currency", "count"]
MISSING = "—"  # em dash
MINUS = "-"


def is_missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _signed(text: str, negative: bool) -> str:
    return f"{MINUS}{text}" if negative else text


def currency(value: float | None) -> str:
    """Whole dollars with thousands separators: $1,234,567."""
    if is_missing(value):
        return MISSING
    assert value is not None
    rounded = round(value)
    return _signed(f"${abs(rounded):,}", rounded < 0)


def percent(value: float | None) -> str:
    """A 0-1 rate as a percentage with one decimal: 12.3 %."""
    if is_missing(value):
        return MISSING
    assert value is not None
    rounded = round(value * 100, 1)
    return _signed(f"{abs(rounded):,.1f} %", rounded < 0)


def days(value: float | None) -> str:
    if is_missing(value):
        return MISSING
    assert value is not None
    rounded = round(value, 1)
    return _signed(f"{abs(rounded):,.1f} days", rounded < 0)


def count(value: float | None) -> str:
    if is_missing(value):
        return MISSING
    assert value is not None
    rounded = round(value)
    return _signed(f"{abs(rounded):,}", rounded < 0)


FORMATS = {"percent": percent, "days": days, "currency": currency, "count": count}
DECIMALS = {"percent": 3, "days": 1, "currency": 0, "count": 0}  # what each format shows


def value(number: float | None, unit: Unit) -> str:
    """A KPI value in its unit."""
    return FORMATS[unit](number)


def change(current: float | None, previous: float | None, unit: Unit) -> str:
    """Month-over-month change with its sign: percentage points for rates, else the unit's
    own difference (`+1.2 pp`, `-3.0 days`, `+$1,200`); no sign when it rounds to zero, and an
    em dash when either side is missing.
    """
    if is_missing(current) or is_missing(previous):
        return MISSING
    assert current is not None and previous is not None
    if unit == "percent":
        delta = round((current - previous) * 100, 1)
        magnitude = f"{abs(delta):,.1f} pp"
    else:
        delta = round(current - previous, DECIMALS[unit])
        magnitude = FORMATS[unit](abs(delta))
    if delta == 0:
        return magnitude
    return ("+" if delta > 0 else MINUS) + magnitude


def direction(current: float | None, previous: float | None) -> int:
    """+1 when the value rose, -1 when it fell, 0 when flat or unknown."""
    if is_missing(current) or is_missing(previous):
        return 0
    assert current is not None and previous is not None
    return (current > previous) - (current < previous)


def meets(number: float | None, target: float | None, better: str) -> bool | None:
    """Whether a value meets its target (None when either is missing)."""
    if is_missing(number) or is_missing(target):
        return None
    assert number is not None and target is not None
    return number >= target if better == "higher" else number <= target


def day(value: date | datetime | None) -> str:
    """A date as `31 Dec 2025`."""
    if value is None:
        return MISSING
    return f"{value.day} {value:%b %Y}"


def timestamp(value: datetime | None) -> str:
    """A time in UTC to the minute: `2026-01-05 14:03 UTC`."""
    if value is None:
        return MISSING
    utc = value.astimezone(UTC) if value.tzinfo else value  # naive times are UTC already
    return f"{utc:%Y-%m-%d %H:%M} UTC"


def month(value: date | None) -> str:
    """A month end as its month: `Dec 2025`."""
    return MISSING if value is None else f"{value:%b %Y}"
