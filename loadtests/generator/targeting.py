"""Which server the users talk to and how: the adapter from `--target FILE`, or the reference target at --host.

`adapter_for` reads Locust's options: only ever called inside a Locust process.
"""

from __future__ import annotations

from typing import Any

from rtcap.targets.adapter import TargetAdapter, load_adapter, reference_adapter_path

_cache: dict[tuple[str, str], TargetAdapter] = {}


def adapter_for(environment: Any) -> TargetAdapter:
    """The adapter for this Locust environment, loaded once per process; --host overrides its base_url."""
    from rtcap.loadtests.generator.options import Settings  # Locust's argument parser: only ever inside a Locust process

    settings = Settings.of(environment)
    host = (getattr(environment, "host", None) or "").rstrip("/")
    key = (settings.target, host)
    adapter = _cache.get(key)
    if adapter is None:
        adapter = load_adapter(settings.target or reference_adapter_path())
        if host:
            adapter = adapter.with_base_url(host)
        elif "{port}" in adapter.base_url:
            raise ValueError(f"{adapter.source}: base_url {adapter.base_url} has a {{port}} placeholder; give --host")
        _cache[key] = adapter
    return adapter

