"""silver/cdm.py on hand-made bronze frames: mapping, keys, casts, quarantine, flags."""

from datetime import date
from decimal import Decimal

import polars as pl

from rcm_assets.metadata import load_metadata
from rcm_assets.silver.cdm import silver_batch
from rcm_assets_tests.conftest import Project


def _patients_b() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "ID": ["HOSP2-000001", None, "HOSP2-000003", "HOSP2-000004"],
            "F_Name": ["Ann", "Bob", "NuLL ", "Dee"],
            "L_Name": ["A", "B", "C", "D"],
            "M_Name": [None, "", None, None],
            "SSN": ["1", "2", "3", "4"],
            "PhoneNumber": ["p", "p", "p", "p"],
            "Gender": ["F", "M", "F", "F"],
            "DOB": ["1980-02-01", "1970-01-01", "not a date", None],
            "Address": ["a", "b", "c", "d"],
            "Updated_Date": ["2025-01-01 10:00:00"] * 4,
            "datasource": ["hos-b"] * 4,
            "load_id": ["L1"] * 4,
        }
    )


def test_hospital_b_columns_map_to_the_common_model(project: Project) -> None:
    metadata = load_metadata()
    table = metadata.silver_tables["patients"]

    batch = silver_batch(_patients_b(), table, metadata, "hos-b").collect()

    assert batch["patient_key"][0] == "HOSP2-000001-hos-b"
    assert batch["src_patient_id"][0] == "HOSP2-000001"
    assert batch["first_name"][0] == "Ann"
    assert batch["date_of_birth"][0] == date(1980, 2, 1)
    assert batch["middle_name"][1] is None  # empty text is NULL
    reasons = batch["quarantine_reasons"].to_list()
    assert reasons[0] == []
    assert reasons[1] == ["patient_id_missing"]
    assert reasons[2] == [
        "invalid_date_of_birth",
        "date_of_birth_missing",
        "first_name_is_text_null",
    ]
    assert reasons[3] == ["date_of_birth_missing"]
    assert batch["is_quarantined"].to_list() == [False, True, True, True]
    assert batch["patient_key"][1].startswith("MISSING-L1-")  # kept, never merged with another


def test_amounts_are_decimals_codes_stay_text_and_flags_do_not_quarantine(project: Project) -> None:
    metadata = load_metadata()
    table = metadata.silver_tables["transactions"]
    columns = {c.source for c in metadata.silver_columns if c.table == "transactions"}
    row = dict.fromkeys(columns, "x")
    row |= {
        "TransactionID": "T1",
        "EncounterID": "E1",
        "PatientID": "P1",
        "ProviderID": "PR1",
        "DeptID": "D1",
        "ClaimID": "C1",
        "VisitDate": "2025-03-01",
        "ServiceDate": "2025-03-01",
        "PaidDate": "2025-02-01",
        "Amount": "100.50",
        "PaidAmount": "120",
        "ProcedureCode": "0585T",
        "InsertDate": "2025-03-01 00:00:00",
        "ModifiedDate": "2025-03-02 00:00:00",
    }
    bronze = pl.LazyFrame([row | {"datasource": "hos-a", "load_id": "L1"}])

    batch = silver_batch(bronze, table, metadata, "hos-a").collect()

    assert batch["amount"][0] == Decimal("100.50")
    assert batch["procedure_code"][0] == "0585T"
    assert batch["encounter_key"][0] == "E1-hos-a"
    assert batch["claim_key"][0] == "C1-hos-a"
    assert batch["quality_flags"][0].to_list() == ["paid_before_service", "paid_above_charged"]
    assert batch["is_quarantined"][0] is False


def test_an_unparseable_amount_is_a_reason_not_a_silent_null(project: Project) -> None:
    metadata = load_metadata()
    table = metadata.silver_tables["claims"]
    row = dict.fromkeys(metadata.landing_tables["claims"].columns, "1")
    row |= {"ClaimAmount": "12,50", "ServiceDate": "2025-01-01", "ClaimDate": "2025-01-02"}
    bronze = pl.LazyFrame([row | {"datasource": "hos-a", "load_id": "L1"}])

    batch = silver_batch(bronze, table, metadata, "hos-a").collect()

    assert batch["claim_amount"][0] is None
    assert "invalid_claim_amount" in batch["quarantine_reasons"][0].to_list()
    assert batch["is_quarantined"][0] is True


def test_committed_data_dictionary_matches_the_metadata(project: Project) -> None:
    from rcm_assets.settings import REPO_ROOT
    from rcm_assets.silver.dictionary import data_dictionary

    committed = (REPO_ROOT / "docs" / "data_dictionary.md").read_text()
    assert committed == data_dictionary(load_metadata()), "run `rcm dictionary` and commit"
    assert "| `first_name` | string | First name | `FirstName`; hos-b: `F_Name` |" in committed
