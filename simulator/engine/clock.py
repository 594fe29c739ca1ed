"""A SimPy environment that can also wake a process at an absolute time.

SimPy schedules at ``now + delay``. A skipped-ahead stretch of decode steps ends at a time
the kernel summed step by step; reaching it as ``now + (end - now)`` can miss it by an ulp,
and then skip-ahead would no longer give the same times as stepping one at a time.
"""

from __future__ import annotations

from heapq import heappush

import simpy
from simpy.core import NORMAL

__all__ = ["Clock"]


class Clock(simpy.Environment):
    def at(self, when: float) -> simpy.Event:
        """An event that fires at exactly ``when`` (not before now)."""
        when = max(when, self.now)
        event = simpy.Event(self)
        event._ok = True
        event._value = None
        heappush(self._queue, (when, NORMAL, next(self._eid), event))
        return event
