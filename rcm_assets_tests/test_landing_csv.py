"""bronze/landing_csv.py on the bad-input corpus: each record lands or is rejected, with why."""

import re

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rcm_assets.bronze.landing_csv import (
    FileRejected,
    parse_by_record,
    parse_in_bulk,
    parse_landing_csv,
)
from rcm_assets.metadata import load_metadata
from rcm_assets_tests.conftest import Project
from rcm_assets_tests.landing_corpus import CASES, CLAIM_COLUMNS, Case, claim


@pytest.mark.parametrize("name", CASES)
def test_corpus_case(project: Project, name: str) -> None:
    case: Case = CASES[name]
    claims = load_metadata().landing_tables["claims"]
    if case.rejected_file:
        with pytest.raises(FileRejected, match=re.escape(case.rejected_file)):
            parse_landing_csv(case.data, claims)
        return

    parsed = parse_landing_csv(case.data, claims)

    assert parsed.records == case.records
    assert parsed.rows.collect().height == parsed.landed == case.landed
    assert parsed.landed + parsed.rejected.height == parsed.records
    reasons = dict(zip(parsed.rejected["line_number"], parsed.rejected["reason"], strict=True))
    assert sorted(reasons) == sorted(case.rejected or {})
    for line, fragment in (case.rejected or {}).items():
        assert fragment in reasons[line]
    assert parsed.rows.collect_schema().names() == [*claims.columns, "line_number"]


def test_values_stay_text_and_empty_fields_are_null(project: Project) -> None:
    cpt = load_metadata().landing_tables["cpt_codes"]
    data = (
        b"Procedure Code Category, CPT Codes ,Procedure Code Descriptions,Code Status\n"
        b'Category III,0585T,"Injection, ""special""",Active\n'
        b"Medicine,90471,,Active\n"
    )

    parsed = parse_landing_csv(data, cpt)

    assert parsed.rows.collect().to_dicts() == [
        {
            "procedure_code_category": "Category III",
            "cpt_codes": "0585T",
            "procedure_code_descriptions": 'Injection, "special"',
            "code_status": "Active",
            "line_number": 2,
        },
        {
            "procedure_code_category": "Medicine",
            "cpt_codes": "90471",
            "procedure_code_descriptions": None,
            "code_status": "Active",
            "line_number": 3,
        },
    ]


def test_raw_text_of_a_rejected_record_is_kept_byte_for_byte(project: Project) -> None:
    parsed = parse_landing_csv(CASES["non_utf8"].data, load_metadata().landing_tables["claims"])
    assert "M\\xe9dicare" in parsed.rejected["raw_text"][0]


def _same_outcome(data: bytes, table_name: str) -> bool:
    """Whether the bulk path took the file; if it did, it must equal the record parser."""
    table = load_metadata().landing_tables[table_name]
    try:
        by_record = parse_by_record(data, table)
    except FileRejected as rejection:
        try:
            declined = parse_in_bulk(data, table) is None
        except FileRejected as bulk_rejection:
            assert str(bulk_rejection) == str(rejection)
            return True
        assert declined, "the bulk path accepted a file the record parser rejects"
        return False
    bulk = parse_in_bulk(data, table)
    if bulk is None:
        return False
    assert bulk.records == by_record.records
    assert bulk.landed == by_record.landed
    expected = by_record.rows.collect()
    assert_frame_equal(bulk.rows.collect(), expected)
    streamed = list(bulk.batches())  # as bronze takes them; an empty file gives no batch
    assert_frame_equal(pl.concat([expected.clear(), *streamed]), expected)
    assert_frame_equal(bulk.rejected, by_record.rejected)
    return True


@pytest.mark.parametrize("name", CASES)
def test_bulk_path_gives_the_record_parsers_outcome_or_declines(
    project: Project, name: str
) -> None:
    _same_outcome(CASES[name].data, "claims")


def test_clean_files_take_the_bulk_path(project: Project) -> None:
    lines = [claim(n) for n in range(1, 2001)] + [claim(7, status="Denied")]
    clean = (CLAIM_COLUMNS + "\n" + "\n".join(lines) + "\n").encode()
    crlf = clean.replace(b"\n", b"\r\n")
    no_final_newline = clean.rstrip(b"\n")
    empty_fields = clean.replace(b",0.00,20.00,", b",,20.00,")
    for data in (clean, crlf, no_final_newline, empty_fields):
        assert _same_outcome(data, "claims")
    parsed = parse_in_bulk(clean, load_metadata().landing_tables["claims"])
    assert parsed is not None and parsed.landed == 2000
    assert parsed.rejected.to_dicts() == [
        {
            "line_number": 2002,
            "raw_text": claim(7, status="Denied"),
            "reason": "duplicate ClaimID 'CLAIM90000007' (first on line 8)",
        }
    ]


def test_the_sample_files_parse_alike_and_claims_take_the_bulk_path(sampled: Project) -> None:
    """Claims files (the large ones) are clean; the CPT list quotes its descriptions, so it is
    read record by record, with the same result either way."""
    claims = sorted((sampled.home / "landing" / "claims").glob("*.csv"))
    assert claims
    for path in claims:
        assert _same_outcome(path.read_bytes(), "claims"), path
    for path in (sampled.home / "landing" / "cptcodes").glob("*.csv"):
        assert not _same_outcome(path.read_bytes(), "cpt_codes")
