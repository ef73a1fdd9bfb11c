"""Bascule: a load balancer and reverse proxy."""

__version__ = "0.1.0"
