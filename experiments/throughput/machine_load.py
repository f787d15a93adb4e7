"""What the machine is doing while the benchmark measures: other processes' load, our peak memory (Linux /proc)."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path


class OtherLoad:
    """CPU time that other processes take while we measure, from /proc/stat (Linux; else None).

    On a shared machine a trial that overlapped someone else's job is not a
    measurement of either framework; the report shows this load, and
    ``--wait-idle`` delays each trial until the machine has been idle briefly.
    """

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.ok = self._busy() is not None

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [float(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        return sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0.0)  # all but idle and iowait

    def snapshot(self) -> tuple[float, float, float] | None:
        if not self.ok:
            return None
        t = os.times()
        return time.perf_counter(), self._busy() / self.hz, t.user + t.system

    def cores_used(self, start: tuple[float, float, float] | None) -> float | None:
        """Cores that other processes kept busy, on average, since ``start``."""
        end = self.snapshot()
        if start is None or end is None or end[0] <= start[0]:
            return None
        other = (end[1] - start[1]) - (end[2] - start[2])
        return max(0.0, other / (end[0] - start[0]))

    def wait_idle(self, max_wait: float, threshold: float = 0.15, window: float = 0.2) -> None:
        """Return once other processes used under ``threshold`` cores for ``window`` s (or after ``max_wait``)."""
        deadline = time.perf_counter() + max_wait
        while self.ok and time.perf_counter() < deadline:
            start = self.snapshot()
            time.sleep(window)
            used = self.cores_used(start)
            if used is None or used < threshold:
                return


def peak_rss_kib() -> int:
    """This process's peak resident set, KiB.

    /proc's VmHWM where there is one: ru_maxrss survives exec on Linux, so a child
    started from this (large) process would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


LOAD = OtherLoad()
MAX_OTHER_LOAD = 0.1  # cores: what --wait-idle still counts as an idle machine
