"""Metadata-driven healthcare Revenue Cycle Management lakehouse on Dagster."""
