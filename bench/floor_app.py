"""The raw-query floor of the read-path benchmark: the same two answers from asyncpg and orjson alone.

A bare Starlette endpoint with an asyncpg pool, no GraphQL, no login, no scoping and no masking: it
answers the benchmark's two requests in Linli's response shape (so the benchmark's checks compare
it field by field) with hand-written SQL, two statements for the nested page (the page with its
to-one relations joined, then the last 3 events of every ticket) and one for the simple lookup.
Whatever Linli spends beyond this is the price of the GraphQL layer, the permissions and the
framework: the performance goal puts Linli at half of it or better.

    FLOOR_DSN=postgresql://… FLOOR_COMMUNITY_ID=1 uvicorn bench.floor_app:app_from_environment --factory
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PAGE = """
SELECT t.id, t.status, t.description, c.name AS category, rs.id AS reporter, h.id AS household, h.room,
       b.name AS building, r.display_name AS assignee
FROM ticket t
JOIN ticket_category c ON c.id = t.category_id
LEFT JOIN resident rs ON rs.id = t.reporter_resident_id
LEFT JOIN household h ON h.id = rs.household_id
LEFT JOIN building b ON b.id = h.building_id
LEFT JOIN responder r ON r.id = t.assignee_responder_id
WHERE t.community_id = $1
ORDER BY t.id
LIMIT 50
"""

EVENTS = """
SELECT ticket_id, kind, note, created_at FROM (
  SELECT ticket_id, id, kind, note, created_at,
         row_number() OVER (PARTITION BY ticket_id ORDER BY id DESC) AS rn
  FROM ticket_event WHERE ticket_id = ANY($1::bigint[])
) e WHERE rn <= 3 ORDER BY ticket_id, id
"""

ONE = """
SELECT t.id, t.status, r.display_name AS assignee
FROM ticket t LEFT JOIN responder r ON r.id = t.assignee_responder_id
WHERE t.id = $1
"""


def _gid(type_name: str, id_: int) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


def _db_id(gid: str) -> int:
    return int(base64.b64decode(gid).decode().partition(":")[2])


def _reporter(t: asyncpg.Record) -> dict[str, Any] | None:
    if t["reporter"] is None:
        return None
    if t["household"] is None:
        return {"household": None}
    return {"household": {"room": t["room"], "building": {"name": t["building"]}}}


def create_app(dsn: str, community_id: int) -> Starlette:
    pool: dict[str, asyncpg.Pool] = {}

    async def nested() -> dict[str, Any]:
        async with pool["pool"].acquire() as conn:
            tickets = await conn.fetch(PAGE, community_id)
            events = await conn.fetch(EVENTS, [t["id"] for t in tickets])
        per: dict[int, list[dict[str, Any]]] = {t["id"]: [] for t in tickets}
        for e in events:
            per[e["ticket_id"]].append({"kind": e["kind"], "note": e["note"], "createdAt": e["created_at"].isoformat()})
        edges = [
            {
                "node": {
                    "id": _gid("Ticket", t["id"]),
                    "status": t["status"].upper(),
                    "description": t["description"],
                    "category": {"name": t["category"]},
                    "reporter": _reporter(t),
                    "assignee": None if t["assignee"] is None else {"displayName": t["assignee"]},
                    "events": per[t["id"]],
                }
            }
            for t in tickets
        ]
        return {"data": {"tickets": {"edges": edges}}}

    async def simple(gid: str) -> dict[str, Any]:
        async with pool["pool"].acquire() as conn:
            t = await conn.fetchrow(ONE, _db_id(gid))
        if t is None:
            return {"data": {"node": None}}
        assignee = None if t["assignee"] is None else {"displayName": t["assignee"]}
        return {"data": {"node": {"id": gid, "status": t["status"].upper(), "assignee": assignee}}}

    async def graphql(request: Request) -> Response:
        body = orjson.loads(await request.body())
        gid = (body.get("variables") or {}).get("id")
        answer = await (simple(gid) if gid else nested())
        return Response(orjson.dumps(answer), media_type="application/json")

    async def healthz(_request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        pool["pool"] = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
        try:
            yield
        finally:
            await pool["pool"].close()

    return Starlette(
        routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan
    )


def app_from_environment() -> Starlette:
    return create_app(os.environ["FLOOR_DSN"], int(os.environ["FLOOR_COMMUNITY_ID"]))
