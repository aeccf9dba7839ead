"""Behaviour of the sample source generator and mutator against real SQLite, PostgreSQL and
MariaDB."""

from __future__ import annotations

import csv
import functools
import os
import re
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from rcm_assets.sample_data import (
    CPT_CODES,
    ICD10_CODES,
    SAMPLE_HOSPITALS,
    HospitalProfile,
    TableCount,
    database_uri,
    generate_sources,
    mutate_sources,
    sqlite_path,
)

HOSPITAL_A, HOSPITAL_B = SAMPLE_HOSPITALS
TABLES = ("departments", "providers", "patients", "encounters", "transactions")
PATIENTS_A = [
    "PatientID",
    "FirstName",
    "LastName",
    "MiddleName",
    "SSN",
    "PhoneNumber",
    "Gender",
    "DOB",
    "Address",
    "ModifiedDate",
]
PATIENTS_B = [
    "ID",
    "F_Name",
    "L_Name",
    "M_Name",
    "SSN",
    "PhoneNumber",
    "Gender",
    "DOB",
    "Address",
    "Updated_Date",
]
CLAIMS_HEADER = (
    "ClaimID,TransactionID,PatientID,EncounterID,ProviderID,DeptID,ServiceDate,ClaimDate,PayorID,"
    "ClaimAmount,PaidAmount,ClaimStatus,PayorType,Deductible,Coinsurance,Copay,InsertDate,"
    "ModifiedDate"
)
PG_TARGET = "postgresql://postgres@127.0.0.1:5432/postgres"
LAST_WATERMARK = "2026-01-31 23:59:59"


def read_table(home: Path, profile: HospitalProfile, table: str) -> pl.DataFrame:
    with sqlite3.connect(sqlite_path(home, profile.database)) as conn:
        cur = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
        columns = [d[0] for d in cur.description]
        return pl.DataFrame(cur.fetchall(), schema=columns, orient="row", infer_schema_length=None)


def dump(home: Path) -> dict[tuple[str, str], list[tuple]]:
    out = {}
    for profile in SAMPLE_HOSPITALS:
        with sqlite3.connect(sqlite_path(home, profile.database)) as conn:
            for table in TABLES:
                out[profile.database, table] = conn.execute(
                    f'SELECT * FROM "{table}" ORDER BY rowid'
                ).fetchall()
    return out


def read_claims(home: Path, profile: HospitalProfile) -> pl.DataFrame:
    path = home / "landing" / "claims" / f"{profile.claims_file_prefix}_claim_data.csv"
    return pl.read_csv(path, infer_schema_length=0)


def patient_key(profile: HospitalProfile) -> str:
    return "PatientID" if profile.patient_layout == "a" else "ID"


def watermark(profile: HospitalProfile, table: str) -> str:
    if table == "patients" and profile.patient_layout == "b":
        return "Updated_Date"
    return "ModifiedDate"


