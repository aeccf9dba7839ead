"""The offline replay of the NPPES and WHO ICD-10 APIs: an httpx transport over fixtures.

`ReplayApi` answers requests from recorded-format replies (`nppes.json`, the NPPES reply shape;
`who_icd.json`, one WHO reply per path) as the real services do: NPPES search criteria, `limit`,
`skip` and its limits, `{"Errors": [...]}` with HTTP 200; the WHO token endpoint, bearer tokens
that expire, the `API-Version` header, 404 for unknown entities. Replay mode differs from live
mode only in the httpx transport (`ReplayApi.transport()`), so the demo exercises the clients'
real paging, OAuth and walking code. The demo's fixtures are written by
`rcm_assets.sample_data.api_replay`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

REPLAY_FOLDER = "replay"
NPPES_FIXTURE = "nppes.json"
WHO_FIXTURE = "who_icd.json"
WHO_ID_ROOT = "http://id.who.int/icd/release/10"
WHO_CONTEXT = "http://id.who.int/icd/contexts/contextForTopLevel.json"
TOKEN_TTL_SECONDS = 3600
NPPES_MAX_LIMIT = 200
NPPES_MAX_SKIP = 1000


def replay_dir(home: Path) -> Path:
    return Path(home) / REPLAY_FOLDER


@dataclass(frozen=True)
class ReplayReply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200) -> ReplayReply:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def _nppes_errors(description: str, field_name: str = "generic") -> ReplayReply:
    # The registry reports bad queries with HTTP 200 and an Errors list, not with a 4xx.
    return ReplayReply.json(
        {"Errors": [{"description": description, "field": field_name, "number": "04"}]}
    )


def _text_match(value: str | None, wanted: str) -> bool:
    value, wanted = (value or "").lower(), wanted.lower()
    return value.startswith(wanted[:-1]) if wanted.endswith("*") else value == wanted


def _location(record: Mapping[str, Any]) -> Mapping[str, Any]:
    addresses = record.get("addresses") or [{}]
    return next((a for a in addresses if a.get("address_purpose") == "LOCATION"), addresses[0])


NPPES_FILTERS: dict[str, Callable[[Mapping[str, Any], str], bool]] = {
    "number": lambda r, v: str(r.get("number")) == v,
    "enumeration_type": lambda r, v: r.get("enumeration_type") == v.upper(),
    "first_name": lambda r, v: _text_match(r["basic"].get("first_name"), v),
    "last_name": lambda r, v: _text_match(r["basic"].get("last_name"), v),
    "organization_name": lambda r, v: _text_match(r["basic"].get("organization_name"), v),
    "taxonomy_description": lambda r, v: any(
        v.lower().rstrip("*") in (t.get("desc") or "").lower() for t in r.get("taxonomies", [])
    ),
    "city": lambda r, v: _text_match(_location(r).get("city"), v),
    "state": lambda r, v: (_location(r).get("state") or "").upper() == v.upper(),
    "postal_code": lambda r, v: (_location(r).get("postal_code") or "").startswith(v.rstrip("*")),
}


class ReplayApi:
    """Both APIs answered from fixtures, as a function of (method, path, query, headers, body).

    Thread-safe: the replay transport is called from the WHO walker's threads. `credentials`
    (client id, secret), when given, must match at the token endpoint; otherwise any non-empty
    pair is accepted, so the demo runs with a made-up secret.
    """

    def __init__(
        self,
        nppes: list[dict[str, Any]] | None = None,
        who: dict[str, dict[str, Any]] | None = None,
        credentials: tuple[str, str] | None = None,
        token_ttl_seconds: int = TOKEN_TTL_SECONDS,
    ) -> None:
        self.nppes = nppes
        self.who = who
        self.credentials = credentials
        self.token_ttl_seconds = token_ttl_seconds
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self.tokens_issued = 0

    @classmethod
    def load(cls, folder: Path) -> ReplayApi:
        """The fixtures in `folder`; a missing file leaves its API unanswered (HTTP 503)."""
        nppes_file, who_file = Path(folder) / NPPES_FIXTURE, Path(folder) / WHO_FIXTURE
        nppes = json.loads(nppes_file.read_text())["results"] if nppes_file.is_file() else None
        who = json.loads(who_file.read_text())["entities"] if who_file.is_file() else None
        return cls(nppes, who)

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            reply = self.respond(
                request.method,
                request.url.path,
                dict(request.url.params),
                {k.lower(): v for k, v in request.headers.items()},
                request.read(),
            )
            return httpx.Response(reply.status, headers=reply.headers, content=reply.body)

        return httpx.MockTransport(handle)

    def revoke_tokens(self) -> None:
        """Forget every issued token, as if they had expired (clients get 401 next)."""
        with self._lock:
            self._tokens.clear()

    def respond(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> ReplayReply:
        if path.endswith("/connect/token"):
            return self._token(method, body)
        if "/icd/release/10" in path:
            return self._who(method, path.split("/icd/release/10", 1)[1].strip("/"), headers)
        if path.rstrip("/").endswith("/api"):
            return self._nppes(method, query)
        return ReplayReply.json({"error": f"no replay for {path}"}, 404)

    def _token(self, method: str, body: bytes) -> ReplayReply:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        if method != "POST":
            return ReplayReply.json({"error": "invalid_request"}, 405)
        if form.get("grant_type") != "client_credentials":
            return ReplayReply.json({"error": "unsupported_grant_type"}, 400)
        if "icdapi_access" not in form.get("scope", "").split():
            return ReplayReply.json({"error": "invalid_scope"}, 400)
        pair = (form.get("client_id", ""), form.get("client_secret", ""))
        if not all(pair) or (self.credentials and pair != self.credentials):
            return ReplayReply.json({"error": "invalid_client"}, 400)
        token = "replay-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl_seconds
            self.tokens_issued += 1
        return ReplayReply.json(
            {
                "access_token": token,
                "expires_in": self.token_ttl_seconds,
                "token_type": "Bearer",
                "scope": "icdapi_access",
            }
        )

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self._lock:
            expiry = self._tokens.get(token)
        return scheme.lower() == "bearer" and expiry is not None and expiry > time.monotonic()

    def _who(self, method: str, relative: str, headers: Mapping[str, str]) -> ReplayReply:
        if self.who is None:
            return ReplayReply.json({"error": "no WHO ICD fixtures in the replay folder"}, 503)
        if not self._authorized(headers):
            return ReplayReply(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if headers.get("api-version") != "v2":
            return ReplayReply(400, b"API-Version header is missing or not supported (use v2)")
        if method != "GET":
            return ReplayReply(405)
        if not relative:
            releases = sorted({path.split("/")[0] for path in self.who})
            return ReplayReply.json(
                {
                    "@context": WHO_CONTEXT,
                    "@id": WHO_ID_ROOT,
                    "release": [f"{WHO_ID_ROOT}/{r}" for r in releases],
                    "latestRelease": f"{WHO_ID_ROOT}/{releases[-1]}",
                }
            )
        entity = self.who.get(relative)
        if entity is None:
            return ReplayReply(404, b"Requested resource could not be found")
        return ReplayReply.json(entity)

    def _nppes(self, method: str, query: Mapping[str, str]) -> ReplayReply:
        if self.nppes is None:
            return ReplayReply.json({"error": "no NPPES fixtures in the replay folder"}, 503)
        if method != "GET":
            return ReplayReply(405)
        if query.get("version") != "2.1":
            return _nppes_errors("Unsupported API version; use version=2.1", "version")
        try:
            limit, skip = int(query.get("limit", "10")), int(query.get("skip", "0"))
        except ValueError:
            return _nppes_errors("Field limit and skip must be numbers", "limit")
        if not 1 <= limit <= NPPES_MAX_LIMIT:
            return _nppes_errors(f"Field limit must be between 1 and {NPPES_MAX_LIMIT}", "limit")
        if not 0 <= skip <= NPPES_MAX_SKIP:
            return _nppes_errors(f"Field skip must be between 0 and {NPPES_MAX_SKIP}", "skip")
        criteria = {k: v for k, v in query.items() if k in NPPES_FILTERS and v}
        if not criteria:
            return _nppes_errors("No valid search criteria provided")
        if set(criteria) <= {"state", "enumeration_type"}:
            return _nppes_errors("Please provide additional search criteria with state", "state")
        found = [r for r in self.nppes if all(NPPES_FILTERS[k](r, v) for k, v in criteria.items())]
        page = found[skip : skip + limit]
        return ReplayReply.json({"result_count": len(page), "results": page})
