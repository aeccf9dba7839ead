"""The X12 bad-input corpus checked against pyx12 itself, so its expectations can be trusted.

Only the corpus is tested here (not the lakehouse's parser): the two bases are valid, every
broken case makes pyx12 report an error (or raise), at the segment the case names, inside the
set it names.
"""

import io
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import pyx12.errors
import pyx12.params
import pyx12.x12file
import pyx12.x12n_document

from rcm_assets_tests.x12_corpus import BASE_835, BASE_837P, CASES, TERMINATOR, X12Case

logging.getLogger("pyx12").setLevel(logging.CRITICAL)

CLEAN = {"valid_835", "valid_837p", "unbalanced_claim", "duplicate_interchange"}


@dataclass
class Pyx12Report:
    """What pyx12 says of one file: X12Reader errors, the error tree, or what it raised."""

    ok: bool = False
    raised: str = ""
    reader: list[tuple[int | None, str, str, str]] = field(default_factory=list)
    tree: dict = field(default_factory=dict)

    def tree_errors(self) -> list[tuple[str | None, int | None, str]]:
        """(ST02 or None for the envelope, segment number or None, message) of the tree."""
        found: list[tuple[str | None, int | None, str]] = []
        for isa in self.tree.get("interchanges", []):
            found += [(None, None, e["err_str"]) for e in isa["errors"]]
            for gs in isa["groups"]:
                found += [(None, None, e["err_str"]) for e in gs["errors"]]
                for st in gs["transactions"]:
                    st02 = st["trn_set_control_num"]
                    found += [(st02, st["cur_line"], e["err_str"]) for e in st["errors"]]
                    for seg in st["segments"]:
                        errors = seg["errors"] + [e for el in seg["elements"] for e in el["errors"]]
                        found += [(st02, seg["cur_line"], e["err_str"]) for e in errors]
        return found

    def messages(self) -> list[str]:
        return (
            [self.raised] * bool(self.raised)
            + [r[3] for r in self.reader]
            + [m for _, _, m in self.tree_errors()]
        )

    def segments(self) -> set[int]:
        reader = {r[0] for r in self.reader if r[0] is not None}
        return reader | {line for _, line, _ in self.tree_errors() if line is not None}


def pyx12_report(data: bytes) -> Pyx12Report:
    text = data.decode("ascii")
    report = Pyx12Report()
    try:
        reader = pyx12.x12file.X12Reader(io.StringIO(text))
        for _ in reader:
            number = reader.get_cur_line()
            report.reader += [(number, e[0], e[1], e[2]) for e in reader.pop_errors()]
        reader.cleanup()
        report.reader += [(None, e[0], e[1], e[2]) for e in reader.pop_errors()]
    except pyx12.errors.X12Error as error:
        report.raised = f"X12Error: {error}"
        return report
    errors = io.StringIO()
    try:
        report.ok = pyx12.x12n_document.x12n_document(
            pyx12.params.params(), io.StringIO(text), io.StringIO(), None, fd_json=errors
        )
    except (pyx12.errors.EngineError, pyx12.errors.X12Error) as error:
        report.raised = f"{type(error).__name__}: {error}"
    report.tree = json.loads(errors.getvalue() or "{}")
    return report


def set_spans(data: bytes) -> dict[str, range]:
    """ST02 → the segment numbers from its ST to its SE (or the end of the file)."""
    segments = data.decode("ascii").split(TERMINATOR)
    spans, start, st02 = {}, 0, ""
    for number, segment in enumerate(segments, 1):
        if segment.startswith("ST*"):
            start, st02 = number, segment.split("*")[2]
            spans[st02] = range(start, len(segments) + 1)
        elif segment.startswith("SE*") and st02:
            spans[st02] = range(start, number + 1)
    return spans


@pytest.mark.parametrize("base", [BASE_835, BASE_837P], ids=["835", "837p"])
def test_bases_are_valid(base: bytes) -> None:
    report = pyx12_report(base)
    assert report.ok, report.messages()
    assert not report.messages()
    assert list(set_spans(base)) == ["0001", "0002"]
    assert b"\r" not in base and len(base.split(b"\n")[0]) == 106  # the ISA is 106 characters


def _amounts(data: bytes) -> list[list[str]]:
    return [s.split("*") for s in data.decode("ascii").split(TERMINATOR) if s]


