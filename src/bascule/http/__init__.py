"""The sans-IO HTTP/1.1 codec: heads, header rules, error responses."""
