"""pandera contracts of the silver tables, built from metadata/silver_columns.csv.

The contract checks the shape silver promises to gold: every column present with its type, the
key never NULL, the quality columns there. Row-level problems are not contract failures: they
are quarantined (see cdm.py), so the contract failing means a bug or a metadata mistake.
"""

import pandera.polars as pa
import polars as pl
from dagster import Failure

from rcm_assets.metadata import ColumnType, Metadata, SilverTable
from rcm_assets.silver.cdm import DECIMAL

DTYPES = {
    ColumnType.STRING: pl.String,
    ColumnType.KEY: pl.String,
    ColumnType.DATE: pl.Date,
    ColumnType.DATETIME: pl.Datetime("us"),
    ColumnType.DECIMAL: DECIMAL,
    ColumnType.INTEGER: pl.Int64,
}


def contract(table: SilverTable, metadata: Metadata) -> pa.DataFrameSchema:
    columns = {
        c.column: pa.Column(DTYPES[c.type], nullable=c.column != table.key)
        for c in metadata.columns_of(table.table)
    }
    columns |= {
        "datasource": pa.Column(pl.String, nullable=False),
        "load_id": pa.Column(pl.String, nullable=False),
        "is_quarantined": pa.Column(pl.Boolean, nullable=False),
        "quarantine_reasons": pa.Column(pl.List(pl.String)),
        "quality_flags": pa.Column(pl.List(pl.String)),
    }
    return pa.DataFrameSchema(columns, name=f"silver.{table.table}", strict=True)


def validate_contract(batch: pl.DataFrame, table: SilverTable, metadata: Metadata) -> pl.DataFrame:
    try:
        return contract(table, metadata).validate(batch, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.head(10).to_dicts()
        raise Failure(
            description=f"silver/{table.table} breaks its contract: {cases}", allow_retries=False
        ) from None
