"""Bronze assets for public reference data: bronze/npi_extract and bronze/icd_codes.

- `bronze/npi_extract`: the NPI Registry (NPPES) record of every NPI in the EMR providers tables
  (all datasources), plus the searches in metadata/nppes_queries.csv. Requested NPIs the registry
  does not know, or whose check digit is wrong, are kept as rows too (`lookup_status`).
- `bronze/icd_codes`: the leaf codes of the WHO ICD-10 API under the chapters / blocks in
  metadata/api_sources.csv; or, when a CMS ICD-10-CM order file waits in `landing/icd10cm/`,
  that file's billable codes instead (for users without WHO credentials).

An extract is collected whole in memory and appended to `lake/bronze/<table>` in one Delta
commit, with `load_id`, `ingested_at` and `extract_date`; a failure anywhere writes no rows (the
table version does not move) and a `failed` row in audit/load_logs.
"""

import hashlib
import json
import logging
import re

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from rcm_assets.bronze.load_record import LoadAttempt, LoadRecord, data_version
from rcm_assets.bronze.reference_frames import (
    CMS_ORDER_FILE,
    cms_order_records,
    icd_codes_from_cms,
    npi_extract,
    parse_nppes,
    parse_who_leaves,
    requested_npis,
    with_extract_lineage,
)
from rcm_assets.errors import MetadataError, RcmError
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import LakeAddresses
from rcm_assets.metadata import REFERENCE_BRONZE_TABLES, ApiSource, ApiSourceName, Metadata
from rcm_assets.resources import LakeResource
from rcm_assets.resources.landing import LandingFile, LandingStoreResource
from rcm_assets.resources.nppes import NppesRecord, NppesResource
from rcm_assets.resources.who_icd import WhoIcdResource

NPI_TABLE = REFERENCE_BRONZE_TABLES[ApiSourceName.NPPES]
ICD_TABLE = REFERENCE_BRONZE_TABLES[ApiSourceName.WHO_ICD]
INVALID_NPIS_SHOWN = 20


class ReferenceFileError(RcmError):
    """A reference code file in landing does not follow its layout."""


def _start(
    source: ApiSourceName,
    table: str,
    lake: LakeAddresses,
    run_id: str | None,
    log: logging.Logger,
    load_type: str = "Api",
    **fields: object,
) -> LoadAttempt:
    return LoadAttempt.start(
        lake,
        log,
        datasource=source.value,
        table=table,
        load_type=load_type,
        bronze_uri=lake.bronze(table),
        run_id=run_id,
        **fields,
    )


def emr_npis(
    metadata: Metadata, source: ApiSource, lake: LakeAddresses, log: logging.Logger
) -> pl.LazyFrame:
    """Distinct NPIs (with their datasources and validity) of every active providers table."""
    table, column = source.npi_table, source.npi_column
    if not table or not column:
        return requested_npis(pl.LazyFrame(schema={"datasource": pl.String, "npi": pl.String}))
    scans = []
    for datasource, config in sorted(metadata.bronze_tables().get(table, {}).items()):
        uri = lake.emr_bronze(config)
        if not delta.exists(uri, lake.storage_options):
            log.warning(
                "NPPES: bronze/%s of %s is not loaded yet; its NPIs are skipped", table, datasource
            )
            continue
        scan = delta.scan(uri, lake.storage_options)
        if column not in scan.collect_schema().names():
            raise MetadataError(
                f"{metadata.folder / 'api_sources.csv'}, line {source.line}, column npi_source: "
                f"bronze/{table} of {datasource} has no column {column!r}"
            )
        scans.append(
            scan.select(pl.lit(datasource).alias("datasource"), pl.col(column).alias("npi"))
        )
    if not scans:
        return requested_npis(pl.LazyFrame(schema={"datasource": pl.String, "npi": pl.String}))
    return requested_npis(pl.concat(scans, how="vertical_relaxed"))


