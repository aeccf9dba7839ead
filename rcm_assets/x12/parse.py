"""An X12 file → bronze segment rows, rejected transaction sets and the 999, with pyx12.

pyx12 reads the separators from the ISA segment, walks each transaction set through its
implementation-guide map (005010X221A1 835, 005010X222A1 837P, 005010X223A2 837I) and keeps
the errors in a tree of interchange / group / transaction set / segment / element. From it:

- an error of the envelope (ISA/IEA, GS/GE, a transaction set's control number ST02/SE02 or its
  segment count SE01, a missing trailer) rejects the whole file: nothing of it can be trusted;
- an implementation-guide error inside a transaction set rejects that set alone: its segments
  go to the rejected rows with the reason, the other sets load;
- every segment of the accepted sets (and the envelope) becomes one bronze row, as received,
  with its interchange / group / set control numbers, loop and position in the file.

The position of a segment in the file ("segment 14") counts from the ISA as 1, the way pyx12
counts lines, so every reason names the segment a person can find with an editor.
"""

import io
import json
import logging
import tempfile
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl
import pyx12.errors
import pyx12.map_if
import pyx12.params
import pyx12.x12file
import pyx12.x12n_document

from rcm_assets.errors import FileRejected
from rcm_assets.staging import Staged, staging_folder

# pyx12 logs every validation error; the reasons reach the user through the rejection instead.
logging.getLogger("pyx12").setLevel(logging.CRITICAL)


_load_map_file = pyx12.map_if.load_map_file
_MAPS: dict[tuple[str, str | None, Any], Any] = {}


def _load_map_once(map_file: str, param: Any, map_path: str | None = None) -> Any:
    """pyx12 parses a guide's XML map (about 0.1 s) for every file it reads: half the time of a
    small file. A parse does not change a map (the walker counts loops in its own
    `nodeCounter`), so each process builds one per guide and every file reuses it."""
    key = (map_file, map_path, param.get("exclude_external_codes"))
    if key not in _MAPS:
        _MAPS[key] = _load_map_file(map_file, param, map_path)
    return _MAPS[key]


pyx12.map_if.load_map_file = _load_map_once

SEGMENT_SCHEMA = pl.Schema(
    {
        "interchange_control_number": pl.String,
        "group_control_number": pl.String,
        "transaction_set_control_number": pl.String,
        "transaction_type": pl.String,
        "implementation_guide": pl.String,
        "segment_number": pl.Int64,
        "segment_id": pl.String,
        "loop_id": pl.String,
        "raw_text": pl.String,
        "element_separator": pl.String,
        "component_separator": pl.String,
        "repetition_separator": pl.String,
    }
)
REJECTED_SCHEMA = pl.Schema({"line_number": pl.Int64, "raw_text": pl.String, "reason": pl.String})

# GS08 (the implementation guide) → what the lakehouse calls the transaction type.
TRANSACTION_TYPES = {
    "005010X221A1": "835",
    "005010X222A1": "837P",
    "005010X223A2": "837I",
}
# pyx12's envelope error codes, by level, and the elements they are about.
ENVELOPE_ELEMENTS = {
    "isa": {"001": "ISA13/IEA02", "021": "IEA01", "023": "IEA", "024": "ISA", "025": "ISA13"},
    "gs": {"3": "GE", "4": "GS06/GE02", "5": "GE01", "6": "GS06"},
    "st": {"2": "SE", "3": "ST02/SE02", "4": "SE01", "23": "ST02"},
}
ENVELOPE_SET_ERRORS = set(ENVELOPE_ELEMENTS["st"]) - {"23"}
MAX_REASONS = 5
# Segments are kept as Python values this many at a time, then spooled to a local Arrow file:
# memory follows this, not the file (a 100 MB 835 has about 5 million segments).
CHUNK_SEGMENTS = 100_000
SET_COLUMNS = [
    "interchange_control_number",
    "group_control_number",
    "transaction_set_control_number",
]


class X12FileRejected(FileRejected):
    """The whole X12 file is rejected; `acknowledgment` holds the 999 when pyx12 wrote one."""

    def __init__(self, message: str, acknowledgment: str | None = None) -> None:
        super().__init__(message)
        self.acknowledgment = acknowledgment


