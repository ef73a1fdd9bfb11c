"""Routing: match a request head to the first route that wants it."""

from bascule.routing.actions import Action, ProxyTo, Redirect, Respond
from bascule.routing.host import normalize_host
from bascule.routing.route import HeaderLookup, Route
from bascule.routing.router import Router

__all__ = [
    "Action",
    "HeaderLookup",
    "ProxyTo",
    "Redirect",
    "Respond",
    "Route",
    "Router",
    "normalize_host",
]