def clean_transactions(home: Path, profile: HospitalProfile) -> pl.DataFrame:
    patients = read_table(home, profile, "patients")[patient_key(profile)].drop_nulls()
    trans = read_table(home, profile, "transactions")
    return trans.filter(
        pl.col("PatientID").is_in(patients.implode())
        & pl.col("VisitDate").is_not_null()
        & (pl.col("PaidDate").is_null() | (pl.col("PaidDate") >= pl.col("ServiceDate")))
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rcm_home")
    generate_sources(path, scale=0.1, seed=7)
    return path


# ---------------------------------------------------------------------------------------------
# generate_sources


def test_same_seed_is_identical_and_other_seed_differs(home: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    generate_sources(again, scale=0.1, seed=7)
    generate_sources(other, scale=0.1, seed=8)
    assert dump(again) == dump(home)
    for profile in SAMPLE_HOSPITALS:
        db = sqlite_path(home, profile.database)
        assert sqlite_path(again, profile.database).read_bytes() == db.read_bytes()
        claims = f"landing/claims/{profile.claims_file_prefix}_claim_data.csv"
        assert (again / claims).read_bytes() == (home / claims).read_bytes()
    other_dump = dump(other)
    for key in [(HOSPITAL_A.database, t) for t in ("patients", "encounters", "transactions")]:
        assert other_dump[key] != dump(home)[key]


def test_row_counts_at_small_scale(home: Path, tmp_path: Path) -> None:
    counts = generate_sources(tmp_path, scale=0.1, seed=7)
    by_key = {(c.database, c.table): c.rows for c in counts}
    assert len(counts) == 2 * len(TABLES)
    for profile in SAMPLE_HOSPITALS:
        assert by_key[profile.database, "patients"] == 500
        assert by_key[profile.database, "encounters"] == 1000
        assert by_key[profile.database, "transactions"] == 1000
        assert by_key[profile.database, "providers"] == 50
        assert 15 <= by_key[profile.database, "departments"] <= 20
        for table in TABLES:
            assert read_table(home, profile, table).height == by_key[profile.database, table]
        assert read_claims(home, profile).height == 1000


def test_tiny_scale_still_has_rows(tmp_path: Path) -> None:
    counts = generate_sources(tmp_path, scale=0.0001, hospitals=[HOSPITAL_A])
    assert all(c.rows >= 5 for c in counts)


def test_patient_layouts_and_declared_types(home: Path) -> None:
    assert read_table(home, HOSPITAL_A, "patients").columns == PATIENTS_A
    assert read_table(home, HOSPITAL_B, "patients").columns == PATIENTS_B
    with sqlite3.connect(sqlite_path(home, HOSPITAL_A.database)) as conn:
        types = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(transactions)")}
    assert types["Amount"] == "DECIMAL(12,2)"
    assert types["VisitDate"] == "DATE"
    assert types["ModifiedDate"] == "DATETIME"
    assert types["TransactionID"] == "VARCHAR"


def test_value_formats(home: Path) -> None:
    patients = read_table(home, HOSPITAL_A, "patients").drop_nulls("PatientID")
    assert patients["PatientID"].str.contains(r"^HOSP1-\d{6}$").all()
    assert patients["SSN"].str.contains(r"^\d{3}-\d{2}-\d{4}$").all()
    assert patients["PhoneNumber"].str.contains(r"^\(\d{3}\) \d{3}-\d{4}$").all()
    assert set(patients["Gender"]) == {"M", "F"}
    dob = patients["DOB"].drop_nulls()
    assert dob.min() >= "1930-01-01" and dob.max() <= "2020-12-31"
    providers = read_table(home, HOSPITAL_A, "providers")
    assert providers["NPI"].str.contains(r"^1\d{9}$").all()
    assert providers["NPI"].n_unique() == providers.height
    assert all(luhn_ok("80840" + npi) for npi in providers["NPI"])
    trans = read_table(home, HOSPITAL_A, "transactions")
    assert trans["TransactionID"].str.contains(r"^TRANS\d{8}$").all()
    assert trans["ClaimID"].str.contains(r"^CLAIM\d{8}$").all()
    assert set(trans["PayorID"]) <= {f"PAYER{i:03d}" for i in range(1, 11)}
    modified = trans["ModifiedDate"]
    assert modified.str.contains(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").all()
    assert modified.n_unique() > 0.9 * trans.height


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_insurance_ids_follow_line_of_business(home: Path) -> None:
    trans = read_table(home, HOSPITAL_B, "transactions")
    medicare = trans.filter(pl.col("LineOfBusiness") == "Medicare")
    medicaid = trans.filter(pl.col("LineOfBusiness") == "Medicaid")
    others = trans.filter(~pl.col("LineOfBusiness").is_in(["Medicare", "Medicaid"]))
    assert medicare.height and medicaid.height and others.height
    assert medicare["MedicareID"].null_count() == 0
    assert medicare["MedicaidID"].null_count() == medicare.height
    assert (
        medicare["MedicareID"]
        .str.contains(r"^[1-9][A-Z][0-9A-Z]\d[A-Z][0-9A-Z]\d[A-Z]{2}\d{2}$")
        .all()
    )
    assert medicaid["MedicaidID"].null_count() == 0
    assert medicaid["MedicareID"].null_count() == medicaid.height
    assert others["MedicareID"].null_count() == others.height
    assert others["MedicaidID"].null_count() == others.height


def test_references_are_consistent(home: Path) -> None:
    for profile in SAMPLE_HOSPITALS:
        departments = read_table(home, profile, "departments")["DeptID"].implode()
        providers = read_table(home, profile, "providers")
        patients = read_table(home, profile, "patients")[patient_key(profile)].drop_nulls()
        encounters = read_table(home, profile, "encounters")
        assert providers["DeptID"].is_in(departments).all()
        clean_enc = encounters.drop_nulls("PatientID")
        assert clean_enc["PatientID"].is_in(patients.implode()).all()
        assert clean_enc["ProviderID"].is_in(providers["ProviderID"].implode()).all()
        assert clean_enc["DepartmentID"].is_in(departments).all()

        trans = clean_transactions(home, profile)
        assert trans.height > 0.9 * encounters.height
        assert trans["EncounterID"].is_in(encounters["EncounterID"].implode()).all()
        assert trans["ProviderID"].is_in(providers["ProviderID"].implode()).all()
        assert trans["DeptID"].is_in(departments).all()
        provider_dept = dict(zip(providers["ProviderID"], providers["DeptID"], strict=True))
        assert all(
            provider_dept[p] == d for p, d in zip(trans["ProviderID"], trans["DeptID"], strict=True)
        )
        claims = read_claims(home, profile)
        assert trans["ClaimID"].is_in(claims["ClaimID"].implode()).all()
        codes = {code for _, code, _, status in CPT_CODES if status == "Active"}
        assert set(trans["ProcedureCode"]) <= codes
        assert set(encounters["ProcedureCode"]) <= codes
        assert set(trans["ICDCode"]) <= {code for code, _ in ICD10_CODES}


def test_dates_are_plausible(home: Path) -> None:
    for profile in SAMPLE_HOSPITALS:
        trans = clean_transactions(home, profile)
        assert (trans["VisitDate"] == trans["ServiceDate"]).all()
        assert trans["ServiceDate"].min() >= "2024-01-01"
        assert trans["ServiceDate"].max() <= "2025-12-31"
        assert (trans["InsertDate"] >= trans["ServiceDate"]).all()
        assert (trans["ModifiedDate"] >= trans["InsertDate"]).all()
        assert trans["ModifiedDate"].max() <= LAST_WATERMARK
        assert (trans["PaidAmount"] <= trans["Amount"]).all()

        encounters = read_table(home, profile, "encounters")
        assert encounters["EncounterDate"].min() >= "2024-01-01"
        assert (encounters["InsertedDate"] >= encounters["EncounterDate"]).all()
        assert (encounters["ModifiedDate"] >= encounters["InsertedDate"]).all()
        assert encounters["ModifiedDate"].max() <= LAST_WATERMARK
        enc_dates = dict(zip(encounters["EncounterID"], encounters["EncounterDate"], strict=True))
        assert all(
            enc_dates[e] == d
            for e, d in zip(trans["EncounterID"], trans["ServiceDate"], strict=True)
        )

        patients = read_table(home, profile, "patients")
        assert patients[watermark(profile, "patients")].null_count() == 0
        assert patients[watermark(profile, "patients")].max() <= LAST_WATERMARK


def test_claims_csv_matches_transactions(home: Path) -> None:
    path = home / "landing" / "claims" / "hospital1_claim_data.csv"
    assert path.read_text().splitlines()[0] == CLAIMS_HEADER
    claims = read_claims(home, HOSPITAL_A).with_columns(
        pl.col("ClaimAmount", "PaidAmount").cast(pl.Float64)
    )
    trans = read_table(home, HOSPITAL_A, "transactions")
    joined = claims.join(trans, on="ClaimID", suffix="_t")
    assert joined.height == trans.height
    assert (joined["TransactionID"] == joined["TransactionID_t"]).all()
    assert (joined["ClaimAmount"] == joined["Amount"]).all()
    assert (joined["ClaimDate"] >= joined["ServiceDate"]).all()
    lag = joined["ClaimDate"].str.to_date() - joined["ServiceDate"].str.to_date()
    assert lag.dt.total_days().max() <= 30
    assert set(claims["ClaimStatus"]) == {"Paid", "Denied", "Pending", "Partially Paid", "Rejected"}
    assert set(claims["PayorType"]) == {"Medicare", "Medicaid", "Commercial", "Self-Pay"}
    paid = claims.filter(pl.col("ClaimStatus").is_in(["Paid", "Partially Paid"]))
    unpaid = claims.filter(~pl.col("ClaimStatus").is_in(["Paid", "Partially Paid"]))
    assert (paid["PaidAmount"] > 0).all()
    assert (unpaid["PaidAmount"] == 0).all()
    clean = joined.filter(
        pl.col("PaidDate").is_null() | (pl.col("PaidDate") >= pl.col("ServiceDate"))
    )
    settled = clean.filter(pl.col("ClaimStatus").is_in(["Paid", "Partially Paid"]))
    assert settled["PaidDate"].null_count() == 0
    paid_lag = settled["PaidDate"].str.to_date() - settled["ClaimDate"].str.to_date()
    assert paid_lag.dt.total_days().min() >= 5 and paid_lag.dt.total_days().max() <= 90
    open_claims = clean.filter(~pl.col("ClaimStatus").is_in(["Paid", "Partially Paid"]))
    assert open_claims["PaidDate"].null_count() == open_claims.height


def test_cpt_csv(home: Path) -> None:
    path = home / "landing" / "cptcodes" / "cptcodes.csv"
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "Procedure Code Category",
        "CPT Codes",
        "Procedure Code Descriptions",
        "Code Status",
    ]
    assert 100 <= len(rows) - 1 <= 150
    assert len(rows) - 1 == len(CPT_CODES)
    codes = [row[1] for row in rows[1:]]
    assert {"0585T", "0596T", "99213", "71046", "80053"} <= set(codes)
    assert len(set(codes)) == len(codes)
    assert {row[3] for row in rows[1:]} == {"Active", "Deleted"}


def test_reference_lists() -> None:
    codes = dict(ICD10_CODES)
    assert {"E11.9", "I10", "J45.909", "M54.5", "Z00.00"} <= set(codes)
    assert len(codes) == len(ICD10_CODES) >= 140
    assert all(len(entry) == 4 for entry in CPT_CODES)


def defect_counts(home: Path, profile: HospitalProfile) -> dict[str, tuple[int, int]]:
    patients = read_table(home, profile, "patients")
    key = patient_key(profile)
    first = "FirstName" if profile.patient_layout == "a" else "F_Name"
    bad_patients = patients.filter(
        pl.col(key).is_null() | pl.col("DOB").is_null() | pl.col(first).is_in(["NULL", "null"])
    ).height
    encounters = read_table(home, profile, "encounters")
    trans = read_table(home, profile, "transactions")
    claims = read_claims(home, profile)
    return {
        "patients": (bad_patients, patients.height),
        "encounters": (encounters["PatientID"].null_count(), encounters.height),
        "transactions": (trans.height - clean_transactions(home, profile).height, trans.height),
        "claims": (claims["PatientID"].null_count(), claims.height),
    }


def test_defects_follow_defect_rate(tmp_path: Path) -> None:
    generate_sources(tmp_path, scale=0.1, seed=3, defect_rate=0.1)
    for profile in SAMPLE_HOSPITALS:
        for table, (bad, total) in defect_counts(tmp_path, profile).items():
            assert 0.05 < bad / total < 0.15, table
        patients = read_table(tmp_path, profile, "patients")
        first = "FirstName" if profile.patient_layout == "a" else "F_Name"
        assert set(patients[first]) >= {"NULL", "null"}
        assert patients[watermark(profile, "patients")].null_count() == 0
        assert read_table(tmp_path, profile, "transactions")["ModifiedDate"].null_count() == 0


def test_no_defects_at_rate_zero(tmp_path: Path) -> None:
    generate_sources(tmp_path, scale=0.1, seed=3, defect_rate=0)
    for profile in SAMPLE_HOSPITALS:
        assert all(bad == 0 for bad, _ in defect_counts(tmp_path, profile).values())


def test_progress_and_invalid_arguments(tmp_path: Path) -> None:
    lines: list[str] = []
    generate_sources(tmp_path, scale=0.01, hospitals=[HOSPITAL_A], progress=lines.append)
    assert "healthcare-rcm-hospital-a: transactions 100/100" in lines
    with pytest.raises(ValueError, match="PostgreSQL"):
        generate_sources(tmp_path, scale=0.01, target="mssql://sa@localhost/db")
    with pytest.raises(ValueError, match="PostgreSQL"):
        mutate_sources(tmp_path, target="sqlite:///x.db")
    with pytest.raises(ValueError):
        generate_sources(tmp_path, scale=0)
    with pytest.raises(FileNotFoundError):
        mutate_sources(tmp_path / "missing")


def test_paths_and_uris(tmp_path: Path) -> None:
    assert sqlite_path(tmp_path, "db-x") == tmp_path / "sources" / "db-x.db"
    uri = database_uri("postgresql://u:p@h:5433/postgres?sslmode=disable", "hosp-a")
    assert uri == "postgresql://u:p@h:5433/hosp-a?sslmode=disable"
    assert database_uri("postgres://h", "x") == "postgres://h/x"
    with pytest.raises(ValueError):
        database_uri("mssql://h/db", "x")
    assert database_uri("mysql://root@h:3306", "hosp-a") == "mysql://root@h:3306/hosp-a"


@pytest.mark.parametrize("target", ["mysql+pymysql://root:Hunter2@h", "mssql://sa:Hunter2@h"])
def test_a_bad_target_is_one_clear_line(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from rcm_assets.cli import main

    with pytest.raises(ValueError, match="Unsupported source target"):
        generate_sources(tmp_path, target=target)
    monkeypatch.setenv("RCM_HOME", str(tmp_path))
    assert main(["generate", "--target", target]) == 2
    error = capsys.readouterr().err
    assert error.startswith("rcm generate: Unsupported source target") and "Hunter2" not in error
    assert error.count("\n") == 1 and "Traceback" not in error
    if "+" in target:
        assert "use mysql://" in error


def test_an_unreachable_target_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from rcm_assets.cli import main

    monkeypatch.setenv("RCM_HOME", str(tmp_path))
    assert main(["generate", "--scale", "0.01", "--target", "mysql://u:Hunter2@127.0.0.1:1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("rcm generate: cannot use the target mysql://u:***@127.0.0.1:1: ")
    assert error.count("\n") == 1 and "Hunter2" not in error


def test_regenerate_overwrites(tmp_path: Path) -> None:
    generate_sources(tmp_path, scale=0.02, seed=1, hospitals=[HOSPITAL_A])
    generate_sources(tmp_path, scale=0.01, seed=1, hospitals=[HOSPITAL_A])
    assert read_table(tmp_path, HOSPITAL_A, "transactions").height == 100
    assert read_claims(tmp_path, HOSPITAL_A).height == 100


# ---------------------------------------------------------------------------------------------
# mutate_sources


def max_watermarks(home: Path) -> dict[tuple[str, str], str]:
    out = {}
    for profile in SAMPLE_HOSPITALS:
        for table in ("patients", "encounters", "transactions"):
            column = watermark(profile, table)
            out[profile.database, table] = read_table(home, profile, table)[column].max()
    return out


def test_mutate_changes_rows_above_watermark(home: Path, tmp_path: Path) -> None:
    work = tmp_path / "home"
    shutil.copytree(home, work)
    before = {(p.database, t): read_table(work, p, t) for p in SAMPLE_HOSPITALS for t in TABLES}
    marks = max_watermarks(work)
    counts = mutate_sources(work, seed=5, update_share=0.05, insert_share=0.02)
    assert len(counts) == 2 * len(TABLES)
    for count in counts:
        profile = next(p for p in SAMPLE_HOSPITALS if p.database == count.database)
        after = read_table(work, profile, count.table)
        old = before[count.database, count.table]
        assert count.rows == after.height == old.height + count.inserted
        if count.table in ("departments", "providers"):
            continue
        column = watermark(profile, count.table)
        fresh = after.filter(pl.col(column) > marks[count.database, count.table])
        assert count.updated == round(0.05 * old.height)
        assert count.inserted == round(0.02 * old.height)
        assert fresh.height == count.updated + count.inserted
        assert fresh[column].n_unique() == fresh.height
        changed = after.head(old.height).join(old, on=after.columns, how="anti", nulls_equal=True)
        assert changed.height == count.updated
    by_table = {(c.database, c.table): c for c in counts}
    assert by_table[HOSPITAL_A.database, "departments"].inserted == 1
    assert by_table[HOSPITAL_A.database, "providers"] == TableCount(
        HOSPITAL_A.database, "providers", 52, updated=1, inserted=2
    )


def test_mutated_rows_stay_consistent(home: Path, tmp_path: Path) -> None:
    work = tmp_path / "home"
    shutil.copytree(home, work)
    mutate_sources(work, seed=5)
    for profile in SAMPLE_HOSPITALS:
        departments = read_table(work, profile, "departments")["DeptID"].implode()
        providers = read_table(work, profile, "providers")
        assert providers["DeptID"].is_in(departments).all()
        assert providers["NPI"].n_unique() == providers.height
        encounters = read_table(work, profile, "encounters")
        patients = read_table(work, profile, "patients")[patient_key(profile)].drop_nulls()
        with_patient = encounters.drop_nulls("PatientID")
        assert with_patient["PatientID"].is_in(patients.implode()).all()
        assert encounters["ProviderID"].is_in(providers["ProviderID"].implode()).all()
        assert encounters["EncounterID"].n_unique() == encounters.height
        trans = clean_transactions(work, profile)
        assert trans["EncounterID"].is_in(encounters["EncounterID"].implode()).all()
        assert (trans["PaidAmount"] <= trans["Amount"]).all()
        assert trans["TransactionID"].n_unique() == trans.height
        assert trans["ClaimID"].n_unique() == trans.height


def test_mutate_is_deterministic_and_repeatable(home: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(home, first)
    shutil.copytree(home, second)
    assert mutate_sources(first, seed=9) == mutate_sources(second, seed=9)
    assert dump(first) == dump(second)

    marks = max_watermarks(first)
    counts = mutate_sources(first, seed=10)
    after = max_watermarks(first)
    for count in counts:
        if count.table in ("patients", "encounters", "transactions"):
            assert after[count.database, count.table] > marks[count.database, count.table]
            assert count.updated >= 1 and count.inserted >= 1


def test_mutate_tiny_table_updates_at_least_one_row(tmp_path: Path) -> None:
    generate_sources(tmp_path, scale=0.001, hospitals=[HOSPITAL_B])
    counts = mutate_sources(tmp_path, hospitals=[HOSPITAL_B], update_share=0.01, insert_share=0)
    by_table = {c.table: c for c in counts}
    for table in ("patients", "encounters", "transactions"):
        assert by_table[table].updated == 1 and by_table[table].inserted == 0
    assert by_table["departments"].inserted == 0 and by_table["providers"].updated == 1


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def admin_connection_or_skip():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        conn = psycopg2.connect(PG_TARGET, connect_timeout=3)
    except psycopg2.OperationalError:
        if os.environ.get("CI"):
            raise
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    conn.autocommit = True
    return conn


def pg_query(database: str, sql: str, params: tuple = ()) -> tuple[list[tuple], list[str]]:
    import psycopg2

    conn = psycopg2.connect(database_uri(PG_TARGET, database))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall(), [d.name for d in cur.description]
    finally:
        conn.close()


@pytest.mark.postgres
def test_postgres_generate_and_mutate(tmp_path: Path) -> None:
    admin = admin_connection_or_skip()
    hospitals = [
        replace(HOSPITAL_A, database="rcm-test-gen-hospital-a"),
        replace(HOSPITAL_B, database="rcm-test-gen-hospital-b"),
    ]
    db_b = hospitals[1].database
    try:
        counts = generate_sources(
            tmp_path, scale=0.05, seed=7, target=PG_TARGET, hospitals=hospitals
        )
        assert {c.rows for c in counts if c.table == "transactions"} == {500}
        assert pg_query(db_b, "SELECT COUNT(*) FROM dbo.transactions")[0] == [(500,)]
        _, columns = pg_query(db_b, "SELECT * FROM dbo.patients LIMIT 1")
        assert columns == PATIENTS_B
        (amount_type,), _ = pg_query(
            db_b,
            "SELECT data_type FROM information_schema.columns WHERE table_schema = 'dbo' "
            "AND table_name = 'transactions' AND column_name = 'Amount'",
        )
        assert amount_type == ("numeric",)
        [(before,)], _ = pg_query(db_b, 'SELECT MAX("ModifiedDate") FROM dbo.transactions')
        assert (tmp_path / "landing" / "claims" / "hospital2_claim_data.csv").is_file()

        # Same seed, same data whichever backend holds it.
        sqlite_home = tmp_path / "sqlite"
        generate_sources(sqlite_home, scale=0.05, seed=7, hospitals=[HOSPITAL_B])
        rows, _ = pg_query(
            db_b, 'SELECT "TransactionID", "Amount" FROM dbo.transactions ORDER BY 1'
        )
        local = read_table(sqlite_home, HOSPITAL_B, "transactions")
        assert [(t, float(a)) for t, a in rows] == list(
            zip(local["TransactionID"], local["Amount"].cast(pl.Float64), strict=True)
        )

        mutated = mutate_sources(tmp_path, seed=2, target=PG_TARGET, hospitals=hospitals)
        trans = next(c for c in mutated if c.table == "transactions" and c.database == db_b)
        assert (trans.rows, trans.updated, trans.inserted) == (505, 10, 5)
        fresh, _ = pg_query(
            db_b, 'SELECT COUNT(*) FROM dbo.transactions WHERE "ModifiedDate" > %s', (before,)
        )
        assert fresh == [(15,)]
        mutate_sources(tmp_path, seed=3, target=PG_TARGET, hospitals=hospitals)
        rows, _ = pg_query(db_b, "SELECT COUNT(*) FROM dbo.transactions")
        assert rows[0][0] > 505
    finally:
        with admin.cursor() as cur:
            for profile in hospitals:
                cur.execute(f'DROP DATABASE IF EXISTS "{profile.database}" WITH (FORCE)')
        admin.close()


def test_mysql_generate_and_mutate_then_extract_reads_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from rcm_assets.cli import main
    from rcm_assets.resources.emr_sources import SourceDatabase
    from rcm_assets.resources.source_sql import extract_query
    from rcm_assets.sample_data.api_replay import sample_providers
    from rcm_assets_tests.conftest import drop_mysql_databases, mariadb_or_skip

    server = mariadb_or_skip()
    hospitals = [
        replace(HOSPITAL_A, database=f"rcm-test-{os.getpid()}-gen-a"),
        replace(HOSPITAL_B, database=f"rcm-test-{os.getpid()}-gen-b"),
    ]
    db_b = hospitals[1].database
    try:
        counts = generate_sources(tmp_path, scale=0.05, seed=7, target=server, hospitals=hospitals)
        assert {c.rows for c in counts if c.table == "transactions"} == {500}

        # What the lakehouse reads: load_config's `dbo.transactions`, from the URI's database.
        source = SourceDatabase(db_b, "hos-b", database_uri(server, db_b))
        columns = source.columns("dbo", "transactions")
        sql = extract_query("mysql", "dbo", "transactions", columns)
        extracted = pl.concat(source.stream(sql, "transactions"))
        assert extracted.height == 500
        assert source.columns("dbo", "patients") == PATIENTS_B

        # Same seed, same data whichever backend holds it.
        sqlite_home = tmp_path / "sqlite"
        generate_sources(sqlite_home, scale=0.05, seed=7, hospitals=[HOSPITAL_B])
        local = read_table(sqlite_home, HOSPITAL_B, "transactions")
        mine = extracted.sort("TransactionID")
        assert (
            mine["TransactionID"].to_list()
            == local.sort("TransactionID")["TransactionID"].to_list()
        )
        assert mine["Amount"].cast(pl.Float64).to_list() == (
            local.sort("TransactionID")["Amount"].cast(pl.Float64).to_list()
        )

        mutated = mutate_sources(tmp_path, seed=2, target=server, hospitals=hospitals)
        trans = next(c for c in mutated if c.table == "transactions" and c.database == db_b)
        assert (trans.rows, trans.updated, trans.inserted) == (505, 10, 5)
        assert pl.concat(source.stream(sql, "transactions")).height == 505

        # `rcm generate --target mysql://...` prints where the lakehouse finds the databases
        # (here generating the test's databases, not the sample ones, on the shared server).
        monkeypatch.setenv("RCM_HOME", str(tmp_path / "cli"))
        monkeypatch.setattr(
            "rcm_assets.sample_data.generate_sources",
            functools.partial(generate_sources, hospitals=hospitals),
        )
        monkeypatch.setattr(
            "rcm_assets.sample_data.api_replay.sample_providers",
            functools.partial(sample_providers, hospitals=hospitals),
        )
        assert main(["generate", "--scale", "0.01", "--target", server]) == 0
        out = capsys.readouterr().out
        assert f"export RCM_DB_URI_HOSPITAL_A={server}/healthcare-rcm-hospital-a" in out
        assert re.search(rf"{hospitals[0].database} +transactions +100 rows", out)
        assert source.columns("dbo", "departments") == ["DeptID", "Name"]
    finally:
        drop_mysql_databases(server, [profile.database for profile in hospitals])


def test_recent_profile_puts_most_updates_on_the_newest_records() -> None:
    import numpy as np

    from rcm_assets.sample_data.mutate import ChangeProfile, choose

    numbers = np.arange(1, 10_001)
    for profile, low, high in (
        (ChangeProfile.RECENT, 0.85, 0.95),
        (ChangeProfile.UNIFORM, 0.05, 0.2),
    ):
        picked = choose(np.random.default_rng(3), numbers, 1_000, profile)
        assert len(set(picked.tolist())) == 1_000
        newest = (picked > 9_000).mean()
        assert low <= newest <= high, (profile, newest)
        again = choose(np.random.default_rng(3), numbers, 1_000, profile)
        assert again.tolist() == picked.tolist()  # deterministic for a seed
    assert len(choose(np.random.default_rng(1), np.arange(5), 5, ChangeProfile.RECENT)) == 5
