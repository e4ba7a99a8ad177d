"""Stage timer for cost comparisons: wall time, process CPU time and peak resident memory per stage.

Why both clocks: on a shared machine wall time moves with other load, CPU time much less; a ratio of
two methods is only trusted when they were measured side by side (interleaved A B A B, see
``interleave``), so slow drift of the machine affects both equally.
Peak memory is the process's peak RSS sampled by a background thread during the stage (the kernel's
own ``ru_maxrss`` never goes down, so it cannot attribute a peak to a later stage).
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import pandas as pd
import psutil


@dataclass
class StageTime:
    stage: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    meta: dict = field(default_factory=dict)


class _PeakSampler(threading.Thread):
    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(os.getpid())
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.peak


class StageTimer:
    """Collects ``StageTime`` records; ``with timer.stage("pas/probe", subject=3): ...``."""

    def __init__(self) -> None:
        self.records: list[StageTime] = []

    @contextmanager
    def stage(self, name: str, **meta) -> Iterator[None]:
        sampler = _PeakSampler()
        sampler.start()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            peak = sampler.stop()
            self.records.append(StageTime(name, wall, cpu, peak / 2**20, dict(meta)))

    def add(self, name: str, wall_s: float, cpu_s: float, peak_rss_mb: float = float("nan"), **meta) -> None:
        """Record a stage measured elsewhere (e.g. time spent inside a training callback)."""
        self.records.append(StageTime(name, wall_s, cpu_s, peak_rss_mb, dict(meta)))

    def frame(self) -> pd.DataFrame:
        rows = [{**{k: v for k, v in asdict(r).items() if k != "meta"}, **r.meta} for r in self.records]
        return pd.DataFrame(rows)


class Stopwatch:
    """Wall and CPU time summed over the intervals it runs: ``with watch: ...``, and inside it
    ``pause()``/``resume()`` to leave out a nested piece of work timed by another stopwatch."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self._start: tuple[float, float] | None = None

    def resume(self) -> None:
        if self._start is None:
            self._start = (time.perf_counter(), time.process_time())

    def pause(self) -> None:
        if self._start is not None:
            wall0, cpu0 = self._start
            self.wall_s += time.perf_counter() - wall0
            self.cpu_s += time.process_time() - cpu0
            self._start = None

    def __enter__(self) -> "Stopwatch":
        self.resume()
        return self

    def __exit__(self, *exc) -> None:
        self.pause()


def maybe_stage(timer: "StageTimer | None", name: str, **meta):
    """``timer.stage(...)`` when a timer is given, else a no-op context (methods time themselves optionally)."""
    return timer.stage(name, **meta) if timer is not None else nullcontext()


def interleave(subjects: Sequence, methods: Sequence[str]) -> list[tuple[object, str]]:
    """Run order A B A B ...: per subject every method once, alternating which goes first.

    Alternation cancels a systematic first-runner (or second-runner) effect such as a warm cache.
    """
    order: list[tuple[object, str]] = []
    for i, subject in enumerate(subjects):
        names = list(methods) if i % 2 == 0 else list(reversed(methods))
        order.extend((subject, name) for name in names)
    return order

