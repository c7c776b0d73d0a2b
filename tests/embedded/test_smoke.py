"""The embedded default, booted as a real process: `linli serve` on a SQLite file, in-process queue.

One `linli serve` process per module migrates a fresh SQLite file, seeds the demo data and
runs the API with the in-process Dramatiq worker and scheduler. The tests talk to it over
HTTP as a user would, and read the file directly (read-only) to see the background work.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.registry.seed import DEMO_PASSWORD, demo_logins

pytestmark = pytest.mark.embedded

SECRET_KEY = "embedded-smoke-test-key-0123456789abcdef"
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
# uvicorn ends a SIGTERM'd process by re-raising the signal once it has shut down cleanly.
CLEAN_EXIT_CODES = (0, -signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def embedded_env(db_path: Path) -> dict[str, str]:
    """The caller's environment without any LINLI_ setting (so no Redis), plus the embedded ones.

    PYTHONUNBUFFERED is dropped too: stdout is a pipe here, as under a process manager.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_") and k != "PYTHONUNBUFFERED"}
    env.update(
        LINLI_DATABASE_URL=f"sqlite+aiosqlite:///{db_path}",
        LINLI_SECRET_KEY=SECRET_KEY,
        LINLI_ARGON2_TIME_COST="1",
        LINLI_ARGON2_MEMORY_KIB="1024",
        LINLI_ARGON2_PARALLELISM="1",
        LINLI_SCHEDULER_TICK_SECONDS="0.5",
        LINLI_OUTBOX_RELAY_INTERVAL_SECONDS="1",
        LINLI_OUTBOX_RELAY_GRACE_SECONDS="0",
    )
    return env


class Linli:
    """One `linli serve` process; its stdout and stderr are collected, merged, line by line."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
            env=embedded_env(db_path),
            cwd=db_path.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"linli serve exited with {self.proc.returncode}:\n{self.output}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"linli serve was not ready within {READY_TIMEOUT_S}s:\n{self.output}")

    def stop(self) -> int | None:
        """SIGTERM, then wait; the exit code, or None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close()
                return None
        self._close()
        return self.proc.returncode

    def _close(self) -> None:
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def gql(self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def log_in(self) -> str:
        staff = demo_logins()[0]
        data = self.gql(
            "mutation ($input: LoginInput!) { login(input: $input) { __typename ... on LoginSuccess { token } } }",
            {"input": {"phone": staff.phone, "password": DEMO_PASSWORD}},
        )
        assert data["login"]["__typename"] == "LoginSuccess"
        token: str = data["login"]["token"]
        return token


@dataclass
class Embedded:
    """The module's running server; a test that restarts it puts the new process here."""

    server: Linli


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    server = Linli(tmp_path_factory.mktemp("embedded") / "linli.db")
    holder = Embedded(server)
    try:
        server.wait_ready()
        yield holder
    finally:
        server.stop()
        holder.server.stop()


def read_only(db_path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True))


