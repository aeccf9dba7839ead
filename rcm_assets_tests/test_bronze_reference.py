"""bronze/reference.py: NPI and ICD extracts into the lake, silver SCD2 of them, through Dagster.

Failing extracts must leave bronze untouched; a changed ICD description must version silver;
the WHO client secret must never surface; the embedded demo must run offline (replay mode).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize
from dagster._serdes import serialize_value

from rcm_assets.bronze.reference import (
    ReferenceFileError,
    build_reference_bronze_assets,
    extract_icd_codes,
    extract_npi,
)
from rcm_assets.bronze.reference_frames import cms_order_records, icd_codes_from_cms
from rcm_assets.errors import RcmError
from rcm_assets.lake import delta
from rcm_assets.metadata import load_metadata
from rcm_assets.resources import LakeResource, LandingStoreResource
from rcm_assets.resources.api_replay import ReplayApi
from rcm_assets.resources.nppes import NppesResource
from rcm_assets.resources.who_icd import WhoIcdResource, who_icd_resource
from rcm_assets.sample_data import ICD10_CODES, WHO_ICD10_CODES
from rcm_assets.sample_data.api_replay import (
    nppes_individual,
    sample_providers,
    who_icd_entities,
    write_api_replay,
)
from rcm_assets.silver.assets import build_silver_assets, build_silver_table
from rcm_assets_tests.api_server import CLIENT_ID, ApiTestServer, Fault, running, valid_npi
from rcm_assets_tests.bronze_helpers import delta_version, run_all
from rcm_assets_tests.conftest import Project

SECRET = "Zq-distinctive-WHO-secret-4711"
REGISTERED = [valid_npi(n) for n in range(1, 9)]
UNREGISTERED = valid_npi(99_999)
WRONG_CHECK_DIGIT = REGISTERED[0][:9] + str((int(REGISTERED[0][9]) + 1) % 10)
FAST = {
    "mode": "live",
    "rate_limit_per_second": 1000.0,
    "max_retries": 2,
    "backoff_seconds": 0.01,
    "max_backoff_seconds": 0.02,
    "timeout_seconds": 0.5,
}
NPI_ASSET, ICD_ASSET = AssetKey(["bronze", "npi_extract"]), AssetKey(["bronze", "icd_codes"])


@pytest.fixture
def server() -> Iterator[ApiTestServer]:
    registry = [nppes_individual(npi, "ANN", f"LEE{i}", "Internist") for i, npi in
                enumerate(REGISTERED)]  # fmt: skip
    replay = ReplayApi(nppes=registry, who=who_icd_entities(), credentials=(CLIENT_ID, SECRET))
    with running(replay) as started:
        yield started


def nppes_resource(server: ApiTestServer) -> NppesResource:
    return NppesResource(**FAST, base_url=f"{server.url}/api/")


def who_resource(server: ApiTestServer, **credentials: Any) -> WhoIcdResource:
    settings = {
        **FAST,
        "base_url": f"{server.url}/icd/release/10",
        "token_url": f"{server.url}/connect/token",
    }
    if credentials:
        return WhoIcdResource(**settings, **credentials)
    return who_icd_resource(**settings)


def seed_providers(project: Project, npis: dict[str, list[str | None]]) -> None:
    """Bronze providers tables as the EMR assets write them (only the columns used here)."""
    now = datetime.now(UTC)
    for datasource, values in npis.items():
        frame = pl.DataFrame(
            {
                "ProviderID": [f"PROV{i:04d}" for i in range(len(values))],
                "NPI": values,
                "datasource": [datasource] * len(values),
                "load_id": [f"seed-{datasource}"] * len(values),
                "ingested_at": [now] * len(values),
            },
            schema={
                "ProviderID": pl.String,
                "NPI": pl.String,
                "datasource": pl.String,
                "load_id": pl.String,
                "ingested_at": pl.Datetime("us", "UTC"),
            },
        )
        target = project.lake / "bronze" / datasource.replace("-", "") / "providers"
        delta.append(str(target), frame, {"operation": "seed"})


def bronze_table(project: Project, table: str) -> pl.DataFrame:
    return pl.read_delta(str(project.lake / "bronze" / table))


def audit_rows(project: Project, table: str) -> pl.DataFrame:
    logs = pl.read_delta(str(project.lake / "audit" / "load_logs"))
    return logs.filter(pl.col("tablename") == table).sort("loaddate")


def extract(api: str, project: Project, server: ApiTestServer) -> Any:
    metadata, lake = load_metadata(), LakeResource().addresses
    if api == "nppes":
        return extract_npi(metadata, lake, nppes_resource(server))
    landing = LandingStoreResource()
    return extract_icd_codes(
        metadata, lake, landing, who_resource(server, client_id=CLIENT_ID, client_secret=SECRET)
    )


# Faults aimed at one NPI (after others were looked up) or at one part of the WHO walk.
ONE_NPI = f"number={REGISTERED[5]}"
FAILURES = {
    "nppes-server-error": (
        "nppes", ONE_NPI, [Fault(500, b"")] * 3,
        r"NPPES: GET /api/\?\S*number=\d{10}\S* failed after 3 attempt\(s\): HTTP 500",
    ),
    "nppes-error-payload": (
        "nppes", ONE_NPI, [Fault(200, b'{"Errors": [{"description": "Too many requests"}]}')],
        r"NPPES: GET /api/\?.* returned errors: Too many requests",
    ),
    "nppes-malformed-json": (
        "nppes", ONE_NPI, [Fault(200, b'{"results": [')],
        r"NPPES: GET /api/\?.* returned malformed JSON",
    ),
    "nppes-timeout": (
        "nppes", ONE_NPI, [Fault(delay=1.0)] * 3,
        r"NPPES: GET /api/\?.* failed after 3 attempt\(s\): timed out",
    ),
    "who-server-error": (
        "who", "/2019/K21", [Fault(503, b"")] * 3,
        r"WHO ICD: GET /icd/release/10/2019/K\S* failed after 3 attempt\(s\): HTTP 503",
    ),
    "who-malformed-json": (
        "who", "/2019/M", [Fault(200, b"<html>")],
        r"WHO ICD: GET /icd/release/10/2019/M\S* returned malformed JSON",
    ),
    "who-token-refused": (
        "who", "/connect/token", [Fault(401, b'{"error": "invalid_client"}')],
        r"WHO ICD: POST /connect/token refused the client credentials: HTTP 401",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", FAILURES)
def test_failing_extract_writes_no_partial_snapshot(
    project: Project, server: ApiTestServer, case: str
) -> None:
    api, contains, faults, message = FAILURES[case]
    seed_providers(project, {"hos-a": REGISTERED[:4], "hos-b": REGISTERED[4:]})
    table = "npi_extract" if api == "nppes" else "icd_codes"
    first = extract(api, project, server)
    rows = bronze_table(project, table).height
    server.inject(contains, *faults)

    with pytest.raises(RcmError) as caught:
        extract(api, project, server)

    assert re.search(message, str(caught.value)), str(caught.value)
    assert delta_version(project.lake / "bronze" / table) == first.bronze_version == 0
    assert bronze_table(project, table).height == rows
    logs = audit_rows(project, table)
    assert logs.get_column("status").to_list() == ["success", "failed"]
    assert re.search(message, logs.get_column("error")[-1])


def test_three_changed_icd_descriptions_are_versioned_in_silver(
    project: Project, server: ApiTestServer
) -> None:
    metadata, lake = load_metadata(), LakeResource().addresses
    table = metadata.silver_tables["icd_codes"]
    extract("who", project, server)
    assert build_silver_table(table, metadata, lake).inserted == len(WHO_ICD10_CODES)
    changed = {"E11.9": "Type 2 diabetes, no complications", "I10": "Hypertension, essential",
               "J44.9": "Chronic obstructive pulmonary disease"}  # fmt: skip
    for code, title in changed.items():
        server.replay.who[f"2019/{code}"]["title"]["@value"] = title

    extract("who", project, server)
    build = build_silver_table(table, metadata, lake)

    assert (build.closed, build.inserted, build.unchanged) == (3, 3, len(WHO_ICD10_CODES) - 3)
    silver = pl.read_delta(lake.silver("icd_codes"))
    current = silver.filter(pl.col("is_current"))
    assert silver.height == len(WHO_ICD10_CODES) + 3
    assert sorted(current.get_column("icd_code")) == sorted(c for c, _ in WHO_ICD10_CODES)
    assert current.get_column("icd_code").is_unique().all()
    closed = silver.filter(~pl.col("is_current"))
    assert sorted(closed.get_column("icd_code")) == sorted(changed)
    assert closed.get_column("valid_to").is_not_null().all()
    now = dict(current.select("icd_code", "description").iter_rows())
    assert {code: now[code] for code in changed} == changed
    assert set(current.get_column("datasource")) == {"who"}
    assert now["A41.9"] == "Sepsis, unspecified organism"  # the key has no datasource suffix

    from rcm_assets.gold.builds import GoldBuilder, build_frame

    table = metadata.gold_tables["dim_icd_code"]
    frames = GoldBuilder(table, metadata, lake).frames({"silver/icd_codes": -1})
    gold = build_frame(table, metadata, frames).collect()
    assert sorted(gold.get_column("icd_code")) == sorted(code for code, _ in WHO_ICD10_CODES)
    shown = dict(gold.select("icd_code", "description").iter_rows())
    assert {code: shown[code] for code in changed} == changed  # gold has the new descriptions


def _event_log_text(instance: DagsterInstance) -> str:
    return "\n".join(
        serialize_value(entry)
        for run in instance.get_runs()
        for entry in instance.all_logs(run.run_id)
    ) + "\n".join(json.dumps(run.run_config, default=str) for run in instance.get_runs())


def test_the_client_secret_never_surfaces(
    project: Project,
    server: ApiTestServer,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RCM_WHO_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("RCM_WHO_CLIENT_SECRET", SECRET)
    caplog.set_level("DEBUG")
    icd_asset = [a for a in build_reference_bronze_assets(load_metadata()) if a.key == ICD_ASSET]
    resources = {"lake": LakeResource(), "landing": LandingStoreResource(),
                 "who_icd": who_resource(server)}  # fmt: skip
    # A token that expires mid-walk and a throttled request: the paths that handle the token.
    server.inject("/icd/release/10/2019/", *[Fault()] * 40, Fault(revoke_tokens=True))
    server.inject("/2019/I10", Fault(429, b"", {"Retry-After": "0"}))

    good = materialize(icd_asset, resources=resources, instance=instance)
    assert good.success
    assert server.replay.tokens_issued == 2
    # The token endpoint answers with the secret echoed back in its error.
    echo = json.dumps({"error": f"invalid_client: client_secret={SECRET} rejected"}).encode()
    server.inject("/connect/token", Fault(400, echo))
    bad = materialize(icd_asset, resources=resources, instance=instance, raise_on_error=False)
    assert not bad.success

    failure = next(e for e in bad.all_events if e.is_step_failure).step_failure_data
    user_failure = failure.user_failure_data
    assert user_failure is not None and "/connect/token" in (user_failure.description or "")
    metadata = good.asset_materializations_for_node("bronze__icd_codes")[0].metadata
    surfaces = {
        "python logs": caplog.text,
        "console": "".join(capfd.readouterr()),
        "event log and run config": _event_log_text(instance),
        "asset metadata": json.dumps({k: str(v) for k, v in metadata.items()}),
        "failure": f"{failure.error} {user_failure.description}",
        "audit log": audit_rows(project, "icd_codes").write_json(),
        "bronze": bronze_table(project, "icd_codes").write_json(),
    }
    assert all(len(text) > 0 for text in surfaces.values())
    leaked = [name for name, text in surfaces.items() if SECRET in text]
    assert not leaked, f"the client secret appears in: {', '.join(leaked)}"
    assert "***" in user_failure.description
    configs = [json.dumps(run.run_config) for run in instance.get_runs()]
    assert all(SECRET not in config for config in configs)


@pytest.mark.parametrize("order_file", [True, False], ids=["cms-order-file", "who-api"])
def test_reference_assets_materialize_offline_in_replay_mode(
    sampled: Project, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch, order_file: bool
) -> None:
    """The default sample run loads ICD-10-CM from the CMS order file `rcm generate` lands, so
    every sample code has a row; without it the WHO replay yields the WHO ICD-10 codes only."""
    order = sampled.home / "landing" / "icd10cm" / "icd10cm_order_2025.txt"
    assert order.is_file()
    if not order_file:
        order.unlink()
    expected = ICD10_CODES if order_file else WHO_ICD10_CODES
    for name in ("RCM_WHO_CLIENT_ID", "RCM_WHO_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    outcomes = run_all(instance, ["hos-a", "hos-b"])
    assert {("bronze/providers", "hos-a"), ("bronze/providers", "hos-b")} <= {
        (o.asset, o.partition) for o in outcomes if o.status == "materialized"
    }
    write_api_replay(sampled.home, sample_providers(sampled.home))

    def no_network(*_: object, **__: object) -> None:
        raise AssertionError("replay mode must not touch the network")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", no_network)
    metadata = load_metadata()
    result = materialize(
        build_reference_bronze_assets(metadata),
        resources={
            "lake": LakeResource(),
            "landing": LandingStoreResource(),
            "nppes": NppesResource(),
            "who_icd": who_icd_resource(),
        },
        instance=instance,
    )

    assert result.success
    providers = pl.concat(
        [pl.read_delta(str(sampled.lake / "bronze" / t / "providers")) for t in ("hosa", "hosb")]
    )
    npis = bronze_table(sampled, "npi_extract")
    assert sorted(npis.get_column("npi")) == sorted(providers.get_column("NPI").unique())
    assert set(npis.get_column("lookup_status")) == {"found"}
    assert npis.get_column("npi_check_digit_valid").all()
    assert npis.get_column("emr_datasources").str.contains("hos-").all()
    codes = bronze_table(sampled, "icd_codes")
    assert sorted(codes.get_column("code")) == sorted(code for code, _ in expected)
    assert set(codes.get_column("source_system")) == {
        "cms_icd10cm_order_file" if order_file else "who_icd_api"
    }
    assert not order.exists()  # the order file was processed, or never there
    for frame in (npis, codes):
        assert {"load_id", "ingested_at", "extract_date"} <= set(frame.columns)
        assert frame.get_column("load_id").n_unique() == 1
    npi_metadata = result.asset_materializations_for_node("bronze__npi_extract")[0].metadata
    assert npi_metadata["npis_found"].value == npis.height
    assert npi_metadata["npis_invalid_check_digit"].value == 0
    assert npi_metadata["api_mode"].value == "replay"
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("npi_check_digits", True)]
    logs = pl.read_delta(str(sampled.lake / "audit" / "load_logs"))
    assert logs.filter(pl.col("data_source").is_in(["nppes", "who_icd"])).select(
        "data_source", "tablename", "status", "load_type"
    ).sort("data_source").rows() == [
        ("nppes", "npi_extract", "success", "Api"),
        ("who_icd", "icd_codes", "success", "File" if order_file else "Api"),
    ]

    silver_assets, _ = build_silver_assets(metadata)
    wanted = {AssetKey(["silver", "npi_extract"]), AssetKey(["silver", "icd_codes"])}
    built = materialize(
        [a for a in silver_assets if a.key in wanted],
        resources={"lake": LakeResource()},
        instance=instance,
    )
    assert built.success
    silver_npi = pl.read_delta(str(sampled.lake / "silver" / "npi_extract"))
    assert silver_npi.height == npis.height and silver_npi.get_column("is_current").all()
    assert not silver_npi.get_column("is_quarantined").any()
    assert set(silver_npi.get_column("datasource")) == {"nppes"}
    silver_icd = pl.read_delta(str(sampled.lake / "silver" / "icd_codes"))
    assert silver_icd.height == len(expected)


def test_invalid_and_unknown_npis_are_reported(
    project: Project, server: ApiTestServer, instance: DagsterInstance
) -> None:
    seed_providers(
        project,
        {
            "hos-a": [REGISTERED[0], WRONG_CHECK_DIGIT, None, " ", "12345"],
            "hos-b": [REGISTERED[0], UNREGISTERED],
        },
    )
    npi_asset = [a for a in build_reference_bronze_assets(load_metadata()) if a.key == NPI_ASSET]

    result = materialize(
        npi_asset,
        resources={"lake": LakeResource(), "nppes": nppes_resource(server)},
        instance=instance,
    )

    assert result.success
    rows = {r["npi"]: r for r in bronze_table(project, "npi_extract").iter_rows(named=True)}
    assert {npi: r["lookup_status"] for npi, r in rows.items()} == {
        REGISTERED[0]: "found",
        UNREGISTERED: "not_found",
        WRONG_CHECK_DIGIT: "invalid_npi",
        "12345": "invalid_npi",
    }
    assert rows[REGISTERED[0]]["emr_datasources"] == "hos-a,hos-b"
    assert not rows[WRONG_CHECK_DIGIT]["npi_check_digit_valid"]
    assert not server.seen(WRONG_CHECK_DIGIT) and not server.seen("number=12345")
    metadata = result.asset_materializations_for_node("bronze__npi_extract")[0].metadata
    assert metadata["npis_invalid_check_digit"].value == 2
    assert metadata["npis_not_found"].value == 1
    assert WRONG_CHECK_DIGIT in metadata["invalid_npis"].value
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "npi_check_digits" and not check.passed


def test_nppes_searches_from_metadata_join_the_extract(
    project: Project, server: ApiTestServer
) -> None:
    seed_providers(project, {"hos-a": REGISTERED[:2], "hos-b": []})
    city = server.replay.nppes[5]["addresses"][1]["city"]  # the LOCATION address
    project.append_metadata("nppes_queries.csv", f"internists,NPI-1,Internal Medicine,,{city},,")

    load = extract_npi(load_metadata(), LakeResource().addresses, nppes_resource(server))

    frame = bronze_table(project, "npi_extract")
    from_search = frame.filter(pl.col("searches").str.contains("internists"))
    assert from_search.height >= 1 and (from_search.get_column("city") == city).all()
    assert set(frame.filter(pl.col("emr_datasources").is_not_null()).get_column("npi")) == set(
        REGISTERED[:2]
    )
    assert load.details["searches"] == "internists"


ORDER_LINES = [
    "00001 A00     0 Cholera" + " " * 53 + "Cholera",
    "00002 A000    1 Cholera due to Vibrio cholerae 01, biovar cholerae" + " " * 12
    + "Cholera due to Vibrio cholerae 01, biovar cholerae",
    "00003 A09     1 Infectious gastroenteritis and colitis, unspecified" + " " * 10
    + "Infectious gastroenteritis and colitis, unspecified",
    "00004 E1122   1 Type 2 diabetes mellitus w diabetic chronic kidney disease"
    + " " * 3 + "Type 2 diabetes mellitus with diabetic chronic kidney disease",
]  # fmt: skip


def test_cms_order_file_in_landing_replaces_the_api(project: Project) -> None:
    landing = project.home / "landing" / "icd10cm"
    landing.mkdir(parents=True)
    (landing / "icd10cm_order_2024.txt").write_text("\n".join(ORDER_LINES[:2]) + "\n")
    newest = landing / "icd10cm_order_2025.txt"
    newest.write_text("\r\n".join(ORDER_LINES) + "\r\n")
    os.utime(landing / "icd10cm_order_2024.txt", (1, 1))  # older
    # Live mode without credentials and without a reachable server: the API must not be used.
    who = WhoIcdResource(mode="live", base_url="http://127.0.0.1:9/icd/release/10")
    metadata, lake = load_metadata(), LakeResource().addresses

    load = extract_icd_codes(metadata, lake, LandingStoreResource(), who)

    codes = bronze_table(project, "icd_codes")
    assert codes.get_column("code").to_list() == ["A00.0", "A09", "E11.22"]
    assert set(codes.get_column("source_system")) == {"cms_icd10cm_order_file"}
    assert set(codes.get_column("release")) == {"2025"}
    assert load.details["header_rows_skipped"] == 1
    processed = project.home / "landing" / "processed" / "icd10cm" / load.load_id
    assert sorted(p.name for p in processed.iterdir()) == [
        "icd10cm_order_2024.txt",
        "icd10cm_order_2025.txt",
    ]
    assert not list(landing.iterdir())
    logs = audit_rows(project, "icd_codes")
    assert sorted(logs.get_column("status")) == ["success", "superseded"]
    assert set(logs.get_column("load_type")) == {"File"}
    build = build_silver_table(metadata.silver_tables["icd_codes"], metadata, lake)
    assert build.inserted == 3
    silver = pl.read_delta(lake.silver("icd_codes"))
    assert dict(silver.select("icd_code", "description").rows())["E11.22"].endswith("disease")


def test_bad_cms_order_file_is_rejected_naming_the_line(project: Project) -> None:
    landing = project.home / "landing" / "icd10cm"
    landing.mkdir(parents=True)
    (landing / "codes.txt").write_text("\n".join([*ORDER_LINES, "A09,Infectious colitis"]) + "\n")

    with pytest.raises(ReferenceFileError, match=r"icd10cm/codes.txt: .* first line 5: 'A09,"):
        extract_icd_codes(
            load_metadata(),
            LakeResource().addresses,
            LandingStoreResource(),
            WhoIcdResource(mode="live"),
        )

    assert not (project.lake / "bronze" / "icd_codes").exists()
    rejected = list((project.home / "landing" / "rejected" / "icd10cm").glob("*/codes.txt*"))
    assert sorted(p.name for p in rejected) == ["codes.txt", "codes.txt.error.txt"]
    assert audit_rows(project, "icd_codes").get_column("status").to_list() == ["failed"]


def test_rcm_generate_writes_replay_fixtures_of_the_sample_providers(project: Project) -> None:
    from rcm_assets.cli import main

    assert main(["generate", "--scale", "0.01", "--seed", "3"]) == 0

    providers = sample_providers(project.home)
    fixture = json.loads((project.home / "replay" / "nppes.json").read_text())
    registered = {str(record["number"]) for record in fixture["results"]}
    assert set(providers.get_column("NPI")) <= registered
    who = json.loads((project.home / "replay" / "who_icd.json").read_text())["entities"]
    served = {e.get("code") for e in who.values()}
    assert {code for code, _ in WHO_ICD10_CODES} <= served
    assert not {"E11.22", "F32.A", "Z79.4"} & served  # ICD-10-CM only
    order = (project.home / "landing" / "icd10cm" / "icd10cm_order_2025.txt").read_text()
    records = cms_order_records(pl.LazyFrame({"line": order.splitlines()})).collect()
    assert records.get_column("layout_ok").all()
    codes = icd_codes_from_cms(records.lazy(), "2025", "icd10cm/icd10cm_order_2025.txt").collect()
    assert sorted(codes.get_column("code")) == sorted(code for code, _ in ICD10_CODES)
