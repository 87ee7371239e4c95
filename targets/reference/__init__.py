"""The bundled reference target: one uvicorn process speaking polling, SSE and WebSockets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import TargetConfig

if TYPE_CHECKING:
    from .app import create_app
    from .hub import Hub
    from .server import serve

__all__ = ["Hub", "TargetConfig", "create_app", "serve"]

_LAZY = {"create_app": ".app", "Hub": ".hub", "serve": ".server"}


def __getattr__(name: str) -> Any:
    """Import the heavy parts (FastAPI, uvicorn) only when first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
