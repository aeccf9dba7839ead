"""Which partition (hospital) a landing file belongs to, or why it is left in landing.

The file name decides, through the patterns of metadata/landing_files.csv. An X12 file whose
pattern names no hospital is routed by the payee / billing-provider NPI or TIN it names
(metadata/x12_identifiers.csv). A file that matches neither is never guessed: it stays in
landing and the reason is reported.
"""

from dataclasses import dataclass

from rcm_assets.metadata import LandingFormat, LandingTable, Metadata
from rcm_assets.resources.landing import LandingFile, LandingStoreResource
from rcm_assets.x12.routing import sender_identifiers

ROUTING_BYTES = 1 << 20  # the identifiers sit in each set's header: the file's start is enough


@dataclass(frozen=True)
class Route:
    datasource: str | None  # the partition; None for a table that is not per datasource
    problem: str = ""  # set when the file cannot be routed (it stays in landing)


def route_landing_file(
    metadata: Metadata, table: LandingTable, file: LandingFile, store: LandingStoreResource
) -> Route:
    match = metadata.match_landing_file(table.table, file.name)
    if match is None:
        patterns = ", ".join(p.pattern for p in metadata.patterns_for(table.table))
        return Route(
            None,
            f"{file.path}: the name matches no {table.table} pattern ({patterns}) in "
            "metadata/landing_files.csv",
        )
    if match.datasource or table.format is not LandingFormat.X12:
        return Route(match.datasource)
    head = store.read_bytes(file.path)[:ROUTING_BYTES].decode("utf-8", "replace")
    identifiers = sender_identifiers(head)
    hospitals = metadata.datasources_identified_by(identifiers)
    if len(hospitals) == 1:
        return Route(hospitals.pop())
    named = ", ".join(f"{kind.upper()} {value}" for kind, value in identifiers)
    if hospitals:
        return Route(
            None,
            f"{file.path}: names providers of several hospitals ({', '.join(sorted(hospitals))}"
            f": {named}); split the file per hospital",
        )
    return Route(
        None,
        f"{file.path}: its name carries no hospital and "
        + (
            f"none of the identifiers it names ({named}) is in metadata/x12_identifiers.csv"
            if identifiers
            else "it names no payee (835 N1*PE) or billing provider (837 NM1*85) NPI or TIN"
        ),
    )
