"""Stopping a child server process the same way everywhere: signal, wait, then kill."""

from __future__ import annotations

import signal
import subprocess


def stop_process(process: subprocess.Popen[str], stop_signal: signal.Signals, grace_seconds: float) -> int:
    """Send ``stop_signal``, wait ``grace_seconds``, kill if still running; close its stdout pipe."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode
