"""The CMS NPI Registry (NPPES) API client: `GET <base>/?version=2.1&<criteria>&limit&skip`.

No authentication. One request per NPI (`number=`): the registry takes one number per query, so
there is nothing to batch. Searches by other criteria (nppes_queries.csv) are paged with `limit`
(at most 200) and `skip` (at most 1000): a query therefore reaches at most 1,200 records, and
the registry does not say whether more exist. A query that comes back full to that cap is split
by enumeration type (individuals, organizations); a part that still fills the cap fails the
extract with the criteria named, instead of silently losing records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pydantic import Field

from rcm_assets.metadata import ApiSource
from rcm_assets.resources.api_replay import NPPES_FIXTURE
from rcm_assets.resources.http_retry import ApiError, ApiHttp, url_path
from rcm_assets.resources.reference_api import ApiSettings, ReferenceApiResource

NPPES_VERSION = "2.1"
MAX_PAGE_SIZE = 200
MAX_SKIP = 1000
RECORD_CAP = MAX_SKIP + MAX_PAGE_SIZE
ENUMERATION_TYPES = ("NPI-1", "NPI-2")
PROGRESS_EVERY = 50
LABEL = "NPPES"

T = TypeVar("T")
R = TypeVar("R")


class NppesCapReached(ApiError):
    """A search returned the registry's maximum number of records; more may exist."""


@dataclass(frozen=True)
class NppesRecord:
    """A registry record and the search that found it (`npi_list` or an nppes_queries name)."""

    search: str
    record: dict[str, Any]


def _describe(criteria: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in criteria.items())


def run_bounded(
    items: list[T], task: Callable[[T], R], workers: int, on_done: Callable[[int], None]
) -> list[R]:
    """`task` over `items` with at most `workers` in flight; the first failure cancels the rest.

    Results come back in the order of `items`. Nothing is returned on failure, so a caller can
    never write a partial result.
    """
    results: dict[int, R] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: dict[Future[R], int] = {pool.submit(task, item): i for i, item in enumerate(items)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()
                    on_done(len(results))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [results[i] for i in range(len(items))]


class NppesClient:
    """Registry lookups and searches over one `ApiHttp` session."""

    def __init__(self, http: ApiHttp, settings: ApiSettings, log: logging.Logger) -> None:
        self.http = http
        self.settings = settings
        self.base_url = settings.base_url + "/"
        self.page_size = min(settings.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        self.workers = settings.max_concurrency
        self.log = log
        self.pages = 0

    def page(self, criteria: Mapping[str, str], skip: int) -> list[dict[str, Any]]:
        params = {"version": NPPES_VERSION, **criteria, "limit": str(self.page_size)}
        params["skip"] = str(skip)
        response = self.http.send("GET", self.base_url, params=params)
        if response.status_code != 200:
            raise self.http.unexpected(response)
        payload = self.http.json(response)
        where = f"GET {response.request.url.path}?{_describe(params)}"
        if isinstance(payload, dict) and payload.get("Errors"):
            # The registry reports a bad query as HTTP 200 with an Errors list: never "0 results".
            errors = "; ".join(
                str(e.get("description", e)) if isinstance(e, dict) else str(e)
                for e in payload["Errors"]
            )
            raise self.http.error(f"{where} returned errors: {errors}")
        results = payload.get("results") if isinstance(payload, dict) else None
        if results is None and isinstance(payload, dict) and payload.get("result_count") == 0:
            results = []
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise self.http.error(f"{where} returned no `results` list: {str(payload)[:200]}")
        self.pages += 1
        return results

    def fetch(self, criteria: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every page of one query; NppesCapReached when the registry's cap is reached."""
        records: list[dict[str, Any]] = []
        skip = 0
        while True:
            page = self.page(criteria, skip)
            records.extend(page)
            if len(page) < self.page_size:
                return records
            skip += self.page_size
            if len(records) >= RECORD_CAP or skip > MAX_SKIP:
                raise NppesCapReached(
                    f"{LABEL}: GET {url_path(self.base_url)} with {_describe(criteria)} reached "
                    f"the registry's cap ({len(records)} records)"
                )
            self.log.info(
                "%s: %s: page %d, %d record(s) so far",
                LABEL,
                _describe(criteria),
                skip // self.page_size,
                len(records),
            )

    def search(self, criteria: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every record of a query, split by enumeration type if the whole hits the cap."""
        try:
            return self.fetch(criteria)
        except NppesCapReached as capped:
            if "enumeration_type" in criteria:
                raise ApiError(
                    f"{capped}; more may exist and the registry cannot page past them. Narrow "
                    "this search in metadata/nppes_queries.csv (add a postal_code, city or "
                    "taxonomy_description)"
                ) from None
            self.log.info("%s; splitting it by enumeration type", capped)
            return [
                record
                for kind in ENUMERATION_TYPES
                for record in self.search({**criteria, "enumeration_type": kind})
            ]

    def lookup(self, npis: list[str]) -> list[NppesRecord]:
        """The registry record(s) of each NPI (none when the registry does not know it)."""

        def progress(done: int) -> None:
            if done % PROGRESS_EVERY == 0 or done == len(npis):
                self.log.info("%s: %d/%d NPI(s) looked up", LABEL, done, len(npis))

        found = run_bounded(npis, lambda npi: self.fetch({"number": npi}), self.workers, progress)
        return [NppesRecord("npi_list", record) for records in found for record in records]


class NppesResource(ReferenceApiResource):
    """The NPI Registry; settings from the `nppes` row of metadata/api_sources.csv."""

    page_size: int | None = Field(
        default=None, description="Records per page (at most 200); empty: the metadata value."
    )

    def settings(self, source: ApiSource) -> ApiSettings:
        settings = super().settings(source)
        return replace(settings, page_size=self.page_size or settings.page_size)

    @contextmanager
    def open(self, source: ApiSource, log: logging.Logger | None = None) -> Iterator[NppesClient]:
        settings = self.settings(source)
        log = log or logging.getLogger(__name__)
        with self._open_http(settings, LABEL, NPPES_FIXTURE, log) as http:
            yield NppesClient(http, settings, log)