SetKey = tuple[str | None, str | None, str | None]  # (ISA13, GS06, ST02)


@dataclass(frozen=True)
class X12Parse:
    """A parsed file. Its segments stay spooled on local disk until read (`batches`), so a large
    file is never held whole; the spool is removed with this object."""

    spool: Staged  # every segment of the file, SEGMENT_SCHEMA
    folder: tempfile.TemporaryDirectory  # the spool's, kept alive as long as this object
    rejected_keys: pl.DataFrame  # SET_COLUMNS + reason: the sets rejected alone
    rejected: pl.DataFrame  # REJECTED_SCHEMA: every segment of a rejected set, with the reason
    acknowledgment: str | None  # the 999 for an 837 file
    transaction_sets: int

    def _spooled(self) -> Iterator[pl.DataFrame]:
        for batch in self.spool.reader():
            yield pl.DataFrame(pl.from_arrow(batch), schema=SEGMENT_SCHEMA)

    def batches(self) -> Iterator[pl.DataFrame]:
        """The accepted sets' segments and the envelope, SEGMENT_SCHEMA, a chunk at a time."""
        for batch in self._spooled():
            yield batch.join(self.rejected_keys, on=SET_COLUMNS, how="anti")

    @property
    def rejected_sets(self) -> int:
        return self.rejected_keys.height

    @property
    def segments(self) -> pl.DataFrame:
        """Every accepted segment at once: for a small file (tests, the command line)."""
        return pl.concat(self.batches())


def _decode(data: bytes) -> str:
    if not data.strip():
        raise X12FileRejected("the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise X12FileRejected(
            f"byte {error.start} is not text (not UTF-8 / ASCII): not an X12 file"
        ) from None
    start = text.lstrip("\ufeff \t\r\n")
    if not start.startswith("ISA"):
        raise X12FileRejected(
            f"not an X12 interchange: the file does not start with an ISA segment "
            f"(it starts {start[:20]!r})"
        )
    return start


class _Collector:
    """pyx12's callback: one call per segment, kept column-wise (no object per row)."""

    def __init__(self, spool: Staged) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in SEGMENT_SCHEMA}
        self.spool = spool
        self.seen = 0
        self.guides: set[str] = set()  # every GS08, in a set or not
        self.ends: dict[SetKey, int] = {}  # a set's SE segment number
        self.isa: str | None = None
        self.gs: str | None = None
        self.st: str | None = None
        self.guide: str | None = None
        # (ISA13, GS06, ST02) → (ST01, GS08, segment number): pyx12 skips a set it has no map
        # for without an error, so the set's type is checked here too.
        self.sets: dict[SetKey, tuple[str, str, int]] = {}

    def __call__(self, seg: Any, src: Any, node: Any, _valid: bool) -> None:
        _seg_term, ele_term, subele_term, _eol, repetition_term = src.get_term()
        seg_id = seg.get_seg_id()
        if seg_id == "ISA":
            self.isa, self.gs, self.st = seg.get_value("ISA13"), None, None
        elif seg_id == "GS":
            self.gs, self.guide = seg.get_value("GS06"), seg.get_value("GS08")
            self.guides.add(self.guide or "")
        elif seg_id == "ST":
            self.st = seg.get_value("ST02")
            self.sets[(self.isa, self.gs, self.st)] = (
                seg.get_value("ST01") or "",
                self.guide or "",
                src.get_cur_line(),
            )
        parent = node.get_parent() if node is not None else None
        values = (
            self.isa,
            self.gs,
            self.st,
            TRANSACTION_TYPES.get(self.guide or "", self.guide) if self.st else None,
            self.guide,
            src.get_cur_line(),
            seg_id,
            getattr(parent, "id", None),
            seg.format("", ele_term, subele_term),
            ele_term,
            subele_term,
            repetition_term,
        )
        for name, value in zip(self.columns, values, strict=True):
            self.columns[name].append(value)
        self.seen += 1
        if len(self.columns["segment_number"]) >= CHUNK_SEGMENTS:
            self.flush()
        if seg_id == "SE":
            self.ends[(self.isa, self.gs, self.st)] = src.get_cur_line()
            self.st = None
        elif seg_id == "GE":
            self.gs = None

    def flush(self) -> None:
        self.spool.add(pl.DataFrame(self.columns, schema=SEGMENT_SCHEMA))
        self.columns = {name: [] for name in SEGMENT_SCHEMA}

    def set_finder(self) -> Callable[[int], SetKey | None]:
        """Segment number → the transaction set whose ST is the last one at or before it."""
        starts = sorted((line, key) for key, (_st01, _guide, line) in self.sets.items())
        lines = [line for line, _ in starts]

        def set_at(line: int) -> SetKey | None:
            index = bisect_right(lines, line)
            key = starts[index - 1][1] if index else None
            return key if key and line <= self.ends.get(key, line) else None

        return set_at


