"""Delta Lake operations with delta-rs, free of Dagster: addresses, writes, SCD2, audit, archive."""
