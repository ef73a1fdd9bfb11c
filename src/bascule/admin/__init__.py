"""The admin listener: the node's metrics and status, served by the admin process."""
