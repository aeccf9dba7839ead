"""Reference API replies and code files → bronze frames. Pure Polars: frames in, frames out.

API records arrive as raw JSON text (one row per record) and are read with JSON paths, which
is what makes the parsing permissive: a field that is missing, null or of another JSON type
than expected becomes text or NULL instead of failing the extract (`number` comes back as a
string or an integer; `basic` holds a person's name for NPI-1 and an organization for NPI-2).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

NPI_LIST_SEARCH = "npi_list"
WHO_API = "who_icd_api"
CMS_ORDER_FILE = "cms_icd10cm_order_file"

# The text of a JSON path, NULL when absent: `number` becomes "1234567893" whether the registry
# sent a string or an integer.
_LOCATION = "$.addresses[?(@.address_purpose=='LOCATION')]"
_PRIMARY_TAXONOMY = "$.taxonomies[?(@.primary==true)]"
NPPES_FIELDS: dict[str, tuple[str, ...]] = {
    "npi": ("$.number",),
    "enumeration_type": ("$.enumeration_type",),
    "status": ("$.basic.status",),
    "first_name": ("$.basic.first_name",),
    "last_name": ("$.basic.last_name",),
    "middle_name": ("$.basic.middle_name",),
    "name_prefix": ("$.basic.name_prefix",),
    "credential": ("$.basic.credential",),
    "organization_name": ("$.basic.organization_name",),
    "authorized_official_first_name": ("$.basic.authorized_official_first_name",),
    "authorized_official_last_name": ("$.basic.authorized_official_last_name",),
    "enumeration_date": ("$.basic.enumeration_date",),
    "last_updated": ("$.basic.last_updated",),
    # The registry flags one taxonomy as primary; a record without the flag keeps its first.
    "primary_taxonomy_code": (f"{_PRIMARY_TAXONOMY}.code", "$.taxonomies[0].code"),
    "primary_taxonomy_description": (f"{_PRIMARY_TAXONOMY}.desc", "$.taxonomies[0].desc"),
    "primary_taxonomy_state": (f"{_PRIMARY_TAXONOMY}.state", "$.taxonomies[0].state"),
    "primary_taxonomy_license": (f"{_PRIMARY_TAXONOMY}.license", "$.taxonomies[0].license"),
    "taxonomies_json": ("$.taxonomies",),
    # The practice location; a record that labels no address LOCATION keeps its first.
    "address_purpose": (f"{_LOCATION}.address_purpose", "$.addresses[0].address_purpose"),
    "address_1": (f"{_LOCATION}.address_1", "$.addresses[0].address_1"),
    "address_2": (f"{_LOCATION}.address_2", "$.addresses[0].address_2"),
    "city": (f"{_LOCATION}.city", "$.addresses[0].city"),
    "state": (f"{_LOCATION}.state", "$.addresses[0].state"),
    "postal_code": (f"{_LOCATION}.postal_code", "$.addresses[0].postal_code"),
    "country_code": (f"{_LOCATION}.country_code", "$.addresses[0].country_code"),
    "telephone_number": (f"{_LOCATION}.telephone_number", "$.addresses[0].telephone_number"),
}
NPI_COLUMNS = (
    "npi",
    "lookup_status",  # found | not_found | invalid_npi (not sent: the check digit is wrong)
    "npi_check_digit_valid",
    *[name for name in NPPES_FIELDS if name != "npi"],
    "emr_datasources",  # the EMR datasources whose providers carry this NPI
    "searches",  # npi_list and/or the nppes_queries.csv names that found the record
)
ICD_COLUMNS = (
    "code",
    "title",
    "short_title",
    "category_code",
    "block_code",
    "chapter_code",
    "release",
    "source_system",  # who_icd_api | cms_icd10cm_order_file
    "source_uri",  # the WHO entity URI, or the landing file
)
LINEAGE_COLUMNS = ("load_id", "ingested_at", "extract_date")


def npi_check_digit_valid(npi: pl.Expr) -> pl.Expr:
    """True for 10 digits whose last is the Luhn check digit over `80840` + the first nine.

    `80840` (the health-card issuer prefix) always adds 24 to the Luhn sum, so the sum is 24
    plus the NPI's own digits with every second one from the check digit's left doubled.
    """
    digits = [npi.str.slice(i, 1).cast(pl.Int32, strict=False) for i in range(10)]
    doubled = [pl.when(d * 2 > 9).then(d * 2 - 9).otherwise(d * 2) for d in digits]
    total = pl.sum_horizontal(24, *[doubled[i] if i % 2 == 0 else digits[i] for i in range(10)])
    return pl.when(npi.str.contains(r"^[0-9]{10}$")).then(total % 10 == 0).otherwise(False)


def _path(raw: pl.Expr, paths: tuple[str, ...]) -> pl.Expr:
    return pl.coalesce([raw.str.json_path_match(path) for path in paths])


def requested_npis(providers: pl.LazyFrame) -> pl.LazyFrame:
    """The distinct NPIs of EMR providers (columns `datasource`, `npi`), with their validity."""
    npi = pl.col("npi").cast(pl.String).str.strip_chars()
    return (
        providers.select(pl.col("datasource").cast(pl.String), npi.alias("npi"))
        .filter(pl.col("npi").is_not_null() & (pl.col("npi") != ""))
        .group_by("npi")
        .agg(pl.col("datasource").unique().sort().str.join(",").alias("emr_datasources"))
        .with_columns(npi_check_digit_valid(pl.col("npi")).alias("npi_check_digit_valid"))
        .sort("npi")
    )


def parse_nppes(records: pl.LazyFrame) -> pl.LazyFrame:
    """Registry records (columns `raw` JSON text, `search`) → one row per NPI, searches joined."""
    raw = pl.col("raw")
    return (
        records.with_columns(
            [_path(raw, paths).alias(name) for name, paths in NPPES_FIELDS.items()]
        )
        .filter(pl.col("npi").is_not_null())
        .group_by("npi", maintain_order=True)
        .agg(
            *[pl.col(name).first() for name in NPPES_FIELDS if name != "npi"],
            pl.col("search").unique().sort().str.join(",").alias("searches"),
        )
    )


def npi_extract(parsed: pl.LazyFrame, requested: pl.LazyFrame) -> pl.LazyFrame:
    """The bronze NPI extract: every registry record plus every requested NPI it lacks.

    A requested NPI with a wrong check digit was never sent (no NPI like it can exist) and is
    kept as `invalid_npi`; a well-formed one the registry does not know is `not_found`.
    """
    requested = requested.select("npi", "emr_datasources", "npi_check_digit_valid")
    joined = parsed.join(requested, on="npi", how="full", coalesce=True)
    status = (
        pl.when(pl.col("searches").is_not_null())
        .then(pl.lit("found"))
        .when(npi_check_digit_valid(pl.col("npi")))
        .then(pl.lit("not_found"))
        .otherwise(pl.lit("invalid_npi"))
    )
    return (
        joined.with_columns(
            status.alias("lookup_status"),
            npi_check_digit_valid(pl.col("npi")).alias("npi_check_digit_valid"),
        )
        .select(
            [
                pl.col(c) if c == "npi_check_digit_valid" else pl.col(c).cast(pl.String)
                for c in NPI_COLUMNS
            ]
        )
        .sort("npi")
    )


def parse_who_leaves(leaves: pl.LazyFrame, release: str) -> pl.LazyFrame:
    """WHO leaf entities (columns `raw` JSON text, `chapter`, `block`) → bronze ICD rows."""
    raw = pl.col("raw")
    code = raw.str.json_path_match("$.code")
    return leaves.select(
        code.alias("code"),
        _path(raw, ("$.title['@value']", "$.title")).alias("title"),
        pl.lit(None, dtype=pl.String).alias("short_title"),
        code.str.slice(0, 3).alias("category_code"),
        pl.col("block").cast(pl.String).alias("block_code"),
        pl.col("chapter").cast(pl.String).alias("chapter_code"),
        pl.lit(release, dtype=pl.String).alias("release"),
        pl.lit(WHO_API).alias("source_system"),
        raw.str.json_path_match("$['@id']").alias("source_uri"),
    ).sort("code")


def cms_order_records(lines: pl.LazyFrame) -> pl.LazyFrame:
    """The CMS ICD-10-CM order file's fixed-width fields, one row per non-blank line.

    Layout: order number (5) blank code (7, no dot) blank header flag (1: 0 header, 1 billable)
    blank short description (60) blank long description. `layout_ok` is False for a line that
    does not follow it.
    """
    line = pl.col("line").str.strip_chars_end("\r\n ")
    return (
        lines.with_row_index("line_number", offset=1)
        .with_columns(line.alias("line"))
        .filter(pl.col("line").str.strip_chars() != "")
        .with_columns(
            pl.col("line").str.slice(0, 5).alias("order_number"),
            pl.col("line").str.slice(6, 7).str.strip_chars().alias("raw_code"),
            pl.col("line").str.slice(14, 1).alias("billable_flag"),
            pl.col("line").str.slice(16, 60).str.strip_chars().alias("short_title"),
            pl.col("line").str.slice(77).str.strip_chars().alias("title"),
        )
        .with_columns(
            (
                pl.col("order_number").str.contains(r"^[0-9]{5}$")
                & (pl.col("line").str.slice(5, 1) == " ")
                & pl.col("raw_code").str.contains(r"^[A-Z0-9]{3,7}$")
                & pl.col("billable_flag").is_in(["0", "1"])
                & (pl.col("title") != "")
            ).alias("layout_ok")
        )
    )


def icd_codes_from_cms(records: pl.LazyFrame, release: str | None, source: str) -> pl.LazyFrame:
    """Billable codes of a parsed order file as bronze ICD rows (`A000` → `A00.0`).

    Header rows (flag 0) are categories and chapters' subdivisions, not codes a claim carries;
    the WHO walk keeps only leaves, so the two sources give the same grain.
    """
    raw = pl.col("raw_code")
    dotted = pl.when(raw.str.len_chars() > 3).then(
        raw.str.slice(0, 3) + pl.lit(".") + raw.str.slice(3)
    )
    return records.filter(pl.col("billable_flag") == "1").select(
        dotted.otherwise(raw).alias("code"),
        pl.col("title"),
        pl.col("short_title"),
        raw.str.slice(0, 3).alias("category_code"),
        pl.lit(None, dtype=pl.String).alias("block_code"),
        pl.lit(None, dtype=pl.String).alias("chapter_code"),
        pl.lit(release, dtype=pl.String).alias("release"),
        pl.lit(CMS_ORDER_FILE).alias("source_system"),
        pl.lit(source).alias("source_uri"),
    )


def with_extract_lineage(frame: pl.LazyFrame, load_id: str, now: datetime) -> pl.LazyFrame:
    """`load_id`, `ingested_at` (UTC) and `extract_date` (its UTC date) on every row."""
    return frame.with_columns(
        pl.lit(load_id).alias("load_id"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
        pl.lit(now.date()).alias("extract_date"),
    )
