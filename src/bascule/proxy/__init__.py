"""The proxy engine: downstream connections, the exchange and forwarding."""
