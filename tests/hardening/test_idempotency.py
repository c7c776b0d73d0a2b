"""Idempotency-Key: a retried creating request replays the first answer and creates nothing twice."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from api.registry.models import Household

CREATE = """
mutation($input: CreateHouseholdInput!) {
  createHousehold(input: $input) {
    __typename
    ... on CreateHouseholdSuccess { household { id room } }
    ... on UserError { code }
  }
}
"""


def _post(client, office, room: str, key: str | None):
    headers = {"Authorization": f"Bearer {office.staff.token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"query": CREATE, "variables": {"input": {"buildingId": office.building_gid, "unit": 1, "room": room}}}
    return client.post("/graphql", json=body, headers=headers)


async def _households(services) -> int:
    async with services.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(Household)) or 0)


async def test_the_same_key_replays_the_first_answer(client, services, office) -> None:
    first = await _post(client, office, "501", "key-1")
    again = await _post(client, office, "501", "key-1")
    without = await _post(client, office, "501", None)
    assert first.json()["data"]["createHousehold"]["__typename"] == "CreateHouseholdSuccess"
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert without.json()["data"]["createHousehold"]["__typename"] == "DuplicateHouseholdError"
    assert await _households(services) == 1


async def test_the_same_key_with_another_request_is_refused(client, services, office) -> None:
    await _post(client, office, "601", "key-2")
    other = await _post(client, office, "602", "key-2")
    assert other.status_code == 422
    assert other.json()["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await _households(services) == 1


async def test_concurrent_retries_create_one_household(client, services, office) -> None:
    answers = await asyncio.gather(*(_post(client, office, "701", "key-3") for _ in range(10)))
    statuses = sorted(a.status_code for a in answers)
    successes = [a for a in answers if a.status_code == 200]
    assert set(statuses) <= {200, 409}
    assert all(a.json()["data"]["createHousehold"]["__typename"] == "CreateHouseholdSuccess" for a in successes)
    assert all(a.headers.get("retry-after") == "1" for a in answers if a.status_code == 409)
    assert await _households(services) == 1


async def test_keys_belong_to_their_account(client, services, office) -> None:
    from api.core.viewer import Role
    from tests.factories import make_login

    colleague = await make_login(services, role=Role.STAFF, community=office.community)
    mine = await _post(client, office, "801", "shared-key")
    office.staff = colleague
    theirs = await _post(client, office, "802", "shared-key")
    assert mine.status_code == theirs.status_code == 200
    assert "idempotent-replayed" not in theirs.headers
    assert await _households(services) == 2


async def test_a_malformed_key_is_refused(client, office) -> None:
    answer = await _post(client, office, "901", "has space")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_IDEMPOTENCY_KEY"
