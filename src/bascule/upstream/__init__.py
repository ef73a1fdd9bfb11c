"""Upstreams: targets, their live state and connection pools."""
