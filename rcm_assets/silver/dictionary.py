"""The silver data dictionary, generated from metadata (docs/data_dictionary.md)."""

from rcm_assets.metadata import Metadata
from rcm_assets.quality.rules import rules_markdown

COMMON = [
    ("datasource", "string", "The hospital (or reference source) the row comes from"),
    ("load_id", "string", "The bronze load the row version came from"),
    (
        "is_quarantined",
        "boolean",
        "True when a quarantine rule or a failed cast applies; such rows never reach gold",
    ),
    (
        "quarantine_reasons",
        "list<string>",
        "Names of the quarantine rules the row breaks "
        "(`invalid_<column>`: a value that does not cast)",
    ),
    (
        "quality_flags",
        "list<string>",
        "Names of the logical flags the row raises (kept in gold, reported)",
    ),
]
SCD2 = [
    ("is_current", "boolean", "True for the current version of the key"),
    ("valid_from", "timestamp (UTC)", "When this version became current"),
    ("valid_to", "timestamp (UTC)", "When this version was replaced; empty while current"),
    ("inserted_at", "timestamp (UTC)", "When this version was written"),
    ("modified_at", "timestamp (UTC)", "When this version was last changed (closed)"),
    (
        "row_hash",
        "bigint",
        "Stable hash (xxh3) of the version's attributes: change detection reads key + hash only",
    ),
]
FULL = [
    ("is_current", "boolean", "Always true: the table holds each datasource's latest snapshot"),
    ("loaded_at", "timestamp (UTC)", "When the snapshot was loaded"),
]


def data_dictionary(metadata: Metadata) -> str:
    datasources = sorted({c.datasource for c in metadata.silver_columns if c.datasource})
    lines = [
        "# Silver data dictionary",
        "",
        "Generated from `metadata/silver_tables.csv`, `silver_columns.csv` and "
        "`quality_rules.csv` by `rcm dictionary`; do not edit by hand. Keys have the form "
        "`<source id>-<datasource>` "
        "(e.g. `HOSP1-000001-hos-a`); a row without a source id gets "
        "`MISSING-<load id>-<row>-<datasource>` and is quarantined.",
    ]
    for table in metadata.silver_tables.values():
        lines += [
            "",
            f"## silver/{table.table}",
            "",
            f"{table.description}. Key `{table.key}`; {table.kind.value}; "
            f"from `bronze/{table.source}`.",
            "",
            "| column | type | meaning | source column | references |",
            "|---|---|---|---|---|",
        ]
        for column in metadata.columns_of(table.table):
            sources = [f"`{column.source}`"] + [
                f"{ds}: `{metadata.source_column(table.table, column.column, ds)}`"
                for ds in datasources
                if metadata.source_column(table.table, column.column, ds) != column.source
            ]
            lines.append(
                f"| `{column.column}` | {column.type.sql_type} | {column.description} | "
                f"{'; '.join(sources)} | {column.references or ''} |"
            )
        for name, kind, meaning in COMMON + (SCD2 if table.kind.value == "scd2" else FULL):
            lines.append(f"| `{name}` | {kind} | {meaning} | (added) | |")
        rules = metadata.rules_of(table.table)
        if rules:
            lines += [
                "",
                "Quality rules (`metadata/quality_rules.csv`):",
                "",
                rules_markdown(rules),
            ]
    return "\n".join(lines) + "\n"
