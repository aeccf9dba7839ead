"""resources/source_sql.py: metadata reaches SQL only as quoted identifiers and escaped literals."""

import sqlite3

import pytest

from rcm_assets.resources.source_sql import columns_query, extract_query, watermark_audit_query

HOSTILE = "x'; DROP TABLE patients; --"


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            "sqlite",
            """SELECT '' AS "ID", 1 AS __rcm_sentinel UNION ALL"""
            ' SELECT CAST("ID" AS TEXT) AS "ID", 0 FROM "patients"',
        ),
        ("postgres", 'SELECT CAST("ID" AS TEXT) AS "ID" FROM "dbo"."patients"'),
        ("tsql", "SELECT CAST([ID] AS VARCHAR(MAX)) AS [ID] FROM [dbo].[patients]"),
        # No schemas inside a MySQL database: `dbo` would name another database.
        ("mysql", "SELECT CAST(`ID` AS CHAR) AS `ID` FROM `patients`"),
    ],
)
def test_full_extract_quotes_identifiers_per_dialect(dialect: str, expected: str) -> None:
    assert extract_query(dialect, "dbo", "patients", ["ID"]) == expected


def test_incremental_extract_escapes_the_watermark_literal() -> None:
    sql = extract_query("postgres", "dbo", "patients", ["ID"], "Updated_Date", HOSTILE)
    assert sql.endswith(""" WHERE "Updated_Date" >= 'x''; DROP TABLE patients; --'""")


def test_hostile_values_stay_data_on_a_real_sqlite(tmp_path) -> None:
    connection = sqlite3.connect(tmp_path / "s.db")
    connection.execute('CREATE TABLE "pa""tients" ("I""D" TEXT, "When" TEXT)')
    connection.execute("""INSERT INTO "pa""tients" VALUES ('1', 'x'), ('2', 'z')""")
    listing = connection.execute(columns_query("sqlite", "dbo", 'pa"tients')).fetchall()
    assert listing == [('I"D',), ("When",)]
    rows = connection.execute(
        extract_query("sqlite", "dbo", 'pa"tients', ['I"D', "When"], "When", HOSTILE)
    ).fetchall()
    assert rows == [("", "", 1), ("2", "z", 0)]  # the sentinel row, then the data
    assert connection.execute("""SELECT COUNT(*) FROM "pa""tients\"""").fetchone() == (2,)


def test_mysql_columns_are_looked_up_in_the_uri_database_only() -> None:
    assert columns_query("mysql", "dbo", "patients") == (
        "SELECT column_name AS name FROM information_schema.columns WHERE table_name = "
        "'patients' AND table_schema = DATABASE() ORDER BY ordinal_position"
    )
    assert "table_schema = 'dbo'" in columns_query("postgres", "dbo", "patients")
    assert "table_schema = 'dbo'" in columns_query("tsql", "dbo", "patients")


def test_mysql_watermark_audit_reads_the_uri_database_table() -> None:
    sql = watermark_audit_query("mysql", "dbo", "transactions", "ModifiedDate", "TransactionID")
    assert sql.endswith(" FROM `transactions`") and "`dbo`" not in sql
