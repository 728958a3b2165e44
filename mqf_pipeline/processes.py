"""Facts about local processes: whether a run's worker is still alive, what a process is.

A run worker is alive when a process with its PID exists, is not a zombie, and started no later than the
run did (a PID reused by a newer process is not the worker). Used by the dead-run sensor and the CLI.
"""

from __future__ import annotations

import psutil

#: Process start times are read to 1/100 s on Linux; the run's start is recorded after the worker starts.
START_SLACK_SECONDS = 2.0


def is_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether process ``pid`` runs and, if ``started_by`` (Unix seconds) is given, started by then."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_by is None or process.create_time() <= started_by + START_SLACK_SECONDS
    except psutil.AccessDenied:
        return True  # it exists; whose it is cannot be read, so it is not declared dead
    except (psutil.NoSuchProcess, ValueError):
        return False


def command_line(pid: int) -> str:
    """The command line of ``pid`` (``"(process gone)"`` if it has exited, ``"(unknown)"`` if unreadable)."""
    try:
        parts = psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        return "(process gone)"
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return "(unknown)"
    return " ".join(" ".join(parts).split()) or "(unknown)"
