"""Balancers: pick a target for a request from an upstream's targets."""
