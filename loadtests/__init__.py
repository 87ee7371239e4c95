"""rtcap: capacity of real-time transports (polling, SSE, WebSockets), measured."""

__version__ = "0.1.0"
