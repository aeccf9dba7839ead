"""X12 837 / 835 files into frames, on pyx12; no Dagster."""

from rcm_assets.x12.parse import X12FileRejected, X12Parse, parse_x12

__all__ = ["X12FileRejected", "X12Parse", "parse_x12"]
