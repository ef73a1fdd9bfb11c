"""Telemetry: the access log."""
