"""Silver layer: the common data model, SCD type 2, quarantine and quality checks."""
