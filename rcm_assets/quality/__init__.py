"""Data quality as pure functions: row rules, contracts, measures; no Dagster here."""
