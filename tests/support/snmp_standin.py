"""A stand-in SNMP device on a fake clock, as ``network.snmp`` sees a client: the session part.

For tests that need minutes and hours of a device's life (rules, the kept interface table), which
the real snmpd of test_network_snmpd.py cannot live through on a fake clock. A subclass answers
``get`` and ``walk``; the collector, its judgement and its checkpoints are the real ones.
"""

from __future__ import annotations

from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from normagent.testing import FakeClock


class StandInDevice:
    """Booted ten days before the clock's start; its session is itself."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.booted = clock.now() - timedelta(days=10)

    def uptime(self) -> int:
        """sysUpTime: hundredths of a second since ``booted``, on the fake clock."""
        return int((self.clock.now() - self.booted).total_seconds() * 100)

    # the SnmpClient's session, as poll_device uses it
    def session(self, target: str, *, auth: Any, timeout: float, retries: int = 1) -> Self:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None
