"""Source table layouts and their DDL for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Kind = Literal["text", "date", "datetime", "money", "ratio"]
Column = tuple[str, Kind]
Dialect = Literal["sqlite", "postgres", "mysql"]

_SQL_TYPES: dict[Dialect, dict[Kind, str]] = {
    "sqlite": {
        "text": "VARCHAR",
        "date": "DATE",
        "datetime": "DATETIME",
        "money": "DECIMAL(12,2)",
        "ratio": "NUMERIC",
    },
    "postgres": {
        "text": "VARCHAR",
        "date": "DATE",
        "datetime": "TIMESTAMP",
        "money": "NUMERIC(12,2)",
        "ratio": "NUMERIC(10,4)",
    },
    # Sessions run with sql_mode ANSI_QUOTES, so the double-quoted identifiers work there too.
    "mysql": {
        "text": "VARCHAR(255)",
        "date": "DATE",
        "datetime": "DATETIME",
        "money": "DECIMAL(12,2)",
        "ratio": "DECIMAL(10,4)",
    },
}

PATIENT_COLUMNS_A: tuple[str, ...] = (
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
)
PATIENT_COLUMNS_B: tuple[str, ...] = (
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
)
_PATIENT_KINDS: tuple[Kind, ...] = (
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "date",
    "text",
    "datetime",
)

PROVIDERS: tuple[Column, ...] = (
    ("ProviderID", "text"),
    ("FirstName", "text"),
    ("LastName", "text"),
    ("Specialization", "text"),
    ("DeptID", "text"),
    ("NPI", "text"),
)

DEPARTMENTS: tuple[Column, ...] = (("DeptID", "text"), ("Name", "text"))

ENCOUNTERS: tuple[Column, ...] = (
    ("EncounterID", "text"),
    ("PatientID", "text"),
    ("EncounterDate", "date"),
    ("EncounterType", "text"),
    ("ProviderID", "text"),
    ("DepartmentID", "text"),
    ("ProcedureCode", "text"),
    ("InsertedDate", "datetime"),
    ("ModifiedDate", "datetime"),
)

TRANSACTIONS: tuple[Column, ...] = (
    ("TransactionID", "text"),
    ("EncounterID", "text"),
    ("PatientID", "text"),
    ("ProviderID", "text"),
    ("DeptID", "text"),
    ("VisitDate", "date"),
    ("ServiceDate", "date"),
    ("PaidDate", "date"),
    ("VisitType", "text"),
    ("Amount", "money"),
    ("AmountType", "text"),
    ("PaidAmount", "money"),
    ("ClaimID", "text"),
    ("PayorID", "text"),
    ("ProcedureCode", "text"),
    ("ICDCode", "text"),
    ("LineOfBusiness", "text"),
    ("MedicaidID", "text"),
    ("MedicareID", "text"),
    ("InsertDate", "datetime"),
    ("ModifiedDate", "datetime"),
)

CLAIM_CSV_COLUMNS: tuple[str, ...] = (
    "ClaimID",
    "TransactionID",
    "PatientID",
    "EncounterID",
    "ProviderID",
    "DeptID",
    "ServiceDate",
    "ClaimDate",
    "PayorID",
    "ClaimAmount",
    "PaidAmount",
    "ClaimStatus",
    "PayorType",
    "Deductible",
    "Coinsurance",
    "Copay",
    "InsertDate",
    "ModifiedDate",
)

CPT_CSV_COLUMNS: tuple[str, ...] = (
    "Procedure Code Category",
    "CPT Codes",
    "Procedure Code Descriptions",
    "Code Status",
)


def patient_columns(layout: Literal["a", "b"]) -> tuple[Column, ...]:
    names = PATIENT_COLUMNS_A if layout == "a" else PATIENT_COLUMNS_B
    return tuple(zip(names, _PATIENT_KINDS, strict=True))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(dialect: Dialect, qualified_name: str, columns: Sequence[Column]) -> str:
    types = _SQL_TYPES[dialect]
    body = ", ".join(f"{quote_ident(name)} {types[kind]}" for name, kind in columns)
    return f"CREATE TABLE {qualified_name} ({body})"
