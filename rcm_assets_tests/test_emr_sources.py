"""resources/emr_sources.py: URI resolution, redaction, readable errors from real databases."""

import pytest

from rcm_assets.errors import SourceError
from rcm_assets.metadata import load_metadata
from rcm_assets.resources import EmrSourcesResource
from rcm_assets.resources.emr_sources import SourceDatabase, redact_uri
from rcm_assets_tests.conftest import Project, postgres_or_skip


def test_redact_uri_hides_only_the_password() -> None:
    assert redact_uri("postgresql://rcm:p%40ss@db:5432/emr") == "postgresql://rcm:***@db:5432/emr"
    assert redact_uri("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"


def test_embedded_default_and_environment_override(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_metadata().databases["healthcare-rcm-hospital-a"]
    resource = EmrSourcesResource()
    default = resource.open(spec, "hos-a")
    assert default.uri == f"sqlite://{project.home}/sources/healthcare-rcm-hospital-a.db"
    assert default.dialect == "sqlite"
    monkeypatch.setenv(spec.uri_env_var, "postgresql://u:pw@h:5432/db")
    assert resource.open(spec, "hos-a").dialect == "postgres"


def test_missing_sqlite_file_says_how_to_fix(project: Project) -> None:
    source = SourceDatabase("db-x", "hos-x", f"sqlite://{project.home}/nope.db")
    with pytest.raises(
        SourceError, match=r"datasource hos-x: database db-x not found .*rcm generate"
    ):
        source.columns("dbo", "patients")


def test_unsupported_scheme_is_named() -> None:
    with pytest.raises(SourceError, match=r"unsupported URI scheme 'oracle'"):
        _ = SourceDatabase("db-x", "hos-x", "oracle://u:p@h/db").dialect


@pytest.mark.postgres
def test_postgres_errors_are_readable_and_redacted() -> None:
    server = postgres_or_skip()
    wrong = server.replace("postgres@", "nobody:Hunter2@", 1).rsplit("/", 1)[0] + "/nodb"
    with pytest.raises(SourceError) as caught:
        SourceDatabase("db-x", "hos-x", wrong).columns("dbo", "patients")
    assert "datasource hos-x" in str(caught.value)
    assert "Hunter2" not in str(caught.value)
    missing = SourceDatabase("db-x", "hos-x", server)
    with pytest.raises(SourceError, match=r"table dbo.no_such_table not found in database db-x"):
        missing.columns("dbo", "no_such_table")
