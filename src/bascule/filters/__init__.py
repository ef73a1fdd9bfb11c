"""Filters: steps a route applies to a request and its response."""
