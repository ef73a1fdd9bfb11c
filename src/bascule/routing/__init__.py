"""Routing: match a request head to the first route that wants it."""