def claim_imbalances(data: bytes) -> dict[str, Decimal]:
    """CLP01 → CLP03 - CLP04 - every CAS amount of the claim and its service lines."""
    imbalance: dict[str, Decimal] = {}
    claim = ""
    for elements in _amounts(data):
        if elements[0] == "CLP":
            claim = elements[1]
            imbalance[claim] = Decimal(elements[3]) - Decimal(elements[4])
        elif elements[0] == "CAS" and claim:
            imbalance[claim] -= sum(Decimal(a) for a in elements[3::3] if a)
        elif elements[0] == "SE":
            claim = ""
    return imbalance


def service_line_imbalances(data: bytes) -> list[Decimal]:
    """SVC02 - SVC03 - the CAS amounts of each service line, in file order."""
    imbalances: list[Decimal] = []
    in_line = False
    for elements in _amounts(data):
        if elements[0] == "SVC":
            imbalances.append(Decimal(elements[2]) - Decimal(elements[3]))
            in_line = True
        elif elements[0] == "CAS" and in_line:
            imbalances[-1] -= sum(Decimal(a) for a in elements[3::3] if a)
        elif elements[0] in {"LX", "CLP", "PLB", "SE"}:
            in_line = False
    return imbalances


def payments(data: bytes) -> dict[str, tuple[Decimal, Decimal]]:
    """ST02 → (BPR02, sum of CLP04 - PLB amounts)."""
    found: dict[str, tuple[Decimal, Decimal]] = {}
    bpr = paid = Decimal(0)
    for elements in _amounts(data):
        if elements[0] == "BPR":
            bpr, paid = Decimal(elements[2]), Decimal(0)
        elif elements[0] == "CLP":
            paid += Decimal(elements[4])
        elif elements[0] == "PLB":
            paid -= sum(Decimal(a) for a in elements[4::2])
        elif elements[0] == "SE":
            found[elements[2]] = (bpr, paid)
    return found


def test_base_835_balances() -> None:
    assert set(claim_imbalances(BASE_835).values()) == {Decimal(0)}
    assert set(service_line_imbalances(BASE_835)) == {Decimal(0)}
    assert payments(BASE_835) == {
        "0001": (Decimal("385.00"), Decimal("385.00")),
        "0002": (Decimal("80.00"), Decimal("80.00")),
    }


@pytest.mark.parametrize("name", CASES)
def test_case_is_what_it_says(name: str) -> None:
    case: X12Case = CASES[name]
    report = pyx12_report(case.data)
    if name in CLEAN:
        assert report.ok and not report.messages(), report.messages()
        assert not case.rejected_file and not case.rejected_sets
        return

    assert not report.ok
    assert report.messages(), "pyx12 must report something"
    assert bool(case.rejected_file) != bool(case.rejected_sets), "the file or sets, not both"
    if case.segment is not None and not report.raised:
        assert case.segment in report.segments(), (case.segment, report.reader, report.tree)
    if case.rejected_sets:
        spans = set_spans(case.data)
        assert set(case.rejected_sets) | set(case.loaded_sets) == set(spans)
        error_lines = {line for _, line, _ in report.tree_errors()}
        assert None not in error_lines, "a set's error must not reach the envelope"
        for st02 in case.rejected_sets:
            assert error_lines & set(spans[st02]), f"no error inside set {st02}"
        for st02 in case.loaded_sets:
            assert not error_lines & set(spans[st02]), f"an error inside set {st02}"


def test_raised_cases_name_what_they_say() -> None:
    assert "ISA Interchange Control Version" in pyx12_report(CASES["short_isa"].data).raised
    assert "005010X222A2" in pyx12_report(CASES["unsupported_guide"].data).raised
    for name in ("csv_file", "empty"):
        assert "does not begin with 'ISA'" in pyx12_report(CASES[name].data).raised


def test_unbalanced_claim_is_off_by_its_difference() -> None:
    case = CASES["unbalanced_claim"]
    off = {c: d for c, d in claim_imbalances(case.data).items() if d}
    assert off == {"CLM0003": Decimal(case.difference)}


def test_duplicate_is_byte_identical() -> None:
    case = CASES["duplicate_interchange"]
    assert case.data == CASES[case.duplicate_of].data
    assert not case.loaded_sets and not case.rejected_file


def test_truncated_ends_mid_segment() -> None:
    data = CASES["truncated"].data
    assert not data.endswith(b"~\n") and b"IEA" not in data
    assert data in BASE_835
