"""Field types of the row models: how one CSV cell becomes a value.

Each type carries its parsing with it, so a model says what a column holds (`Flag`, `Words`,
`NoneIfEmpty[Identifier]`) and the parsing, with its error message, is written once.
"""

from __future__ import annotations

import re
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, BeforeValidator, Field

IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
SLUG = r"^[a-z0-9][a-z0-9_-]*$"
HTTPS_URL = r"^https://[^\s/?#]+(/[^\s?#]*)?$"
PERMISSIONS = r"^[r-][w-][x-]$"  # POSIX permissions of one ACL entry, e.g. r-x; --- for none

T = TypeVar("T")


def _empty_is_none(value: object) -> object:
    # A CSV cell cannot be null: leaving it empty is how a row leaves a setting out.
    return value.strip() or None if isinstance(value, str) else value


def _flag(value: object) -> object:
    if not isinstance(value, str):
        return value
    normalised = value.strip().lower()
    if normalised in {"1", "true", "yes"}:
        return True
    if normalised in {"0", "false", "no"}:
        return False
    raise ValueError(f"{value!r} is not a flag; use 1 or 0")


def _flag_empty_is_false(value: object) -> object:
    return False if isinstance(value, str) and not value.strip() else _flag(value)


def _words(value: object) -> object:
    return tuple(value.split()) if isinstance(value, str) else value


def _column_names(value: object) -> object:
    names = _words(value)
    if not names or not all(re.fullmatch(IDENTIFIER, name) for name in names):
        raise ValueError("a space-separated list of plain column names is required")
    if len(set(names)) != len(names):
        raise ValueError("a column is listed twice")
    return names


def _icd_root_codes(value: object) -> object:
    codes = _words(value)
    if not all(re.fullmatch(r"[A-Z0-9][A-Z0-9.-]*", code) for code in codes):
        raise ValueError(
            "a space-separated list of chapter or block codes (I, A00-B99) is expected"
        )
    return codes


def _folder_path(value: object) -> object:
    """`.`, `` and `/` are the root (stored as ``); `gold/dim_patient/` → `gold/dim_patient`."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str):
        return text
    parts = [part for part in text.strip("/").split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise ValueError("`..` is not allowed; give a path below the store's root")
    if not all(re.fullmatch(r"[A-Za-z0-9_-]+", part) for part in parts):
        raise ValueError("a folder path like gold/dim_patient (letters, digits, _ and -)")
    return "/".join(parts)


def _cron(value: str) -> str:
    # Dagster schedules take minute resolution only and refuse 30 or 31 February; croniter
    # accepts both, which would then fail later, at definitions load.
    fields = croniter.expand(value)[0] if croniter.is_valid(value) else []
    if len(fields) != 5 or (fields[3] == [2] and fields[2] in ([30], [31])):
        raise ValueError(f"{value!r} is not a cron expression")
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


EmptyIsNone = BeforeValidator(_empty_is_none)
NoneIfEmpty = Annotated[T | None, EmptyIsNone]
"""`NoneIfEmpty[Identifier]`: an optional setting; an empty cell is None."""
OptionalText = NoneIfEmpty[str]
Flag = Annotated[bool, BeforeValidator(_flag)]
"""1/0, true/false or yes/no, any case."""
FlagEmptyIsFalse = Annotated[bool, BeforeValidator(_flag_empty_is_false)]
"""A `Flag` whose empty cell means no."""
Words = Annotated[tuple[str, ...], BeforeValidator(_words)]
"""A space-separated list (column names, tags, table names); an empty cell is ()."""
ColumnNames = Annotated[tuple[str, ...], BeforeValidator(_column_names)]
"""`Words` that must be at least one plain column name, none twice."""
IcdRootCodes = Annotated[tuple[str, ...], BeforeValidator(_icd_root_codes)]
Identifier = Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
"""A plain SQL / Polars name: safe to put in a query or a path."""
Slug = Annotated[str, Field(pattern=SLUG)]
"""A lowercase name for paths and partitions: hos-a, hosa, analytics."""
EnvVarName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
HttpsUrl = Annotated[str, Field(pattern=HTTPS_URL)]
FolderPath = Annotated[str, BeforeValidator(_folder_path)]
"""A folder relative to a store's root, normalised; the root itself is ``."""
CronExpression = Annotated[str, AfterValidator(_cron)]
TimeZoneName = Annotated[str, AfterValidator(_time_zone)]
