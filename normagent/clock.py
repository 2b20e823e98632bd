"""Time, behind a seam: aware-UTC wall time for timestamps, a monotonic clock for durations.

Collectors and the scheduler take a ``Clock`` so tests can use ``normagent.testing.FakeClock`` and
never sleep or read the real time.

Imports nothing from normagent.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC wall time, for timestamps and reports."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for durations and schedules."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()
