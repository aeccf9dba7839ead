"""The WHO ICD-10 API client: OAuth2 client credentials, then a walk of `child[]` links.

The token comes from `POST <token_url>` (`grant_type=client_credentials`, `scope=icdapi_access`)
and is cached until shortly before `expires_in`; a 401 from the API refreshes it once and
repeats the request, so a token that expires in the middle of a walk costs one extra request.
Entities are `GET <base>/<release>/<code>` with `API-Version: v2` and `Accept-Language: en`.
Their `child[]` URIs are `http://id.who.int/...`: the walker keeps only the path below the
base URL and calls it on the configured base, which is https (and, in tests, a local server).

The client id and secret come from the environment only (RCM_WHO_CLIENT_ID,
RCM_WHO_CLIENT_SECRET, passed as Dagster `EnvVar`s); every error and log message is scrubbed of
the secret and of the access token.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from dagster import EnvVar
from pydantic import Field

from rcm_assets.metadata import ApiMode, ApiSource
from rcm_assets.resources.api_replay import WHO_FIXTURE
from rcm_assets.resources.http_retry import ApiError, ApiHttp, url_path
from rcm_assets.resources.reference_api import ApiSettings, ReferenceApiResource
from rcm_assets.resources.secrets import resolve_secret

LABEL = "WHO ICD"
CLIENT_ID_ENV = "RCM_WHO_CLIENT_ID"
CLIENT_SECRET_ENV = "RCM_WHO_CLIENT_SECRET"
SCOPE = "icdapi_access"
# Refresh this long before the announced expiry, so a token never dies between check and use.
EXPIRY_MARGIN_SECONDS = 60.0
PROGRESS_EVERY = 100


class ClientCredentialsToken:
    """A bearer token for the WHO API, fetched once and shared by the walker's threads."""

    def __init__(
        self,
        http: ApiHttp,
        token_url: str,
        client_id: str,
        client_secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = token_url
        self._form = {
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": SCOPE,
            "grant_type": "client_credentials",
        }
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetched = 0

    @property
    def current(self) -> str | None:
        return self._token

    def get(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def refresh(self, rejected: str) -> str:
        """A new token after the API rejected `rejected` (unless another thread renewed it)."""
        with self._lock:
            if self._token == rejected or self._token is None:
                self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        response = self._http.send("POST", self._url, data=self._form)
        if response.status_code != 200:
            # Only the OAuth error code: the body of a failed token request may echo the form.
            try:
                reason = str(response.json().get("error", ""))[:100]
            except (ValueError, AttributeError):
                reason = ""
            raise self._http.error(
                f"POST {url_path(self._url)} refused the client credentials: HTTP "
                f"{response.status_code}{f' {reason}' if reason else ''} (check "
                f"{CLIENT_ID_ENV} / {CLIENT_SECRET_ENV})"
            )
        payload = self._http.json(response)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise self._http.error(f"POST {url_path(self._url)} returned no access_token")
        try:
            lifetime = float(payload.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = token
        self._expires_at = self._clock() + max(
            0.0, lifetime - min(EXPIRY_MARGIN_SECONDS, lifetime / 10)
        )
        self.fetched += 1


@dataclass(frozen=True)
class WhoLeaf:
    """A leaf code entity (raw JSON text) and the chapter and block the walk found it under."""

    raw: str
    chapter: str | None
    block: str | None


@dataclass(frozen=True)
class _Visit:
    path: str  # relative to the base URL: `2019/A00`
    chapter: str | None
    block: str | None


class WhoIcdClient:
    """Entities of one ICD-10 release, fetched with bounded concurrency."""

    def __init__(
        self,
        http: ApiHttp,
        token: ClientCredentialsToken,
        settings: ApiSettings,
        log: logging.Logger,
    ) -> None:
        self.http = http
        self.token = token
        self.settings = settings
        self.base_url = settings.base_url
        self.base_path = urlsplit(settings.base_url).path.rstrip("/")
        self.release = settings.release or ""
        self.workers = settings.max_concurrency
        self.log = log
        self.entities = 0

    def relative(self, uri: str) -> str:
        """The path of an entity URI below the base (`http://id.who.int/.../10/2019/A00` → …)."""
        path = urlsplit(uri).path
        if not path.startswith(self.base_path + "/"):
            raise self.http.error(f"child URI {uri} is not below {self.base_path}/")
        return path[len(self.base_path) + 1 :]

    def entity(self, relative: str) -> dict[str, Any]:
        url = f"{self.base_url}/{relative}"
        token = self.token.get()
        response = self.http.send("GET", url, headers=self._headers(token))
        if response.status_code == 401:
            self.log.info("%s: access token rejected; fetching a new one", LABEL)
            response = self.http.send("GET", url, headers=self._headers(self.token.refresh(token)))
            if response.status_code == 401:
                raise self.http.error(f"GET {url_path(url)} rejected a fresh access token too")
        if response.status_code == 404:
            raise self.http.unexpected(
                response, "check release and root_codes in metadata/api_sources.csv"
            )
        if response.status_code != 200:
            raise self.http.unexpected(response)
        payload = self.http.json(response)
        if not isinstance(payload, dict):
            raise self.http.error(
                f"GET {url_path(url)} returned {type(payload).__name__}, not an entity"
            )
        return payload

    def walk(self, roots: tuple[str, ...]) -> list[WhoLeaf]:
        """Every leaf code below the root chapters / blocks, in no particular order.

        Any failure cancels the walk and raises: a partial code list is never returned.
        """
        seen: set[str] = set()
        leaves: list[WhoLeaf] = []
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            pending: dict[Future[dict[str, Any]], _Visit] = {}

            def submit(visit: _Visit) -> None:
                if visit.path not in seen:
                    seen.add(visit.path)
                    pending[pool.submit(self.entity, visit.path)] = visit

            for root in roots:
                submit(_Visit(f"{self.release}/{root}", None, None))
            try:
                while pending:
                    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for future in done:
                        visit = pending.pop(future)
                        self._visited(visit, future.result(), submit, leaves)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        self.log.info("%s: walk done: %d entities, %d codes", LABEL, self.entities, len(leaves))
        return leaves

    def _visited(
        self,
        visit: _Visit,
        entity: dict[str, Any],
        submit: Callable[[_Visit], None],
        leaves: list[WhoLeaf],
    ) -> None:
        self.entities += 1
        if self.entities % PROGRESS_EVERY == 0:
            self.log.info(
                "%s: %d entities fetched, %d codes so far", LABEL, self.entities, len(leaves)
            )
        kind, code = entity.get("classKind"), entity.get("code")
        chapter = code if kind == "chapter" else visit.chapter
        block = code if kind == "block" else visit.block
        children = entity.get("child") or []
        if children:
            for child in children:
                submit(_Visit(self.relative(str(child)), chapter, block))
            return
        if not code:
            raise self.http.error(
                f"GET {url_path(self.base_path)}/{visit.path} is a leaf without a code"
            )
        leaves.append(WhoLeaf(json.dumps(entity), chapter, block))

    @staticmethod
    def _headers(token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "API-Version": "v2",
            "Accept-Language": "en",
            "Accept": "application/json",
        }


class WhoIcdResource(ReferenceApiResource):
    """The WHO ICD-10 API; settings from the `who_icd` row of metadata/api_sources.csv.

    Build it with `who_icd_resource()` so the credentials are Dagster `EnvVar`s (the UI shows the
    variable's name, never its value).
    """

    client_id: str | None = Field(
        default=None, description=f"OAuth2 client id (EnvVar {CLIENT_ID_ENV})."
    )
    client_secret: str | None = Field(
        default=None, description=f"OAuth2 client secret (EnvVar {CLIENT_SECRET_ENV})."
    )
    token_url: str | None = Field(default=None, description="Replaces the metadata token URL.")

    def settings(self, source: ApiSource) -> ApiSettings:
        settings = super().settings(source)
        return replace(settings, token_url=self.token_url) if self.token_url else settings

    def credentials(self, mode: ApiMode) -> tuple[str, str]:
        if self.client_id and self.client_secret:
            return resolve_secret(self.client_id), resolve_secret(self.client_secret)
        if mode is ApiMode.REPLAY:
            # The replay accepts any pair; a throwaway one keeps the OAuth flow real offline.
            return "rcm-replay-demo", secrets.token_urlsafe(16)
        raise ApiError(
            f"{LABEL}: live mode needs {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV} in the "
            "environment (or drop a CMS ICD-10-CM order file into the landing folder named in "
            "metadata/api_sources.csv)"
        )

    @contextmanager
    def open(self, source: ApiSource, log: logging.Logger | None = None) -> Iterator[WhoIcdClient]:
        settings = self.settings(source)
        log = log or logging.getLogger(__name__)
        client_id, secret = self.credentials(settings.mode)
        holder: list[ClientCredentialsToken] = []

        def sensitive() -> tuple[str | None, ...]:
            return (secret, holder[0].current if holder else None)

        with self._open_http(settings, LABEL, WHO_FIXTURE, log, sensitive) as http:
            if not settings.token_url:
                raise ApiError(f"{LABEL}: no token_url in metadata/api_sources.csv")
            holder.append(ClientCredentialsToken(http, settings.token_url, client_id, secret))
            yield WhoIcdClient(http, holder[0], settings, log)


def who_icd_resource(**overrides: Any) -> WhoIcdResource:
    """A WhoIcdResource whose credentials are the environment's, as Dagster EnvVars.

    A variable that is not set is left out (None) rather than passed as an EnvVar, which Dagster
    would refuse at run start; replay mode then uses a throwaway pair, live mode fails clearly.
    """
    credentials = {
        field: EnvVar(name)
        for field, name in (("client_id", CLIENT_ID_ENV), ("client_secret", CLIENT_SECRET_ENV))
        if os.environ.get(name)
    }
    return WhoIcdResource(**credentials, **overrides)
