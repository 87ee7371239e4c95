"""AgentProbe: reads the target through an `rtcap agent` on its host (loadtests/run/agent.py), with the
interface the Sampler reads a ProcessProbe through (`role`, `read(sockstat) -> Sample`).

What each answer means to the run, so that a remote target is judged as a local one:
- 200: the agent's reading, kept as taken there (RSS, USS, CPU, fds, connections, state, and the target
  host's /proc/net/sockstat: its kernel's TCP memory, not this host's); `state` "stopped" marks the step
  unresponsive as a local SIGSTOP does. Only `t` is replaced, by this host's clock, so the sample falls in
  the step windows this host timed even when the two clocks disagree.
- 410 "gone": TargetGone, as the local probe raises it: the run stops and fails (TargetDied).
- no answer within the timeout, another status, or a body that is not a reading: NoReading. The tick gets no
  sample (never zeros), the probe stays, and a window with no target sample at all is flagged
  no_target_samples by the collect stage.
"""

from __future__ import annotations

import json
import time
import urllib.error
from dataclasses import fields, replace
from typing import Any

from rtcap.loadtests.run.sampler import NoReading, Sample, TargetGone
from rtcap.loadtests.run.urlopen import urlopen

AGENT_TIMEOUT_S = 1.0
"""Longer than an answer takes on a LAN, short enough that the sampler thread (which also samples the load
generator) is not held up for long by an agent that does not answer."""
_FIELDS = tuple(f.name for f in fields(Sample))

GONE = "gone"
"""The state the agent's /sample reports once the watched process has exited: raised here as TargetGone."""


class AgentError(RuntimeError):
    """The agent cannot be reached or is not an rtcap agent (raised before the run, not during it)."""


def agent_source(url: str) -> str:
    """samples.csv's `source` of readings taken through the agent at `url`."""
    return f"agent:{url}"


class AgentProbe:
    """Polls `GET {url}/sample` once per read."""

    def __init__(self, url: str, role: str = "target", timeout: float = AGENT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.role = role
        self.timeout = timeout
        self.source = agent_source(self.url)
        try:
            self.health = self._get("/healthz")
        except NoReading as error:
            raise AgentError(f"no rtcap agent answers at {self.url}: {error}") from error
        if not isinstance(self.health, dict) or self.health.get("agent") != "rtcap":
            raise AgentError(f"{self.url}/healthz did not answer as an rtcap agent: {str(self.health)[:200]}")
        if self.health.get("gone"):
            raise TargetGone(self.health.get("pid"), msg=f"agent {self.url}: {self.health['gone']}")

    def describe(self) -> str:
        """What is read, in words."""
        return f"{self.health.get('watching')} on {self.health.get('host')}, through the agent at {self.url}"

    def _get(self, path: str) -> Any:
        """The JSON body of GET `path`; TargetGone on 410 "gone", NoReading on anything else but a 200."""
        try:
            with urlopen(self.url + path, self.timeout) as answer:
                return json.loads(answer.read(1 << 20))
        except urllib.error.HTTPError as error:
            body = _json_or_none(error)
            if error.code == 410 and isinstance(body, dict) and body.get("state") == GONE:
                raise TargetGone(body.get("pid"), msg=f"agent {self.url}: {body.get('error')}") from None
            raise NoReading(f"agent {self.url}{path} answered {error.code}: {body}") from None
        except (OSError, ValueError) as error:  # refused, timed out, reset; a body that is not JSON
            raise NoReading(f"agent {self.url}{path}: {getattr(error, 'reason', error)}") from None

    def read(self, sockstat: tuple[int | None, int | None]) -> Sample:
        """One reading through the agent (`sockstat` is this host's: the target's comes with the reading)."""
        asked = time.time()
        body = self._get("/sample")
        answered = time.time()
        try:
            sample = Sample(**{name: body[0].get(name) for name in _FIELDS})
            if not isinstance(sample.rss_bytes, int) or not isinstance(sample.cpu_percent, (int, float)):
                raise TypeError(f"rss_bytes {sample.rss_bytes!r}, cpu_percent {sample.cpu_percent!r}")
        except (TypeError, IndexError, KeyError, AttributeError) as error:
            raise NoReading(f"agent {self.url}/sample: not a reading ({error}): {str(body)[:200]}") from None
        return replace(sample, t=(asked + answered) / 2, role=self.role, source=self.source)


def _json_or_none(error: urllib.error.HTTPError) -> Any:
    try:
        return json.loads(error.read(65536))
    except (OSError, ValueError):
        return None
