"""rtcap's options on Locust's parser, and the Settings the users and the step shape read from it.

The options themselves are declared once, in loadtests/options.py; this module only hands them to Locust
(they appear in `locust --help` and in the web UI's start form, env vars RTCAP_*).
"""

from __future__ import annotations

from dataclasses import field, make_dataclass
from typing import Any

from locust import events

from rtcap.loadtests import options as declared


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    """Register rtcap's options with Locust's argument parser."""
    # Locust's own parser, not an argument group: only it understands include_in_web_ui and env_var.
    declared.add_locust_arguments(parser)


def _default(option: declared.Option) -> Any:
    value = declared.default(option.dest)
    if option.action == "append":
        return None
    if isinstance(value, list):
        return ",".join(map(str, value))
    return value


def _of(cls: type, environment: Any) -> Any:
    """Read the settings from a Locust environment's parsed options (defaults when Locust runs as a library
    without parsed options)."""
    parsed = getattr(environment, "parsed_options", None)
    if parsed is None:
        return cls()
    return cls(**{o.setting: o.setting_value(getattr(parsed, o.setting)) for o in declared.LOCUST
                  if hasattr(parsed, o.setting)})


Settings = make_dataclass(
    "Settings", [(o.setting, Any, field(default=_default(o))) for o in declared.LOCUST],
    frozen=True, namespace={"of": classmethod(_of),
                            "__doc__": "The options a user or the shape reads (attribute: the Locust flag's name)."},
)
Settings.__module__ = __name__