def extract_npi(
    metadata: Metadata,
    lake: LakeAddresses,
    nppes: NppesResource,
    run_id: str | None = None,
    log: logging.Logger | None = None,
) -> LoadRecord:
    """Look up every EMR NPI (and run every nppes_queries.csv search); append one extract."""
    log = log or logging.getLogger(__name__)
    source = metadata.api_source(ApiSourceName.NPPES)
    attempt = _start(ApiSourceName.NPPES, NPI_TABLE, lake, run_id, log)
    with attempt.failure_recorded():
        requested = emr_npis(metadata, source, lake, log).collect()
        valid = requested.filter(pl.col("npi_check_digit_valid"))
        log.info(
            "NPPES: %d NPI(s) from the EMR providers (%d with a wrong check digit, not sent), "
            "%d search(es)",
            requested.height,
            requested.height - valid.height,
            len(metadata.nppes_queries),
        )
        with nppes.open(source, log) as client:
            records: list[NppesRecord] = client.lookup(valid.get_column("npi").to_list())
            for query in metadata.nppes_queries:
                records += [NppesRecord(query.name, r) for r in client.search(query.criteria())]
            settings, http, pages = client.settings, client.http, client.pages
        raw = pl.LazyFrame(
            {
                "raw": [_json(r.record) for r in records],
                "search": [r.search for r in records],
            },
            schema={"raw": pl.String, "search": pl.String},
        )
        frame = with_extract_lineage(
            npi_extract(parse_nppes(raw), requested.lazy()),
            attempt.record.load_id,
            attempt.record.loaded_at,
        ).collect()
        emr = frame.filter(pl.col("emr_datasources").is_not_null())
        statuses = dict(emr.group_by("lookup_status").len().iter_rows())
        invalid = frame.filter(~pl.col("npi_check_digit_valid")).get_column("npi").to_list()
        attempt.update(
            details={
                "npis_requested": requested.height,
                "npis_found": int(statuses.get("found", 0)),
                "npis_not_found": int(statuses.get("not_found", 0)),
                "registry_records": frame.filter(pl.col("lookup_status") == "found").height,
                "npis_invalid_check_digit": len(invalid),
                "invalid_npis": ", ".join(invalid[:INVALID_NPIS_SHOWN])
                + (" …" if len(invalid) > INVALID_NPIS_SHOWN else ""),
                "searches": ", ".join(q.name for q in metadata.nppes_queries) or "(none)",
                "pages": pages,
                "requests": http.stats.requests,
                "retries": http.stats.retries,
                **settings.describe(),
            },
        )
        load = attempt.commit(frame)
    log.info(
        "NPPES: %d row(s) appended to bronze/%s (%s) in %.2fs",
        load.rows,
        NPI_TABLE,
        ", ".join(f"{k} {v}" for k, v in statuses.items()),
        load.duration_seconds,
    )
    return load


def _json(record: object) -> str:
    return json.dumps(record, ensure_ascii=False)


def release_from_file_name(name: str) -> str | None:
    """The fiscal year in a CMS file name (`icd10cm_order_2025.txt` → `2025`), if any."""
    match = re.search(r"(?<![0-9])(20[0-9]{2})(?![0-9])", name)
    return match.group(1) if match else None


def _move(
    landing: LandingStoreResource, file: LandingFile, state: str, folder: str, load_id: str
) -> str:
    destination = f"{state}/{folder}/{load_id}/{file.name}"
    landing.move(file.path, destination)
    return destination


def extract_icd_order_file(
    files: list[LandingFile],
    source: ApiSource,
    lake: LakeAddresses,
    landing: LandingStoreResource,
    run_id: str | None = None,
    log: logging.Logger | None = None,
) -> LoadRecord:
    """Load the newest CMS order file of `files` (oldest first); the older ones are superseded."""
    log = log or logging.getLogger(__name__)
    folder = source.landing_folder or ""
    newest, older = files[-1], files[:-1]
    data = landing.read_bytes(newest.path)
    attempt = _start(
        ApiSourceName.WHO_ICD,
        ICD_TABLE,
        lake,
        run_id,
        log,
        load_type="File",
        source_file=newest.path,
        content_hash=hashlib.sha256(data).hexdigest(),
    )
    try:
        with attempt.failure_recorded():
            load = _load_order_file(attempt, newest, older, data)
    except ReferenceFileError as error:
        destination = _move(landing, newest, "rejected", folder, attempt.record.load_id)
        landing.write_text(f"{destination}.error.txt", f"file: {newest.path}\nreason: {error}\n")
        raise ReferenceFileError(f"{error}; moved to {destination}") from None
    _move(landing, newest, "processed", folder, load.load_id)
    for file in older:
        _move(landing, file, "processed", folder, load.load_id)
        attempt.log_status(
            "superseded",
            f"{newest.path} is newer",
            rows=0,
            source_file=file.path,
            content_hash=None,
        )
    log.info("ICD-10-CM order file %s: %d code(s) appended", newest.path, load.rows)
    return load