def _segment_reasons(transaction: dict[str, Any]) -> list[tuple[int, str]]:
    """(segment number, reason) of each segment or element error of a transaction set."""
    reasons = []
    for segment in transaction["segments"]:
        where = f"segment {segment['cur_line']} ({segment['seg_id']})"
        for error in segment["errors"]:
            reasons.append((segment["cur_line"], f"{where}: {error['err_str']}"))
        for element in segment["elements"]:
            for error in element["errors"]:
                value = f" {error['err_val']!r}" if error.get("err_val") else ""
                reasons.append(
                    (
                        segment["cur_line"],
                        f"{where} {segment['seg_id']}{element['ele_pos']:02d}{value}: "
                        f"{error['err_str']}",
                    )
                )
    return reasons


def _named(level: str, error: dict[str, Any]) -> str:
    element = ENVELOPE_ELEMENTS[level].get(error["err_cde"])
    return f"{element}: {error['err_str']}" if element else error["err_str"]


def _envelope_errors(tree: dict[str, Any], reader: list[tuple[int, str]]) -> list[str]:
    """What rejects the whole file, named by control number, element and segment."""
    problems = [f"segment {line}: {message}" for line, message in reader]
    for interchange in tree["interchanges"]:
        where = f"interchange ISA13 {interchange['isa_trn_set_id']} (segment "
        problems += [
            f"{where}{interchange['cur_line']}) {_named('isa', e)}" for e in interchange["errors"]
        ]
        for group in interchange["groups"]:
            problems += [
                f"group GS06 {group['gs_control_num']} (segment {group['cur_line']}) "
                f"{_named('gs', e)}"
                for e in group["errors"]
            ]
            for transaction in group["transactions"]:
                problems += [
                    f"transaction set ST02 {transaction['trn_set_control_num']} (segment "
                    f"{transaction['cur_line']}) {_named('st', e)}"
                    for e in transaction["errors"]
                    if e["err_cde"] in ENVELOPE_SET_ERRORS
                ]
    return problems


def _reader_errors(text: str) -> list[tuple[int, str]]:
    """Segments the tokenizer cannot read at all (a separator other than the ISA's, an empty
    or invalid segment id) outside any transaction set: pyx12's tree keeps only their effect."""
    reader = pyx12.x12file.X12Reader(io.StringIO(text))
    found: list[tuple[int, str]] = []
    for _segment in reader:
        for level, _code, message, _value, line in reader.pop_errors():
            if level == "seg" and not reader.get_st_id() and len(found) < MAX_REASONS:
                found.append((line or reader.get_cur_line(), message))
    return found


def _wrong_types(collector: _Collector) -> dict[SetKey, tuple[int, str]]:
    """Sets whose ST01 is not the transaction set their group's GS08 is the guide of."""
    wrong = {}
    for key, (st01, guide, line) in collector.sets.items():
        expected = TRANSACTION_TYPES.get(guide, "")[:3]
        if st01 != expected:
            wrong[key] = (
                line,
                f"transaction set ST02 {key[2]} rejected: segment {line} (ST) ST01 {st01!r} is "
                f"not the {expected} transaction set of its group's guide GS08 {guide}",
            )
    return wrong