def line_index(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


# -- the first boot ---------------------------------------------------------------------------


def test_the_first_boot_seeds_and_prints_the_logins_before_it_serves(embedded) -> None:
    # given
    server = embedded.server
    staff = demo_logins()[0]
    # then: the banner is out before uvicorn reports that it serves, although stdout is a pipe
    seeded = line_index(server.lines, "Seeded 4 communities")
    login = line_index(server.lines, f"phone {staff.phone}  password {DEMO_PASSWORD}")
    graphiql = line_index(server.lines, f"GraphiQL: {server.url}/graphql")
    running = line_index(server.lines, f"Uvicorn running on {server.url}")
    assert seeded < login < graphiql < running


def test_graphiql_is_served_to_a_browser(embedded) -> None:
    # when
    response = httpx.get(f"{embedded.server.url}/graphql", headers={"Accept": "text/html"})
    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


SEEDED_PAGE = """
{
  communities {
    totalCount
    edges { node { id code name
      compounds(first: 10) { totalCount edges { node { name
        buildings(first: 1) { totalCount edges { node { name households(first: 1) { totalCount } } } } } } } } }
  }
}
"""

COUNTS = """
query ($id: ID!) {
  residents(communityId: $id, first: 1) { totalCount }
  ageingSurvey(communityId: $id) { total { residents aged60Plus aged80Plus } }
}
"""


def test_the_demo_staff_login_reads_the_seeded_community(embedded) -> None:
    # given
    server = embedded.server
    token = server.log_in()
    # when
    page = server.gql(SEEDED_PAGE, token=token)
    community = page["communities"]["edges"][0]["node"]
    counts = server.gql(COUNTS, {"id": community["id"]}, token=token)
    # then
    assert page["communities"]["totalCount"] == 1
    assert (community["code"], community["name"]) == ("mingzhu", "明珠花苑社区")
    compounds = community["compounds"]
    assert compounds["totalCount"] == 6
    assert [e["node"]["name"] for e in compounds["edges"]] == [
        "明珠花苑南区",
        "明珠花苑北区",
        "安华家园",
        "明珠园",
        "颐宏家园",
        "明珠新苑",
    ]
    for edge in compounds["edges"]:
        buildings = edge["node"]["buildings"]
        assert buildings["totalCount"] >= 1
        assert buildings["edges"][0]["node"]["households"]["totalCount"] >= 1
    residents = counts["residents"]["totalCount"]
    total = counts["ageingSurvey"]["total"]
    assert 8_800 <= residents <= 9_200
    assert 8_800 <= total["residents"] <= 9_200
    assert 0 < total["aged80Plus"] < total["aged60Plus"] < total["residents"]


REGISTER = """
mutation ($input: RegisterResidentInput!) {
  registerResident(input: $input) {
    __typename
    ... on RegisterResidentSuccess { resident { id } }
    ... on UserError { message field code }
  }
}
"""
FIRST_HOUSEHOLD = """
{ communities { edges { node { compounds(first: 1) { edges { node {
    buildings(first: 1) { edges { node { households(first: 1) { edges { node { id } } } } } } } } } } } } }
"""


def test_a_bad_id_number_is_a_typed_error(embedded) -> None:
    # given
    server = embedded.server
    token = server.log_in()
    page = server.gql(FIRST_HOUSEHOLD, token=token)
    compound = page["communities"]["edges"][0]["node"]["compounds"]["edges"][0]["node"]
    household = compound["buildings"]["edges"][0]["node"]["households"]["edges"][0]["node"]["id"]
    # when: 13010519840601001 takes the check digit 8, not 0
    data = server.gql(
        REGISTER, {"input": {"householdId": household, "name": "王五", "nationalId": "130105198406010010"}}, token=token
    )
    # then
    assert data["registerResident"] == {
        "__typename": "InvalidNationalIdError",
        "message": "The ID number's check digit is wrong; please check it again.",
        "field": "nationalId",
        "code": "INVALID_NATIONAL_ID",
    }


def background_state(db_path: Path) -> tuple[dict[str, list[str]], list[tuple[str, str | None]]]:
    """Scheduler ticks per job, and the purge job's outbox rows as (kwargs, sent_at)."""
    with read_only(db_path) as conn:
        ticks: dict[str, list[str]] = {}
        for job, key in conn.execute("SELECT job_name, period_key FROM scheduler_tick ORDER BY id"):
            ticks.setdefault(job, []).append(key)
        outbox = conn.execute(
            "SELECT kwargs, sent_at FROM outbox_message WHERE actor_name = 'accounts.purge_expired_sessions'"
        ).fetchall()
    return ticks, outbox


def test_the_in_process_scheduler_and_worker_run_the_periodic_jobs(embedded) -> None:
    # given
    server = embedded.server
    # when: waiting for a few scheduler ticks
    deadline = time.monotonic() + 20
    while True:
        ticks, outbox = background_state(server.db_path)
        done = (
            len(ticks.get("outbox.sweep", [])) >= 2
            and ticks.get("accounts.purge_expired_sessions")
            and outbox
            and all(sent_at is not None for _, sent_at in outbox)
            and "purged 0 old sessions" in server.output
        )
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # then: each period ran once, the purge job went through the outbox and the worker ran it
    assert len(set(ticks["outbox.sweep"])) == len(ticks["outbox.sweep"]) >= 2
    periods = ticks["accounts.purge_expired_sessions"]  # one, unless the run straddles midnight UTC
    assert len(set(periods)) == len(periods) >= 1
    assert sorted(json.loads(kwargs)["period_key"] for kwargs, _ in outbox) == sorted(periods)
    assert all(sent_at is not None for _, sent_at in outbox)
    for period in periods:
        assert f"purged 0 old sessions (period {period})" in server.output


# -- stop and start again ---------------------------------------------------------------------


def test_sigterm_stops_it_cleanly_and_a_second_boot_does_not_seed_again(embedded) -> None:
    # given
    first = embedded.server
    # when
    started = time.monotonic()
    code = first.stop()
    stopped_after = time.monotonic() - started
    with read_only(first.db_path) as conn:
        accounts_after_first_boot = conn.execute("SELECT count(*) FROM account").fetchone()
    second = Linli(first.db_path)
    embedded.server = second
    second.wait_ready()
    token = second.log_in()
    data = second.gql("{ communities { edges { node { code } } } }", token=token)
    # then
    assert code in CLEAN_EXIT_CODES, first.output
    assert stopped_after < STOP_TIMEOUT_S
    assert "Worker has been shut down." in first.output
    assert "Application shutdown complete." in first.output
    assert "Demo data already present; not seeding again." in second.output
    assert "Seeded" not in second.output
    assert data["communities"]["edges"] == [{"node": {"code": "mingzhu"}}]
    with read_only(second.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM community").fetchone() == (4,)
        # the demo logins and the demo volunteers' logins, created once
        assert conn.execute("SELECT count(*) FROM account").fetchone() == accounts_after_first_boot
        assert accounts_after_first_boot[0] >= len(demo_logins())