def _load_order_file(
    attempt: LoadAttempt, newest: LandingFile, older: list[LandingFile], data: bytes
) -> LoadRecord:
    """Parse a CMS order file's billable codes and commit them; ReferenceFileError if bad."""
    # The CMS files are plain ASCII; latin-1 reads any byte, so a stray one cannot stop us.
    text = data.decode("utf-8") if data.isascii() else data.decode("latin-1")
    records = cms_order_records(pl.LazyFrame({"line": text.splitlines()})).collect()
    bad = records.filter(~pl.col("layout_ok"))
    if bad.height or not records.height:
        first = bad.row(0, named=True) if bad.height else None
        raise ReferenceFileError(
            f"{newest.path}: not a CMS ICD-10-CM order file: "
            + (
                f"{bad.height} line(s) break the fixed-width layout, first line "
                f"{first['line_number']}: {first['line'][:90]!r}"
                if first
                else "no records"
            )
        )
    frame = with_extract_lineage(
        icd_codes_from_cms(records.lazy(), release_from_file_name(newest.name), newest.path),
        attempt.record.load_id,
        attempt.record.loaded_at,
    ).collect()
    if not frame.height:
        raise ReferenceFileError(f"{newest.path}: the order file has no billable code")
    attempt.update(
        details={
            "source": MetadataValue.text(f"CMS ICD-10-CM order file {newest.path}"),
            "header_rows_skipped": records.height - frame.height,
            "superseded_files": ", ".join(f.path for f in older) or "(none)",
        },
    )
    return attempt.commit(frame)


def extract_icd_codes(
    metadata: Metadata,
    lake: LakeAddresses,
    landing: LandingStoreResource,
    who_icd: WhoIcdResource,
    run_id: str | None = None,
    log: logging.Logger | None = None,
) -> LoadRecord:
    """The CMS order file waiting in landing if there is one, else a walk of the WHO API."""
    log = log or logging.getLogger(__name__)
    source = metadata.api_source(ApiSourceName.WHO_ICD)
    files = landing.list_files(source.landing_folder) if source.landing_folder else []
    if files:
        return extract_icd_order_file(files, source, lake, landing, run_id, log)
    if source.landing_folder and _newest_source_system(lake) == CMS_ORDER_FILE:
        return _keep_icd10cm(lake, run_id, log)
    attempt = _start(ApiSourceName.WHO_ICD, ICD_TABLE, lake, run_id, log)
    with attempt.failure_recorded():
        with who_icd.open(source, log) as client:
            log.info(
                "WHO ICD: walking release %s from %s", client.release, " ".join(source.root_codes)
            )
            leaves = client.walk(source.root_codes)
            settings, http = client.settings, client.http
            entities, tokens = client.entities, client.token.fetched
        if not leaves:
            raise RcmError(
                f"WHO ICD: {entities} entities under {' '.join(source.root_codes)} hold no code"
            )
        raw = pl.LazyFrame(
            {
                "raw": [leaf.raw for leaf in leaves],
                "chapter": [leaf.chapter for leaf in leaves],
                "block": [leaf.block for leaf in leaves],
            },
            schema={"raw": pl.String, "chapter": pl.String, "block": pl.String},
        )
        codes = parse_who_leaves(raw, settings.release or "").unique("code", keep="first")
        record = attempt.record
        frame = with_extract_lineage(codes.sort("code"), record.load_id, record.loaded_at)
        frame = frame.collect()
        attempt.update(
            details={
                "source": MetadataValue.text("WHO ICD-10 API"),
                "release": settings.release or "",
                "root_codes": " ".join(source.root_codes),
                "entities_fetched": entities,
                "tokens_fetched": tokens,
                "requests": http.stats.requests,
                "retries": http.stats.retries,
                **settings.describe(),
            },
        )
        load = attempt.commit(frame)
    log.info("WHO ICD: %d code(s) appended to bronze/%s", load.rows, ICD_TABLE)
    return load


def _newest_source_system(lake: LakeAddresses) -> str | None:
    """Where the newest ICD load came from: the WHO API or a CMS ICD-10-CM order file."""
    uri, options = lake.bronze(ICD_TABLE), lake.storage_options
    newest = delta.last_load_id(uri, ApiSourceName.WHO_ICD.value, options)
    if newest is None:
        return None
    return (
        delta.scan(uri, options)
        .filter(pl.col("load_id") == newest)
        .select(pl.col("source_system").first())
        .collect()
        .item()
    )