def _set_rejections(tree: dict[str, Any], collector: _Collector) -> dict[SetKey, tuple[int, str]]:
    """Each transaction set rejected alone → (first segment, reason).

    An error goes to the set that holds its segment: after a set pyx12 has no map for, it
    files that set's errors under the set before, which must not be rejected for them.
    """
    reasons: dict[SetKey, list[tuple[int, str]]] = {}
    set_at = collector.set_finder()
    for interchange in tree["interchanges"]:
        for group in interchange["groups"]:
            for transaction in group["transactions"]:
                key = (
                    interchange["isa_trn_set_id"],
                    group["gs_control_num"],
                    transaction["trn_set_control_num"],
                )
                for error in transaction["errors"]:
                    reasons.setdefault(key, []).append(
                        (transaction["cur_line"], f"{error['err_str']} ({error['err_cde']})")
                    )
                for line, reason in _segment_reasons(transaction):
                    reasons.setdefault(set_at(line) or key, []).append((line, reason))
    rejected = {}
    for key, found in reasons.items():
        if key not in collector.sets:
            continue
        st01 = collector.sets[key][0]
        more = len(found) - MAX_REASONS
        rejected[key] = (
            min(line for line, _ in found),
            f"transaction set ST02 {key[2]} ({st01}) rejected: "
            + "; ".join(reason for _, reason in found[:MAX_REASONS])
            + (f"; and {more} more error(s)" if more > 0 else ""),
        )
    return rejected


def parse_x12(data: bytes, source_file: str = "") -> X12Parse:
    """Validate and split one X12 file; raise X12FileRejected when it cannot be trusted."""
    text = _decode(data)
    try:
        pyx12.x12file.X12Reader(io.StringIO(text))
    except pyx12.errors.X12Error as error:
        raise X12FileRejected(f"not valid X12: segment 1 (ISA): {error}") from None
    folder = staging_folder()
    collector = _Collector(Staged(Path(folder.name)))
    acknowledgment, errors = io.StringIO(), io.StringIO()
    try:
        pyx12.x12n_document.x12n_document(
            pyx12.params.params(),
            io.StringIO(text),
            acknowledgment,
            None,
            fd_json=errors,
            callback=collector,
        )
    except pyx12.errors.EngineError as error:  # no map for the group's GS08
        raise X12FileRejected(
            f"segment {collector.seen + 1} (GS): GS08 names an implementation guide this "
            f"lakehouse does not read (it reads {', '.join(TRANSACTION_TYPES)}): {error}"
        ) from None
    except pyx12.errors.X12Error as error:
        raise X12FileRejected(f"not valid X12: {error}") from None
    collector.flush()
    ack = acknowledgment.getvalue() or None
    tree = json.loads(errors.getvalue() or '{"interchanges": []}')
    if not tree["interchanges"]:
        raise X12FileRejected("no ISA interchange could be read", ack)
    if problems := _envelope_errors(tree, _reader_errors(text)):
        raise X12FileRejected("; ".join(problems[:MAX_REASONS]), ack)
    # pyx12 reads a guide it has a map for but this lakehouse does not (4010) without an error.
    if unknown := collector.guides - set(TRANSACTION_TYPES):
        raise X12FileRejected(
            f"GS08 {', '.join(sorted(unknown))}: not an implementation guide this lakehouse "
            f"reads ({', '.join(TRANSACTION_TYPES)})",
            ack,
        )
    rejections = _set_rejections(tree, collector) | _wrong_types(collector)
    rejected_keys = pl.DataFrame(
        [(*key, reason) for key, (_line, reason) in rejections.items()],
        schema={**{c: pl.String for c in SET_COLUMNS}, "reason": pl.String},
        orient="row",
    )
    parse = X12Parse(
        spool=collector.spool,
        folder=folder,
        rejected_keys=rejected_keys,
        rejected=pl.DataFrame(schema=REJECTED_SCHEMA),
        acknowledgment=ack
        if any(TRANSACTION_TYPES.get(guide, "").startswith("837") for guide in collector.guides)
        else None,
        transaction_sets=len(collector.sets),
    )
    if rejected_keys.is_empty():
        return parse
    rejected = pl.concat(
        batch.join(rejected_keys, on=SET_COLUMNS).select(
            pl.col("segment_number").alias("line_number"), "raw_text", "reason"
        )
        for batch in parse._spooled()
    )
    return replace(parse, rejected=rejected.cast(dict(REJECTED_SCHEMA)))
