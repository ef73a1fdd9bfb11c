"""The L4 stream proxy: a tcp listener pipes each connection's bytes, both ways and
untouched, to a target of an upstream (chosen by the balancer, or by the TLS server name
with `sni_routes`), with PROXY protocol headers in or out where configured."""

from bascule.tcp.connection import ClientConnection, TargetConnection
from bascule.tcp.context import TcpListenerContext, TcpPlan

__all__ = ["ClientConnection", "TargetConnection", "TcpListenerContext", "TcpPlan"]