def _keep_icd10cm(lake: LakeAddresses, run_id: str | None, log: logging.Logger) -> LoadRecord:
    """ICD-10-CM from CMS is the code set in use: the WHO API's ICD-10 would replace its codes
    with fewer, differently titled ones. A new order file replaces it; until then nothing loads."""
    attempt = _start(ApiSourceName.WHO_ICD, ICD_TABLE, lake, run_id, log, load_type="File")
    with attempt.failure_recorded():
        attempt.update(
            details={"source": MetadataValue.text("CMS ICD-10-CM order file: no new file")}
        )
        empty = delta.scan(lake.bronze(ICD_TABLE), lake.storage_options).head(0).collect()
        load = attempt.commit(empty)
    log.info(
        "ICD codes come from a CMS ICD-10-CM order file; no new one waits in landing, so the "
        "WHO API is not walked and bronze/%s is unchanged",
        ICD_TABLE,
    )
    return load


def _failure(error: RcmError) -> Failure:
    return Failure(description=str(error), allow_retries=False)


def build_npi_extract_asset(metadata: Metadata) -> AssetsDefinition:
    source = metadata.api_source(ApiSourceName.NPPES)
    key = AssetKey(["bronze", NPI_TABLE])

    @asset(
        key=key,
        group_name="bronze",
        deps=[AssetKey(["bronze", source.npi_table])] if source.npi_table else [],
        kinds={"polars", "delta"},
        description=(
            "NPI Registry (NPPES API v2.1) records of every NPI in the EMR providers tables "
            f"(`{source.npi_source}`, all datasources) plus the searches in "
            "nppes_queries.csv; NPIs the registry lacks or with a wrong check digit are kept "
            "with their `lookup_status`. Appended per extract with load_id, ingested_at, "
            "extract_date."
        ),
        check_specs=[
            AssetCheckSpec(
                "npi_check_digits",
                asset=key,
                description="Every NPI of the extract passes the NPI check digit (Luhn over "
                "80840 + the first nine digits).",
            )
        ],
    )
    def _npi_extract(
        context: AssetExecutionContext, lake: LakeResource, nppes: NppesResource
    ) -> MaterializeResult:
        try:
            load = extract_npi(metadata, lake.addresses, nppes, context.run.run_id, context.log)
        except RcmError as error:
            raise _failure(error) from None
        invalid = int(load.details.get("npis_invalid_check_digit", 0))
        return MaterializeResult(
            metadata=load.asset_metadata(),
            data_version=data_version(
                lake.addresses, load.bronze_uri, load.datasource, load.appended_load_id
            ),
            check_results=[
                AssetCheckResult(
                    check_name="npi_check_digits",
                    passed=invalid == 0,
                    severity=AssetCheckSeverity.WARN,
                    metadata={
                        "invalid_npis": invalid,
                        "examples": str(load.details.get("invalid_npis") or "none"),
                    },
                )
            ],
        )

    return _npi_extract


def build_icd_codes_asset(metadata: Metadata) -> AssetsDefinition:
    source = metadata.api_source(ApiSourceName.WHO_ICD)

    @asset(
        key=AssetKey(["bronze", ICD_TABLE]),
        group_name="bronze",
        kinds={"polars", "delta"},
        description=(
            f"ICD-10 leaf codes from the WHO ICD API (release {source.release}, under "
            f"{' '.join(source.root_codes)}), or from a CMS ICD-10-CM order file dropped into "
            f"`landing/{source.landing_folder}/`, which then replaces the API. Appended per "
            "extract with load_id, ingested_at, extract_date."
        ),
    )
    def _icd_codes(
        context: AssetExecutionContext,
        lake: LakeResource,
        landing: LandingStoreResource,
        who_icd: WhoIcdResource,
    ) -> MaterializeResult:
        try:
            load = extract_icd_codes(
                metadata, lake.addresses, landing, who_icd, context.run.run_id, context.log
            )
        except RcmError as error:
            raise _failure(error) from None
        version = data_version(
            lake.addresses, load.bronze_uri, load.datasource, load.appended_load_id
        )
        return MaterializeResult(metadata=load.asset_metadata(), data_version=version)

    return _icd_codes


def build_reference_bronze_assets(metadata: Metadata) -> list[AssetsDefinition]:
    """bronze/npi_extract and bronze/icd_codes, for the sources in api_sources.csv."""
    builders = {
        ApiSourceName.NPPES: build_npi_extract_asset,
        ApiSourceName.WHO_ICD: build_icd_codes_asset,
    }
    return [builders[name](metadata) for name in builders if name in metadata.api_sources]
