"""The running server: startup, signals and draining."""
