"""Listening sockets and event-loop setup."""
