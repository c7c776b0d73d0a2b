"""The reliability suite: the real stack as processes, hostile input, and faults, each with a number.

`make reliability` runs it in full (LINLI_RELIABILITY=full: 2,000+ fuzz cases, 1,000 jobs under
SIGKILL every 2 s, the restarts) and writes bench/results/reliability.md. The same tests run with
small sizes in `make test` (and so in CI), within a few minutes. Redis and PostgreSQL restarts
use a private redis-server and a private PostgreSQL cluster started by the test, so that the
shared services (and the tests running beside it) are never disturbed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

FULL = os.environ.get("LINLI_RELIABILITY") == "full"
ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "bench" / "results" / ("reliability.jsonl" if FULL else "reliability-short.jsonl")
SECRET = "reliability-secret-key-0123456789abcdefgh"


def size(short: int, full: int) -> int:
    return full if FULL else short


def record(check: str, measured: Any, criterion: str, passed: bool, **detail: Any) -> None:
    """Append one figure (written only under `make reliability`, so `make test` leaves no files)."""
    line = {"check": check, "measured": measured, "criterion": criterion, "passed": passed, **detail}
    print(f"\nFIGURE {json.dumps(line, ensure_ascii=False)}")
    if FULL:
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), **line}, ensure_ascii=False))
            f.write("\n")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until(check: Any, *, within: float, what: str, every: float = 0.2) -> float:
    """Poll `check()` until true; returns the seconds it took."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - started
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within:.0f}s: {what}")
        time.sleep(every)


# -- a private redis-server -----------------------------------------------------------------------


@dataclass
class PrivateRedis:
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._pings, within=10, what="the private redis-server answers")

    def _pings(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        """Stop without saving: everything queued in it is gone, as after a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


# -- a private PostgreSQL cluster -------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    binary = shutil.which(name)
    if binary is None:
        pytest.fail(f"PostgreSQL's {name} is not installed")
    return binary


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class PrivatePostgres:
    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/linli"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.directory / "data"), "-w", "-t", "30", *args]),
            check=True,
            capture_output=True,
        )

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            _as_postgres([_pg_bin("initdb"), "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
        self.start()
        subprocess.run(
            _as_postgres([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "linli"]),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._ctl("-o", options, "-l", str(self.directory / "log"), "start")

    def stop(self, mode: str = "immediate") -> None:
        self._ctl("-m", mode, "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    directory = Path(tempfile.mkdtemp(prefix="linli-pg-"))
    pg = PrivatePostgres(directory)
    pg.init()
    yield pg
    with contextlib.suppress(subprocess.CalledProcessError):
        pg.stop()
    shutil.rmtree(directory, ignore_errors=True)


# -- `linli serve` as a process -----------------------------------------------------------------


def linli_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    env.update(
        LINLI_SECRET_KEY=SECRET,
        LINLI_ARGON2_TIME_COST="1",
        LINLI_ARGON2_MEMORY_KIB="1024",
        LINLI_ARGON2_PARALLELISM="1",
        LINLI_SCHEDULER_TICK_SECONDS="0.5",
        LINLI_OUTBOX_RELAY_INTERVAL_SECONDS="1",
        LINLI_OUTBOX_RELAY_GRACE_SECONDS="2",
        LINLI_SEED_ON_START="false",
    )
    env.update({f"LINLI_{k.upper()}": v for k, v in settings.items()})
    return env


class Server:
    """`linli serve` on a free port; its output goes to a log file."""

    def __init__(self, log_path: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = linli_env(**settings)
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._healthy, within=60, what="linli serve answers /healthz")

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, self.log()[-3000:]
        return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(5)
        return int(self.proc.returncode)
