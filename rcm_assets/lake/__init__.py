"""Delta Lake operations with delta-rs: append, delete, history, audit log, archive."""
