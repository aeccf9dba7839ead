"""Parse a landing CSV file into bronze rows and rejected rows, losing nothing.

A problem with the whole file (empty, no usable header, columns missing or unexpected) raises
FileRejected. A problem with one record (wrong field count, bad quoting, bytes that are not
UTF-8, a duplicate key) rejects that record only, with its line number, raw text and reason.
Every data record of the file ends up in exactly one of the two frames.

Two parsers give the same outcome. A clean file (valid UTF-8, no quotes, no blank lines, every
line with the header's field count) is read in bulk by Polars' CSV reader, as text, with no
Python object per row; anything else, or anything the bulk reader refuses, goes to the
record-by-record parser, which knows every way a record can be wrong.
"""

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from rcm_assets.errors import FileRejected
from rcm_assets.metadata import LandingTable

REJECTED_SCHEMA = pl.Schema({"line_number": pl.Int64, "raw_text": pl.String, "reason": pl.String})
OTHER_DELIMITERS = (";", "\t", "|")
CHUNK_ROWS = 250_000


# What a landing file that is not CSV text starts with, and what to call it.
BINARY_SIGNATURES = {
    b"\x1f\x8b": "gzip-compressed",
    b"PK\x03\x04": "a ZIP archive",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"%PDF": "a PDF document",
}


def check_is_text(data: bytes) -> None:
    """Refuse, by name, a compressed or binary file that landed under a CSV name."""
    for signature, kind in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise FileRejected(f"the file is {kind}, not CSV text: land the uncompressed CSV")
    if b"\x00" in data[:65536]:
        raise FileRejected("the file holds NUL bytes: binary data or UTF-16 text, not UTF-8 CSV")


@dataclass(frozen=True)
class ParsedFile:
    rows: pl.LazyFrame  # the table's columns as text, plus line_number, in file order
    rejected: pl.DataFrame  # REJECTED_SCHEMA
    records: int  # data records in the file (blank lines are not records)

    @property
    def landed(self) -> int:
        """Rows in `rows`, without reading them: every record is landed or rejected."""
        return self.records - self.rejected.height

    def batches(self) -> Iterator[pl.DataFrame]:
        """The rows to load, `CHUNK_ROWS` at a time: a large file is never held whole."""
        yield from self.rows.collect_batches(chunk_size=CHUNK_ROWS, engine="streaming")


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
    check_is_text(data)
    return parse_in_bulk(data, table) or parse_by_record(data, table)


def parse_in_bulk(data: bytes, table: LandingTable) -> ParsedFile | None:
    """The fast path for a clean file; None when the file needs the record-by-record parser.

    Clean means: no quote character, no blank line, and as many commas as the header's field
    count implies for every line. Polars refuses a line with more fields than the header, so
    with the comma total right no line can have fewer either; invalid UTF-8 makes it refuse the
    file. Only duplicate keys are found here too (the first occurrence lands, as on the other
    path).
    """
    header_end = data.find(b"\n")
    if header_end <= 0 or b'"' in data or b"\n\n" in data or b"\n\r\n" in data:
        return None
    header_line = data[:header_end].decode("utf-8", errors="surrogateescape")
    if not header_line.strip():
        return None
    header = _header(_Record(1, header_line), table)  # FileRejected: the same as by record
    # Counted on the whole file (no copy of a large one): the header line holds one newline and
    # len(header) - 1 commas.
    lines = data.count(b"\n") - 1 + (0 if data.endswith(b"\n") else 1)
    if data.count(b",") - (len(header) - 1) != (len(header) - 1) * lines:
        return None
    key = pl.col(table.key_column)
    key_hash = pl.when(key.is_not_null()).then(key.hash()).alias("_key_hash")
    rows = (
        pl.scan_csv(
            data,
            has_header=True,
            new_columns=header,
            schema_overrides=dict.fromkeys(header, pl.String),
            infer_schema=False,
            quote_char=None,
            raise_if_empty=False,
            row_index_name="line_number",
            row_index_offset=2,
        )
        .with_columns(pl.col(header[-1]).str.strip_suffix("\r"))
        # an empty field is NULL; `when`, not `replace`, which stops Polars streaming (2.1)
        .with_columns(
            *(pl.when(pl.col(name) != "").then(pl.col(name)).alias(name) for name in header),
            pl.col("line_number").cast(pl.Int64),
        )
    )
    # One streamed pass counts the records and finds the keys that may repeat (a 64-bit hash
    # per key is held, usually no repeats); the rows themselves stream later, chunk by chunk.
    try:
        counts = rows.group_by(key_hash).len().collect(engine="streaming")
    except pl.exceptions.PolarsError:  # invalid UTF-8, a ragged line: the record parser says which
        return None
    if counts.get_column("len").sum() != lines:
        return None
    repeating = counts.filter(pl.col("_key_hash").is_not_null() & (pl.col("len") > 1))
    candidates = (
        rows.filter(key_hash.is_in(repeating.get_column("_key_hash").implode()))
        .collect(engine="streaming")
        .sort("line_number")
        if repeating.height
        else rows.clear().collect()
    )
    repeated = candidates.filter(~key.is_first_distinct())  # the first occurrence lands
    later = repeated.get_column("line_number").implode()
    landed = rows.filter(~pl.col("line_number").is_in(later)).select(*table.columns, "line_number")
    rejected = _duplicates(candidates, repeated, header, table.key_column)
    return ParsedFile(landed, rejected, lines)


def _duplicates(
    frame: pl.DataFrame, repeated: pl.DataFrame, header: list[str], key: str
) -> pl.DataFrame:
    """The rejected rows for repeated keys, worded as the record parser words them."""
    if repeated.is_empty():
        return pl.DataFrame(schema=REJECTED_SCHEMA)
    first = (
        frame.filter(pl.col(key).is_in(repeated.get_column(key).implode()))
        .group_by(key)
        .agg(pl.col("line_number").min().alias("first"))
    )
    joined = repeated.join(first, on=key).sort("line_number")
    raw = joined.select(pl.concat_str([pl.col(c).fill_null("") for c in header], separator=","))
    reasons = [
        f"duplicate {key} {value!r} (first on line {line})"
        for value, line in zip(joined.get_column(key), joined.get_column("first"), strict=True)
    ]
    return pl.DataFrame(
        {
            "line_number": joined.get_column("line_number"),
            "raw_text": raw.to_series(),
            "reason": reasons,
        },
        schema=REJECTED_SCHEMA,
    )


def parse_by_record(data: bytes, table: LandingTable) -> ParsedFile:
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
    rejected_rows = pl.DataFrame(rejected, schema=REJECTED_SCHEMA, orient="row")
    return ParsedFile(frame.lazy(), rejected_rows, count)
