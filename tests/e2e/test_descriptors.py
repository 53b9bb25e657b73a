"""Running out of file descriptors degrades the agent and never kills it.

`ecs-medic run` against the simulated world; its descriptor limit is lowered to just above what it
uses, then clients hold connections open until none is left. The agent must keep running, say what
happened, and come back by itself once the connections are gone.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.sim import SCENARIOS, World
from tests.e2e.conftest import prepare


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)  # waiting on another process, not on simulated time
    return False


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count descriptors (Linux)")
def test_out_of_descriptors_the_agent_degrades_and_recovers():
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(minutes=30)) as world:
        prepare(world, SCENARIOS["healthy"])
        port = _free_port()
        env = {
            **os.environ,
            **world.environment,
            "ECS_MEDIC_POLL_INTERVAL_SECONDS": "1s",
            "ECS_MEDIC_METRICS_PORT": str(port),
            "ECS_MEDIC_LISTEN_ADDRESS": "127.0.0.1",
        }
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        base = f"http://127.0.0.1:{port}"
        held: list[socket.socket] = []
        try:
            assert _wait(lambda: _status(f"{base}/readyz") == 200, 60), "not ready in 60 s"
            in_use = len(list(Path(f"/proc/{agent.pid}/fd").iterdir()))
            soft, hard = resource.prlimit(agent.pid, resource.RLIMIT_NOFILE)
            resource.prlimit(agent.pid, resource.RLIMIT_NOFILE, (in_use + 4, hard))  # the soft limit, as ulimit -n
            for _ in range(80):  # far more than the agent may open: the kernel queues the rest
                with contextlib.suppress(OSError):
                    held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            time.sleep(4)  # several passes at the limit (another process's clock, not simulated time)
            assert agent.poll() is None, "the agent died at the descriptor limit"
            for sock in held:
                sock.close()
            held.clear()
            resource.prlimit(agent.pid, resource.RLIMIT_NOFILE, (soft, hard))
            assert _wait(lambda: _status(f"{base}/healthz") == 200, 60), "did not recover in 60 s"
            assert agent.poll() is None
        finally:
            for sock in held:
                sock.close()
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
            out, _ = agent.communicate(timeout=60)
        assert agent.returncode == 0, out[-2000:]
        assert "Too many open files" in out, "the test never reached the limit"
        assert '"event": "agent_stopped"' in out
