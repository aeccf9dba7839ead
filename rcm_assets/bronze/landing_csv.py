"""Parse a landing CSV file into bronze rows and rejected rows, losing nothing.

A problem with the whole file (empty, no usable header, columns missing or unexpected) raises
FileRejected. A problem with one record (wrong field count, bad quoting, bytes that are not
UTF-8, a duplicate key) rejects that record only, with its line number, raw text and reason.
Every data record of the file ends up in exactly one of the two frames.
"""

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from rcm_assets.errors import RcmError
from rcm_assets.metadata import LandingTable

REJECTED_SCHEMA = pl.Schema({"line_number": pl.Int64, "raw_text": pl.String, "reason": pl.String})
OTHER_DELIMITERS = (";", "\t", "|")


class FileRejected(RcmError):
    """The file as a whole cannot be ingested; the message says why."""


@dataclass(frozen=True)
class ParsedFile:
    rows: pl.DataFrame  # the table's columns as text, plus line_number
    rejected: pl.DataFrame  # REJECTED_SCHEMA
    records: int  # data records in the file (blank lines are not records)


@dataclass(frozen=True)
class _Record:
    line: int
    text: str
    unbalanced: bool = False


def _records(text: str) -> Iterator[_Record]:
    """Group physical lines into CSV records: a quoted field may span lines.

    A quote left open to the end of the file would swallow everything after it, so in that case
    only its first line is given up as a bad record and reading resumes on the next line.
    """
    lines = io.StringIO(text, newline="").readlines()
    index = 0
    while index < len(lines):
        start, quotes = index, lines[index].count('"')
        index += 1
        while quotes % 2 and index < len(lines):
            quotes += lines[index].count('"')
            index += 1
        if quotes % 2:
            yield _Record(start + 1, lines[start], unbalanced=True)
            index = start + 1
            continue
        yield _Record(start + 1, "".join(lines[start:index]))


def _fields(record: _Record) -> list[str]:
    body = record.text.rstrip("\r\n")
    if '"' not in body:
        return body.split(",")
    parsed = list(csv.reader(io.StringIO(body, newline=""), strict=True))
    if len(parsed) != 1:
        raise csv.Error("a line break outside quotes")
    return parsed[0]


def _header(record: _Record, table: LandingTable) -> list[str]:
    names = [name.strip().lstrip("\ufeff") for name in _fields(record)]
    if table.normalise_headers:
        names = [re.sub(r"\s+", "_", name.lower()) for name in names]
    missing = [name for name in table.columns if name not in names]
    unexpected = [name for name in names if name not in table.columns]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if missing or unexpected or duplicated:
        problems = [
            f"missing column(s) {', '.join(missing)}" if missing else "",
            f"unexpected column(s) {', '.join(unexpected)}" if unexpected else "",
            f"repeated column(s) {', '.join(duplicated)}" if duplicated else "",
        ]
        hint = ""
        if len(names) == 1 and any(d in names[0] for d in OTHER_DELIMITERS):
            hint = "; the header has one column: is the file delimited by ',' ?"
        raise FileRejected(
            f"header on line {record.line} does not match landing table {table.table!r}: "
            + "; ".join(p for p in problems if p)
            + hint
            + f" (expected {','.join(table.columns)})"
        )
    return names


def _undecodable(fields: list[str]) -> int | None:
    """Index of the first field holding bytes that were not UTF-8 (decoded as surrogates)."""
    return next((i for i, f in enumerate(fields) if re.search("[\udc80-\udcff]", f)), None)


def parse_landing_csv(data: bytes, table: LandingTable) -> ParsedFile:
    if not data.strip():
        raise FileRejected("the file is empty")
    text = data.decode("utf-8", errors="surrogateescape")
    records = (record for record in _records(text) if record.text.strip())
    first = next(records, None)
    if first is None or first.unbalanced:
        raise FileRejected("no header line")
    try:
        header = _header(first, table)
    except csv.Error as error:
        raise FileRejected(f"header on line 1 is not valid CSV: {error}") from None
    key = header.index(table.key_column)
    rows: list[list[str]] = []
    lines: list[int] = []
    rejected: list[tuple[int, str, str]] = []
    first_seen: dict[str, int] = {}
    count = 0
    for record in records:
        count += 1
        raw = record.text.rstrip("\r\n").encode("utf-8", "surrogateescape")
        raw_text = raw.decode("utf-8", errors="backslashreplace")
        reason = None
        if record.unbalanced:
            reason = "a quote opened on this line is never closed"
        else:
            try:
                fields = _fields(record)
            except csv.Error as error:
                fields, reason = [], f"not valid CSV: {error}"
        if reason is None and len(fields) != len(header):
            reason = f"expected {len(header)} fields, found {len(fields)}"
        if reason is None and (bad := _undecodable(fields)) is not None:
            reason = f"column {header[bad]} is not valid UTF-8"
        if reason is None and fields[key]:
            seen = first_seen.setdefault(fields[key], record.line)
            if seen != record.line:
                reason = f"duplicate {table.key_column} {fields[key]!r} (first on line {seen})"
        if reason:
            rejected.append((record.line, raw_text, reason))
        else:
            rows.append(fields)
            lines.append(record.line)
    frame = pl.DataFrame(rows, schema=dict.fromkeys(header, pl.String), orient="row")
    frame = frame.select(table.columns).with_columns(
        pl.all().replace("", None), pl.Series("line_number", lines, dtype=pl.Int64)
    )
    return ParsedFile(frame, pl.DataFrame(rejected, schema=REJECTED_SCHEMA, orient="row"), count)
