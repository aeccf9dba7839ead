"""NPPES and WHO ICD clients against a local HTTP server: paging, caps, OAuth, faults.

The clients run in `live` mode against 127.0.0.1 (real sockets, timeouts, headers), the server
answering from the same replay logic as the offline demo, with faults injected per request.
Also: retry/backoff/rate-limit units, the pure parsing transforms, api_sources.csv validation.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import polars as pl
import pytest

from rcm_assets.bronze.reference_frames import (
    cms_order_records,
    icd_codes_from_cms,
    npi_check_digit_valid,
    npi_extract,
    parse_nppes,
    requested_npis,
)
from rcm_assets.errors import MetadataError
from rcm_assets.metadata import ApiSourceName, load_metadata
from rcm_assets.resources.api_replay import ReplayApi
from rcm_assets.resources.http_retry import (
    ApiError,
    ApiHttp,
    RateLimiter,
    RetryPolicy,
    parse_retry_after,
)
from rcm_assets.resources.nppes import NppesClient, NppesResource
from rcm_assets.resources.reference_api import ApiSettings
from rcm_assets.resources.who_icd import ClientCredentialsToken, WhoIcdResource
from rcm_assets.sample_data import ICD10_CODES, WHO_ICD10_CODES
from rcm_assets.sample_data.api_replay import (
    nppes_individual,
    nppes_organization,
    nppes_records,
    who_icd_entities,
)
from rcm_assets.sample_data.synth import npi_check_digit
from rcm_assets_tests.api_server import CLIENT_ID, ApiTestServer, Fault, running, valid_npi
from rcm_assets_tests.conftest import Project

SECRET = "client-secret-for-tests-7Qx"
PAGED_CITY, SPLIT_CITY, CAPPED_CITY = "SPRINGFIELD", "CAPITOLA", "BIGTOWN"
LOG = logging.getLogger(__name__)


def _in_city(record: dict[str, Any], city: str) -> dict[str, Any]:
    for address in record["addresses"]:
        address.update(city=city, state="MA")
    return record


def registry() -> list[dict[str, Any]]:
    """450 practices in one city, 700 + 600 in another, 1,300 individuals in a third."""
    people = iter(range(10_000))

    def individuals(city: str, n: int) -> list[dict[str, Any]]:
        numbers = [next(people) for _ in range(n)]
        return [
            _in_city(nppes_individual(valid_npi(i), "ANN", f"LEE{i}", "Internist"), city)
            for i in numbers
        ]

    def organizations(city: str, n: int) -> list[dict[str, Any]]:
        numbers = [next(people) for _ in range(n)]
        return [
            _in_city(nppes_organization(valid_npi(i, "2"), f"CLINIC {i}"), city) for i in numbers
        ]

    return [
        *individuals(PAGED_CITY, 300),
        *organizations(PAGED_CITY, 150),
        *individuals(SPLIT_CITY, 700),
        *organizations(SPLIT_CITY, 600),
        *individuals(CAPPED_CITY, 1300),
    ]


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return registry()


@pytest.fixture
def server(records: list[dict[str, Any]]) -> Iterator[ApiTestServer]:
    replay = ReplayApi(nppes=records, who=who_icd_entities(), credentials=(CLIENT_ID, SECRET))
    with running(replay) as started:
        yield started


FAST = {
    "mode": "live",
    "rate_limit_per_second": 1000.0,
    "max_retries": 3,
    "backoff_seconds": 0.01,
    "max_backoff_seconds": 0.02,
    "timeout_seconds": 2.0,
}


def nppes_resource(server: ApiTestServer, **overrides: Any) -> NppesResource:
    return NppesResource(**{**FAST, "base_url": f"{server.url}/api/", **overrides})


def who_resource(server: ApiTestServer, **overrides: Any) -> WhoIcdResource:
    settings = {
        **FAST,
        "base_url": f"{server.url}/icd/release/10",
        "token_url": f"{server.url}/connect/token",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        **overrides,
    }
    return WhoIcdResource(**settings)


def nppes_search(server: ApiTestServer, criteria: dict[str, str], **overrides: Any) -> list:
    source = load_metadata().api_source(ApiSourceName.NPPES)
    with nppes_resource(server, **overrides).open(source) as client:
        return client.search(criteria)


def who_walk(server: ApiTestServer, **overrides: Any) -> tuple[list, Any]:
    source = load_metadata().api_source(ApiSourceName.WHO_ICD)
    with who_resource(server, **overrides).open(source) as client:
        return client.walk(source.root_codes), client


def _npis(results: list[dict[str, Any]]) -> set[str]:
    return {str(r["number"]) for r in results}


def _skips(server: ApiTestServer, city: str) -> list[int]:
    return [int(re.search(r"skip=(\d+)", r.target).group(1)) for r in server.seen(f"city={city}")]


# NPPES -------------------------------------------------------------------------------------


def test_nppes_pages_across_several_pages(project: Project, server: ApiTestServer) -> None:
    results = nppes_search(server, {"city": PAGED_CITY, "state": "MA"}, page_size=200)

    assert len(results) == len(_npis(results)) == 450
    assert _skips(server, PAGED_CITY) == [0, 200, 400]
    assert {r["enumeration_type"] for r in results} == {"NPI-1", "NPI-2"}
    assert all("version=2.1" in r.target and "limit=200" in r.target for r in server.seen())


def test_nppes_cap_is_split_by_enumeration_type_without_loss(
    project: Project, server: ApiTestServer
) -> None:
    results = nppes_search(server, {"city": SPLIT_CITY, "state": "MA"})

    assert len(_npis(results)) == 1300  # 1,200 at most per query: split into 700 + 600
    assert len(server.seen("enumeration_type=NPI-1")) == 4
    assert len(server.seen("enumeration_type=NPI-2")) == 4  # 600: three full pages, one empty


def test_nppes_cap_that_splitting_cannot_resolve_fails_clearly(
    project: Project, server: ApiTestServer
) -> None:
    with pytest.raises(ApiError) as caught:
        nppes_search(server, {"city": CAPPED_CITY, "state": "MA"})

    message = str(caught.value)
    assert message.startswith("NPPES: GET /api/")
    assert f"city={CAPPED_CITY}" in message and "enumeration_type=NPI-1" in message
    assert "cap (1200 records)" in message and "nppes_queries.csv" in message
    assert max(_skips(server, CAPPED_CITY)) == 1000  # never asked past what the registry allows


def test_nppes_error_payload_with_http_200_is_an_error(
    project: Project, server: ApiTestServer
) -> None:
    errors = {"Errors": [{"description": "Field skip must be between 0 and 1000", "number": "4"}]}
    server.inject("skip=200", Fault(200, json.dumps(errors).encode()))

    with pytest.raises(ApiError, match=r"^NPPES: GET /api/\?.*skip=200.* returned errors: Field"):
        nppes_search(server, {"city": PAGED_CITY, "state": "MA"})


def test_nppes_number_lookup_keeps_npis_as_strings(project: Project, server: ApiTestServer) -> None:
    source = load_metadata().api_source(ApiSourceName.NPPES)
    wanted = [valid_npi(0), valid_npi(5), valid_npi(9_999_999)]  # the last one is not registered
    with nppes_resource(server).open(source) as client:
        found = client.lookup(wanted)

    frame = parse_nppes(
        pl.LazyFrame(
            {"raw": [json.dumps(r.record) for r in found], "search": ["npi_list"] * len(found)}
        )
    ).collect()
    assert sorted(frame.get_column("npi")) == sorted(wanted[:2])
    assert {type(r.record["number"]) for r in found} <= {str, int}


def test_429_is_retried_after_the_servers_retry_after(
    project: Project, server: ApiTestServer
) -> None:
    server.inject("skip=0", Fault(429, b"slow down", {"Retry-After": "1"}))
    started = time.monotonic()

    results = nppes_search(server, {"city": PAGED_CITY, "state": "MA"})

    assert len(results) == 450
    assert time.monotonic() - started >= 1.0  # not the 0.01 s backoff of the test resource
    assert _skips(server, PAGED_CITY) == [0, 0, 200, 400]


def test_500_then_success_is_retried(project: Project, server: ApiTestServer) -> None:
    server.inject("skip=200", Fault(500, b"oops"), Fault(503, b"again"))

    results = nppes_search(server, {"city": PAGED_CITY, "state": "MA"})

    assert len(results) == 450
    assert _skips(server, PAGED_CITY) == [0, 200, 200, 200, 400]


def test_persistent_server_error_fails_naming_source_and_path(
    project: Project, server: ApiTestServer
) -> None:
    server.inject("skip=200", *[Fault(500, b"down")] * 4)

    with pytest.raises(ApiError) as caught:
        nppes_search(server, {"city": PAGED_CITY, "state": "MA"})

    assert re.match(r"NPPES: GET /api/\?\S*skip=200\S* failed after 4 attempt", str(caught.value))
    assert str(caught.value).endswith("HTTP 500")


def test_timeout_is_retried_then_fails_clearly(project: Project, server: ApiTestServer) -> None:
    server.inject("skip=0", Fault(delay=0.6))
    assert (
        len(nppes_search(server, {"city": PAGED_CITY, "state": "MA"}, timeout_seconds=0.3)) == 450
    )

    server.inject("skip=0", *[Fault(delay=0.6)] * 2)
    with pytest.raises(ApiError, match=r"^NPPES: GET /api/\?.* failed after 2 attempt.*timed out"):
        nppes_search(
            server, {"city": PAGED_CITY, "state": "MA"}, timeout_seconds=0.3, max_retries=1
        )


def test_malformed_json_is_a_clear_error(project: Project, server: ApiTestServer) -> None:
    server.inject("skip=0", Fault(200, b'{"result_count": 2, "results": [{"number": '))

    with pytest.raises(ApiError, match=r"^NPPES: GET /api/\?.* returned malformed JSON"):
        nppes_search(server, {"city": PAGED_CITY, "state": "MA"})


def test_connection_refused_is_retried_then_named(project: Project) -> None:
    source = load_metadata().api_source(ApiSourceName.NPPES)
    resource = NppesResource(**{**FAST, "base_url": "http://127.0.0.1:9/api/", "max_retries": 1})
    failed = r"^NPPES: GET /api/\?.* 2 attempt.*connection failed"
    with pytest.raises(ApiError, match=failed), resource.open(source) as client:
        client.fetch({"number": valid_npi(1)})


# WHO ICD -----------------------------------------------------------------------------------


def test_who_walk_reaches_every_sample_code_with_one_token(
    project: Project, server: ApiTestServer
) -> None:
    leaves, client = who_walk(server)

    codes = {json.loads(leaf.raw)["code"] for leaf in leaves}
    assert codes == {code for code, _ in WHO_ICD10_CODES}
    assert len(codes) == 83 < len(ICD10_CODES)  # WHO alone leaves 98 US codes without a row
    assert client.token.fetched == 1
    entity_requests = server.seen("/icd/release/10/")
    assert len(entity_requests) == client.entities == len(who_icd_entities()) - 1  # no root
    assert all(r.headers["api-version"] == "v2" for r in entity_requests)
    assert all(r.headers["accept-language"] == "en" for r in entity_requests)
    assert all(r.headers["authorization"].startswith("Bearer ") for r in entity_requests)
    by_code = {json.loads(leaf.raw)["code"]: leaf for leaf in leaves}
    assert (by_code["E11.9"].chapter, by_code["E11.9"].block) == ("IV", "E10-E14")
    assert (by_code["I10"].chapter, by_code["I10"].block) == ("IX", "I10-I15")


def test_token_expiring_mid_walk_is_refreshed_and_the_walk_continues(
    project: Project, server: ApiTestServer
) -> None:
    server.inject("/icd/release/10/2019/", *[Fault()] * 60, Fault(revoke_tokens=True))

    leaves, client = who_walk(server, max_concurrency=3)

    assert len(leaves) == len(WHO_ICD10_CODES)
    assert client.token.fetched == 2
    assert len(server.seen("/connect/token")) == 2
    token_forms = [r for r in server.requests if r.target == "/connect/token"]
    assert all(r.method == "POST" for r in token_forms)


def test_token_is_cached_until_shortly_before_it_expires(server: ApiTestServer) -> None:
    server.replay.token_ttl_seconds = 3600
    now = [0.0]
    with httpx.Client() as http_client:
        http = ApiHttp("WHO ICD", http_client, RetryPolicy(0, 0.0), RateLimiter(None))
        token = ClientCredentialsToken(
            http, f"{server.url}/connect/token", CLIENT_ID, SECRET, clock=lambda: now[0]
        )
        first = token.get()
        now[0] = 3539.0  # refreshed 60 s before the announced expiry
        assert token.get() == first and token.fetched == 1
        now[0] = 3540.0
        assert token.get() != first and token.fetched == 2


def test_token_refused_names_source_and_path_but_never_the_secret(
    project: Project, server: ApiTestServer
) -> None:
    echo = json.dumps({"error": f"invalid_client {SECRET}"}).encode()
    server.inject("/connect/token", Fault(400, echo))

    with pytest.raises(ApiError) as caught:
        who_walk(server)

    message = str(caught.value)
    assert message.startswith("WHO ICD: POST /connect/token refused the client credentials")
    assert SECRET not in message and "***" in message


def test_wrong_secret_is_refused_by_the_token_endpoint(
    project: Project, server: ApiTestServer
) -> None:
    with pytest.raises(ApiError, match=r"^WHO ICD: POST /connect/token .* HTTP 400 invalid_client"):
        who_walk(server, client_secret="not-the-secret")


def test_who_faults_mid_walk_fail_the_walk_clearly(project: Project, server: ApiTestServer) -> None:
    server.inject("/2019/I10", Fault(429, b"", {"Retry-After": "0"}), Fault(502, b""))
    leaves, client = who_walk(server)
    assert len(leaves) == len(WHO_ICD10_CODES)
    assert client.http.stats.retries == 2

    server.inject("/2019/J44", Fault(200, b"<html>maintenance</html>"))
    with pytest.raises(ApiError, match=r"^WHO ICD: GET /icd/release/10/2019/J44.* malformed JSON"):
        who_walk(server)


def test_unknown_root_code_names_the_metadata_to_fix(
    project: Project, server: ApiTestServer
) -> None:
    project.edit_metadata("api_sources.csv", "XXI XXII", "XXI XXIII")
    with pytest.raises(ApiError, match=r"2019/XXIII returned HTTP 404.*root_codes"):
        who_walk(server)


def test_live_mode_without_credentials_fails_clearly(project: Project) -> None:
    source = load_metadata().api_source(ApiSourceName.WHO_ICD)
    needs = "RCM_WHO_CLIENT_ID and RCM_WHO_CLIENT_SECRET"
    with pytest.raises(ApiError, match=needs), WhoIcdResource(mode="live").open(source):
        pass


# Retries, backoff, rate limit --------------------------------------------------------------


def test_retry_policy_backs_off_exponentially_with_jitter() -> None:
    policy = RetryPolicy(max_retries=5, backoff_seconds=1.0, max_backoff_seconds=8.0)
    for retry, ceiling in enumerate([1, 2, 4, 8, 8]):
        waits = [policy.delay(retry) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jittered
    assert policy.delay(0, retry_after=30.0) == 30.0


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_http_date_retry_after_sets_the_wait(project: Project, server: ApiTestServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=42), usegmt=True)
    server.inject("skip=0", Fault(503, b"", {"Retry-After": when}))
    waits: list[float] = []
    settings = NppesResource(**FAST).settings(load_metadata().api_source(ApiSourceName.NPPES))
    with httpx.Client() as http_client:
        http = ApiHttp("NPPES", http_client, settings.policy, RateLimiter(None), sleep=waits.append)
        client = NppesClient(http, _with_base(settings, f"{server.url}/api"), LOG)
        assert len(client.search({"city": PAGED_CITY})) == 450
    assert len(waits) == 1 and 38 <= waits[0] <= 42


def test_rate_limiter_spaces_request_starts() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert clock[0] == pytest.approx(1.0)  # 5 starts at 4/s: 0, .25, .5, .75, 1.0
    assert slept == pytest.approx([0.25] * 4)


def _with_base(settings: ApiSettings, base_url: str) -> ApiSettings:
    return replace(settings, base_url=base_url)


# Pure transforms ---------------------------------------------------------------------------


def test_npi_check_digit_agrees_with_the_generator() -> None:
    valid = [valid_npi(n * 7919) for n in range(200)]
    invalid = [npi[:9] + str((int(npi[9]) + 1) % 10) for npi in valid]
    odd = ["123", "12345678901", "abcdefghij", "", None]
    frame = pl.DataFrame({"npi": valid + invalid + odd}).select(
        npi_check_digit_valid(pl.col("npi"))
    )
    assert frame.to_series().to_list() == [True] * 200 + [False] * 205
    assert valid_npi(12345678)[-1] == str(npi_check_digit("112345678"))
    assert npi_check_digit("123456789") == 3  # CMS's published example: 1234567893


def test_nppes_parsing_is_permissive_about_shapes() -> None:
    person = nppes_individual(valid_npi(1), "Ann", "Lee", "Cardiologist")
    person["number"] = int(person["number"])
    organization = nppes_organization(valid_npi(2, "2"), "CLINIC")
    organization["number"] = str(organization["number"])
    no_primary = nppes_individual(valid_npi(3), "Bo", "Kim", "Unknown")
    no_primary["taxonomies"][0]["primary"] = False
    no_primary["addresses"] = [{"address_purpose": "MAILING", "city": "X"}]
    sparse = {"number": valid_npi(4), "basic": {}}
    raw = pl.LazyFrame(
        {
            "raw": [json.dumps(r) for r in (person, organization, no_primary, sparse, person)],
            "search": ["npi_list", "q1", "npi_list", "npi_list", "q2"],
        }
    )
    requested = requested_npis(
        pl.LazyFrame(
            {
                "datasource": ["hos-a", "hos-b", "hos-a", "hos-a"],
                "npi": [valid_npi(1), f" {valid_npi(1)} ", "1234567890", valid_npi(99)],
            }
        )
    )

    frame = npi_extract(parse_nppes(raw), requested).collect()
    rows = {row["npi"]: row for row in frame.iter_rows(named=True)}

    assert rows[valid_npi(1)]["first_name"] == "ANN"
    assert rows[valid_npi(1)]["searches"] == "npi_list,q2"
    assert rows[valid_npi(1)]["emr_datasources"] == "hos-a,hos-b"
    assert rows[valid_npi(1)]["primary_taxonomy_code"] == "207RC0000X"
    assert json.loads(rows[valid_npi(1)]["taxonomies_json"])[0]["code"] == "207RC0000X"
    assert rows[valid_npi(1)]["address_purpose"] == "LOCATION"
    assert rows[valid_npi(2, "2")]["organization_name"] == "CLINIC"
    assert rows[valid_npi(2, "2")]["authorized_official_last_name"] == "MORGAN"
    assert rows[valid_npi(2, "2")]["first_name"] is None
    assert rows[valid_npi(3)]["primary_taxonomy_code"] == "208D00000X"  # the first one
    assert rows[valid_npi(3)]["city"] == "X"  # no LOCATION address: the first one
    assert rows[valid_npi(4)]["lookup_status"] == "found"
    assert rows["1234567890"]["lookup_status"] == "invalid_npi"
    assert rows["1234567890"]["npi_check_digit_valid"] is False
    assert rows[valid_npi(99)]["lookup_status"] == "not_found"
    assert frame.height == 6 and all(len(npi) == 10 for npi in rows)


ORDER_FILE = """\
00001 A00     0 Cholera                                                      Cholera
00002 A000    1 Cholera due to Vibrio cholerae 01, biovar cholerae           Cholera due to Vibrio cholerae 01, biovar cholerae
00003 A09     1 Infectious gastroenteritis and colitis, unspecified          Infectious gastroenteritis and colitis, unspecified
00004 E1122   1 Type 2 diabetes mellitus w diabetic chronic kidney disease   Type 2 diabetes mellitus with diabetic chronic kidney disease
"""  # noqa: E501 (the CMS layout is wider than our lines)


def test_cms_order_file_fixed_width_layout() -> None:
    records = cms_order_records(pl.LazyFrame({"line": ORDER_FILE.splitlines()}))
    codes = icd_codes_from_cms(records, "2025", "icd10cm/order.txt").collect()

    assert codes.get_column("code").to_list() == ["A00.0", "A09", "E11.22"]
    assert codes.row(2, named=True)["title"] == (
        "Type 2 diabetes mellitus with diabetic chronic kidney disease"
    )
    assert codes.row(2, named=True)["short_title"].startswith("Type 2 diabetes mellitus w ")
    assert codes.get_column("category_code").to_list() == ["A00", "A09", "E11"]
    assert set(codes.get_column("release")) == {"2025"}


def test_cms_order_file_layout_breaks_are_flagged_by_line() -> None:
    text = ORDER_FILE + "\nA09 Infectious gastroenteritis\n"
    records = cms_order_records(pl.LazyFrame({"line": text.splitlines()})).collect()
    bad = records.filter(~pl.col("layout_ok"))
    assert bad.get_column("line_number").to_list() == [6]


def test_replay_fixtures_match_the_sample_providers_and_codes() -> None:
    providers = pl.DataFrame(
        {
            "NPI": [valid_npi(1), valid_npi(2), None],
            "FirstName": ["Ann", "Bo", "Cy"],
            "LastName": ["Lee", "Kim", "Ng"],
            "Specialization": ["Cardiologist", "Pediatrician", "Internist"],
        }
    )
    records = nppes_records(providers)
    assert {valid_npi(1), valid_npi(2)} <= _npis(records)
    assert {r["enumeration_type"] for r in records} == {"NPI-1", "NPI-2"}
    entities = who_icd_entities()
    leaves = {e["code"] for e in entities.values() if "code" in e and not e.get("child")}
    assert leaves == {code for code, _ in WHO_ICD10_CODES}
    assert all(re.fullmatch(r"[A-Z][0-9]{2}(\.[0-9])?", code) for code in leaves)
    assert all(uri.startswith("http://id.who.int/") for e in entities.values()
               for uri in e.get("child", []))  # fmt: skip


def test_who_replay_serves_no_icd10cm_only_code(project: Project) -> None:
    entities = who_icd_entities()
    served = {e["code"] for e in entities.values() if "code" in e}

    # ICD-10-CM only: a 2nd digit or a letter after the dot, a US-only category or subdivision.
    for code in ("E11.22", "F32.A", "S06.0X0A", "G89.29", "Z79.4", "R05.9", "N18.6", "O80"):
        assert code not in served, code
    assert "E08-E13" not in served and "E10-E14" in served  # WHO's diabetes block
    assert {code for code, _ in WHO_ICD10_CODES} <= served
    assert len(ICD10_CODES) - len(WHO_ICD10_CODES) == 98
    # The walk's root_codes are exactly the chapters holding WHO codes: none would answer 404.
    chapters = [uri.rsplit("/", 1)[1] for uri in entities["2019"]["child"]]
    assert list(load_metadata().api_source(ApiSourceName.WHO_ICD).root_codes) == chapters
    assert "XIX" not in chapters  # the injury codes (S06.0X0A, ...) are all ICD-10-CM only


# Metadata ----------------------------------------------------------------------------------

NPPES_ROW = "nppes,replay,https://npiregistry.cms.hhs.gov/api/,,10,2,200,30,5,1,,,providers.NPI,,"


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        (NPPES_ROW, NPPES_ROW.replace(",200,", ",500,"), r"line 2, column page_size: .*200"),
        (NPPES_ROW, NPPES_ROW.replace("replay", "offline"), r"line 2, column mode: .*'replay'"),
        (NPPES_ROW, NPPES_ROW.replace("https://npi", "http://npi"), r"line 2, column base_url"),
        (NPPES_ROW, NPPES_ROW.replace("providers.NPI", "doctors.NPI"),
         r"line 2, column npi_source: 'doctors' is not a table of load_config.csv"),
        (",2019,", ",,", r"line 3, column release: who_icd needs a release"),
        ("XXI XXII", "XXI xxii", r"line 3, column root_codes: .*chapter or block codes"),
    ],
    ids=["page-size", "mode", "plain-http", "npi-table", "release", "root-codes"],
)  # fmt: skip
def test_api_sources_errors_name_file_line_column(
    project: Project, old: str, new: str, pattern: str
) -> None:
    project.edit_metadata("api_sources.csv", old, new)
    with pytest.raises(MetadataError) as caught:
        load_metadata()
    assert str(project.metadata / "api_sources.csv") in str(caught.value)
    assert re.search(pattern, str(caught.value)), str(caught.value)


def test_nppes_query_by_state_alone_is_refused(project: Project) -> None:
    project.append_metadata("nppes_queries.csv", "ma_all,,,MA,,,everything in MA")
    with pytest.raises(MetadataError, match=r"nppes_queries.csv, line 2, column city: give a"):
        load_metadata()
