"""Benchmark ingestion, curation into evidence-backed rule YAML, the review report and the backtest."""
