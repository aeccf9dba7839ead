"""bronze/landing_csv.py on the bad-input corpus: each record lands or is rejected, with why."""

import pytest

from rcm_assets.bronze.landing_csv import FileRejected, parse_landing_csv
from rcm_assets.metadata import load_metadata
from rcm_assets_tests.conftest import Project
from rcm_assets_tests.landing_corpus import CASES, Case


@pytest.mark.parametrize("name", CASES)
def test_corpus_case(project: Project, name: str) -> None:
    case: Case = CASES[name]
    claims = load_metadata().landing_tables["claims"]
    if case.rejected_file:
        with pytest.raises(
            FileRejected, match=case.rejected_file.replace("(", r"\(").replace(")", r"\)")
        ):
            parse_landing_csv(case.data, claims)
        return

    parsed = parse_landing_csv(case.data, claims)

    assert parsed.records == case.records
    assert parsed.rows.height == case.landed
    assert parsed.rows.height + parsed.rejected.height == parsed.records
    reasons = dict(zip(parsed.rejected["line_number"], parsed.rejected["reason"], strict=True))
    assert sorted(reasons) == sorted(case.rejected or {})
    for line, fragment in (case.rejected or {}).items():
        assert fragment in reasons[line]
    assert list(parsed.rows.columns) == [*claims.columns, "line_number"]


def test_values_stay_text_and_empty_fields_are_null(project: Project) -> None:
    cpt = load_metadata().landing_tables["cpt_codes"]
    data = (
        b"Procedure Code Category, CPT Codes ,Procedure Code Descriptions,Code Status\n"
        b'Category III,0585T,"Injection, ""special""",Active\n'
        b"Medicine,90471,,Active\n"
    )

    parsed = parse_landing_csv(data, cpt)

    assert parsed.rows.to_dicts() == [
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
