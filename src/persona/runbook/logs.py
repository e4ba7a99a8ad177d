"""The runner's log: the kernels' output forwarded line by line, progress bars thinned.

A notebook can run for hours; a person following it reads the kernel's stdout and stderr on the runner's
stderr, each line prefixed with the notebook's name (``<stem> | <line>``), and a progress bar (a line the
kernel keeps rewriting with carriage returns) at most every ``PROGRESS_EVERY`` seconds.
"""

from __future__ import annotations

import logging
import sys
import time

from persona.runbook.layout import LOG

#: A progress line the kernel keeps rewriting (``\r``, e.g. tqdm) is forwarded at most this often (seconds).
PROGRESS_EVERY = 30.0


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` through tqdm, so a progress bar is not torn by the lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(verbose: bool = False) -> None:
    """The runner's and papermill's loggers print to stderr, one short line each (idempotent)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    for name, level in (("persona.runbook", logging.INFO), ("papermill", logging.INFO if verbose else logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h, _StderrHandler)] + [handler]
        logger.setLevel(level)
        logger.propagate = False


class KernelOutput:
    """A file-like sink for papermill's ``stdout_file``/``stderr_file``: each line the kernel prints is
    logged as ``<stem> | <line>``. Of a line rewritten with carriage returns (a progress bar) only what a
    terminal would show is kept, and while it is being rewritten it is logged at most every ``every`` seconds."""

    def __init__(self, stem: str, every: float = PROGRESS_EVERY):
        self.stem, self.every = stem, every
        self._partial = ""            # the line being written (no newline yet)
        self._logged = None           # what was last logged of it
        self._logged_at = float("-inf")

    @staticmethod
    def _shown(line: str) -> str:
        """What a terminal shows of a line rewritten with carriage returns: its last non-empty state."""
        return next((part for part in reversed(line.split("\r")) if part.strip()), "").rstrip()

    def _emit(self, line: str) -> None:
        if line:
            LOG.info("  %s | %s", self.stem, line)

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            shown = self._shown(line)
            if shown != self._logged:  # not when this very state was logged as progress already
                self._emit(shown)
            self._logged, self._logged_at = None, float("-inf")
        if "\r" in self._partial:
            shown, now = self._shown(self._partial), time.monotonic()
            if shown != self._logged and now - self._logged_at >= self.every:
                self._emit(shown)
                self._logged, self._logged_at = shown, now
            # keep only the state being written: from the carriage return before the last non-empty one
            start = self._partial.rfind("\r", 0, len(self._partial.rstrip("\r")))
            self._partial = self._partial[max(start, 0):]
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._partial:
            self.write("\n")
