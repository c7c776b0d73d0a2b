"""The service hall through GraphQL: procedures, applying with documents, steps in the open, the queue."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Route

from api.core.clock import CHINA_TZ
from api.core.errors import Forbidden
from api.graphql.hall.media import hall_attachment_endpoint
from api.hall import service as hall
from api.hall.models import HallApplication, HallApplicationEvent, HallAttachment
from api.hall.seed import procedure_drafts
from tests.graphql.test_statement_count import counting
from tests.hall.conftest import Desk, apply, count, db_id, gid, move, multipart, png, through_to_last_step

PROCEDURES = """
query P($c: ID!) {
  hallProcedures(communityId: $c) {
    id code kind
    current { version name timeLimitDays feeCents documents { key name required } steps { index name role } }
  }
}
"""
SUBMIT = """
mutation Submit($input: SubmitHallApplicationInput!) {
  submitHallApplication(input: $input) {
    __typename
    ... on HallApplicationSuccess {
      application { id state stateLabel dueAt attachments { slot contentType } timeline { kind handlerName handlerRole } }
    }
    ... on MissingDocumentsError { missing { key name } }
    ... on UserError { message field code }
  }
}
"""
APPLICATION = """
query A($id: ID!) {
  node(id: $id) {
    ... on HallApplication {
      id state stateLabel stepIndex handlerName applicantName rejectionReason
      currentStep { index name role }
      requestedDocuments { key name }
      procedure { version name }
      timeline { kind stepIndex stepName handlerName handlerRole note at }
      attachments { slot round }
    }
  }
}
"""
MOVE = """
mutation Move($input: MoveHallApplicationInput!) {
  acceptHallApplication(input: $input) { __typename ... on UserError { code message } }
}
"""
ADVANCE = """
mutation Move($input: MoveHallApplicationInput!) {
  advanceHallApplication(input: $input) { __typename ... on UserError { code message } }
}
"""
APPROVE = """
mutation Move($input: MoveHallApplicationInput!) {
  approveHallApplication(input: $input) {
    __typename ... on HallApplicationSuccess { application { state closedAt } } ... on UserError { code message }
  }
}
"""
REJECT = """
mutation R($input: RejectHallApplicationInput!) {
  rejectHallApplication(input: $input) {
    __typename ... on HallApplicationSuccess { application { state rejectionReason } } ... on UserError { code field }
  }
}
"""
REQUEST = """
mutation R($input: RequestHallDocumentsInput!) {
  requestHallDocuments(input: $input) {
    __typename ... on HallApplicationSuccess { application { state requestedDocuments { key } } }
    ... on UserError { code field }
  }
}
"""
RESUBMIT = """
mutation R($input: ResubmitHallDocumentsInput!) {
  resubmitHallDocuments(input: $input) {
    __typename ... on HallApplicationSuccess { application { state dueAt attachments { slot round } } }
    ... on MissingDocumentsError { missing { key } }
    ... on UserError { code }
  }
}
"""
QUEUE = """
query Q($c: ID!, $f: HallQueueFilter, $first: Int, $after: String) {
  hallQueue(communityId: $c, filter: $f, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id state dueAt } }
  }
}
"""


def submit_vars(desk: Desk, code: str, slots: list[str]) -> tuple[dict[str, Any], dict[str, bytes]]:
    documents = [{"slot": s, "file": None} for s in slots]
    files = {f"input.documents.{i}.file": png() for i in range(len(slots))}
    return {"input": {"procedureId": desk.procedure_gid(code), "documents": documents, "note": "孩子入学用"}}, files


async def test_the_published_list_has_the_five_common_procedures(gql, desk: Desk):
    data = await gql(PROCEDURES, {"c": desk.community_gid}, token=desk.resident.token)
    names = [p["current"]["name"] for p in data["hallProcedures"]]
    assert names == ["居住证明", "门禁卡办理/补办", "车辆登记/变更", "停车证", "房屋出租登记"]
    residence = data["hallProcedures"][0]["current"]
    assert residence["timeLimitDays"] == 3
    assert [s["role"] for s in residence["steps"]] == ["综合窗口", "网格员", "社区党委书记", "综合窗口"]
    assert {"key": "id_card", "name": "居民身份证", "required": True} in residence["documents"]
    # another community's list does not exist for this resident
    other = await gql(PROCEDURES, {"c": gid("Community", desk.cid + 1)}, token=desk.resident.token)
    assert other["hallProcedures"] == []


async def test_a_resident_applies_with_documents(client, services, desk: Desk, media: Path):
    # when
    variables, files = submit_vars(desk, "residence-certificate", ["id_card", "tenancy_or_deed"])
    data = await multipart(client, SUBMIT, variables, files, token=desk.resident.token)
    # then
    result = data["submitHallApplication"]
    assert result["__typename"] == "HallApplicationSuccess", result
    app = result["application"]
    assert (app["state"], app["stateLabel"]) == ("SUBMITTED", "已提交，待受理")
    assert [a["slot"] for a in app["attachments"]] == ["id_card", "tenancy_or_deed"]
    assert app["timeline"] == [{"kind": "SUBMITTED", "handlerName": "居民0-0", "handlerRole": "申请人"}]
    stored = stored_files(media)
    assert len(stored) == 2
    assert all("hall" in str(p) for p in stored)
    row = await _application(services, db_id(app["id"]))
    assert row.due_at > row.submitted_at + timedelta(days=2)
    assert row.due_at.astimezone(CHINA_TZ).strftime("%H:%M") == "17:30"  # office closing, default calendar
    assert services.jobs.actor_names == ["hall.application_changed"]


async def test_missing_documents_are_a_typed_error_and_nothing_is_kept(client, services, desk: Desk, media: Path):
    # given: only the ID card of the two required documents
    variables, files = submit_vars(desk, "residence-certificate", ["id_card"])
    # when
    data = await multipart(client, SUBMIT, variables, files, token=desk.resident.token)
    # then
    result = data["submitHallApplication"]
    assert result["__typename"] == "MissingDocumentsError"
    assert result["missing"] == [{"key": "tenancy_or_deed", "name": "房屋产权证明或租赁合同"}]
    assert result["code"] == "MISSING_DOCUMENTS"
    assert await count(services, HallApplication) == 0
    assert await count(services, HallAttachment) == 0
    assert not stored_files(media)


async def test_unknown_slot_and_other_communities(client, gql, services, desk: Desk):
    variables, files = submit_vars(desk, "door-card", ["id_card", "residence_proof", "selfie"])
    result = (await multipart(client, SUBMIT, variables, files, token=desk.resident.token))["submitHallApplication"]
    assert (result["__typename"], result["field"]) == ("ValidationError", "documents")
    # an outsider applies to this community's procedure: it does not exist for them
    variables, files = submit_vars(desk, "door-card", ["id_card", "residence_proof"])
    result = (await multipart(client, SUBMIT, variables, files, token=desk.outsider.token))["submitHallApplication"]
    assert result["__typename"] == "NotFoundError"
    # staff without a resident record cannot apply
    result = (await multipart(client, SUBMIT, variables, files, token=desk.staff.token))["submitHallApplication"]
    assert result["__typename"] == "HallNotResidentError"
    assert await count(services, HallApplication) == 0


async def test_staff_move_it_step_by_step_in_the_open(gql, gql_raw, services, desk: Desk):
    # given
    app = await apply(services, desk, "residence-certificate")
    ref = {"input": {"applicationId": gid("HallApplication", app.id), "note": "材料齐全"}}
    # a resident cannot move it; approving before the last step is refused
    denied = await gql_raw(MOVE, ref, token=desk.resident.token)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await gql(APPROVE, ref, token=desk.staff.token))["approveHallApplication"]["code"] == "WRONG_STATE"
    assert (await gql(ADVANCE, ref, token=desk.staff.token))["advanceHallApplication"]["code"] == "WRONG_STATE"
    # when: accept, then advance once (入户核实)
    assert (await gql(MOVE, ref, token=desk.staff.token))["acceptHallApplication"][
        "__typename"
    ] == "HallApplicationSuccess"
    again = (await gql(MOVE, ref, token=desk.staff.token))["acceptHallApplication"]
    assert again["__typename"] == "HallStateError"
    assert (await gql(ADVANCE, ref, token=desk.staff.token))["advanceHallApplication"][
        "__typename"
    ] == "HallApplicationSuccess"
    # then: the applicant sees each step with time, step and handler (name and role, no phone)
    seen = (await gql(APPLICATION, {"id": ref["input"]["applicationId"]}, token=desk.resident.token))["node"]
    assert seen["state"] == "IN_PROGRESS"
    assert seen["currentStep"] == {"index": 2, "name": "审核盖章", "role": "社区党委书记"}
    assert [(e["kind"], e["stepName"], e["handlerRole"]) for e in seen["timeline"]] == [
        ("SUBMITTED", "", "申请人"), ("ACCEPTED", "受理", "综合窗口"), ("ADVANCED", "入户核实", "网格员"),
    ]  # fmt: skip
    staff_name = desk.staff.account.display_name
    assert seen["timeline"][1]["handlerName"] == staff_name == seen["handlerName"]
    assert desk.staff.phone not in str(seen)
    # a neighbour cannot see it at all
    assert (await gql(APPLICATION, {"id": ref["input"]["applicationId"]}, token=desk.neighbour.token))["node"] is None
    # and: the last steps, then it is closed
    assert (await gql(ADVANCE, ref, token=desk.staff.token))["advanceHallApplication"][
        "__typename"
    ] == "HallApplicationSuccess"
    done = (await gql(APPROVE, ref, token=desk.staff.token))["approveHallApplication"]
    assert done["application"]["state"] == "COMPLETED"
    assert done["application"]["closedAt"]
    rejected = (await gql(REJECT, {"input": {"applicationId": ref["input"]["applicationId"], "reason": "x"}},
                          token=desk.staff.token))["rejectHallApplication"]  # fmt: skip
    assert rejected["__typename"] == "HallStateError"


async def test_reject_needs_a_reason_the_applicant_sees(gql, services, desk: Desk):
    app = await apply(services, desk, "door-card")
    ref = gid("HallApplication", app.id)
    blank = await gql(REJECT, {"input": {"applicationId": ref, "reason": " "}}, token=desk.staff.token)
    assert blank["rejectHallApplication"] == {"__typename": "ValidationError", "code": "INVALID", "field": "reason"}
    done = await gql(REJECT, {"input": {"applicationId": ref, "reason": "非本小区住户"}}, token=desk.staff.token)
    assert done["rejectHallApplication"]["application"] == {"state": "REJECTED", "rejectionReason": "非本小区住户"}
    seen = (await gql(APPLICATION, {"id": ref}, token=desk.resident.token))["node"]
    assert seen["timeline"][-1]["note"] == "非本小区住户"
    assert seen["currentStep"] is None


async def test_more_documents_requested_and_resubmitted_restart_the_clock(client, gql, services, desk: Desk):
    # given: accepted
    app = await apply(services, desk, "residence-certificate")
    await move(services, "accept", desk.staff_viewer, app.id)
    ref = gid("HallApplication", app.id)
    # unknown slot is refused
    bad = await gql(
        REQUEST, {"input": {"applicationId": ref, "slots": ["passport"], "note": "x"}}, token=desk.staff.token
    )
    assert bad["requestHallDocuments"]["field"] == "slots"
    # when: staff ask for a clearer lease
    asked = await gql(REQUEST, {"input": {"applicationId": ref, "slots": ["tenancy_or_deed"], "note": "租赁合同不清晰"}},
                      token=desk.staff.token)  # fmt: skip
    assert asked["requestHallDocuments"]["application"] == {
        "state": "NEEDS_DOCUMENTS", "requestedDocuments": [{"key": "tenancy_or_deed"}],
    }  # fmt: skip
    # staff cannot move it meanwhile
    assert (await gql(ADVANCE, {"input": {"applicationId": ref}}, token=desk.staff.token))["advanceHallApplication"][
        "__typename"
    ] == "HallStateError"
    # the wrong document back is a MissingDocumentsError
    wrong = await multipart(
        client, RESUBMIT, {"input": {"applicationId": ref, "documents": [{"slot": "id_card", "file": None}]}},
        {"input.documents.0.file": png()}, token=desk.resident.token,
    )  # fmt: skip
    assert wrong["resubmitHallDocuments"]["missing"] == [{"key": "tenancy_or_deed"}]
    # a neighbour cannot resubmit for them
    other = await multipart(
        client, RESUBMIT, {"input": {"applicationId": ref, "documents": [{"slot": "tenancy_or_deed", "file": None}]}},
        {"input.documents.0.file": png()}, token=desk.neighbour.token,
    )  # fmt: skip
    assert other["resubmitHallDocuments"]["__typename"] == "NotFoundError"
    before = await _application(services, app.id)
    # then: the right one goes back to the handler with a new time limit
    ok = await multipart(
        client, RESUBMIT, {"input": {"applicationId": ref, "documents": [{"slot": "tenancy_or_deed", "file": None}]}},
        {"input.documents.0.file": png(colour=(0, 0, 0))}, token=desk.resident.token,
    )  # fmt: skip
    result = ok["resubmitHallDocuments"]["application"]
    assert result["state"] == "IN_PROGRESS"
    assert [a["round"] for a in result["attachments"]] == [1, 1, 2]
    after = await _application(services, app.id)
    assert after.clock_round == 2
    assert after.due_at >= before.due_at
    assert after.warned_at is None
    async with services.db.read_session() as session:
        kinds = (await session.scalars(select(HallApplicationEvent.kind).where(
            HallApplicationEvent.application_id == app.id).order_by(HallApplicationEvent.id))).all()  # fmt: skip
    assert kinds == ["submitted", "accepted", "documents_requested", "documents_resubmitted"]


async def test_an_application_keeps_the_version_it_was_made_under(gql, services, desk: Desk):
    # given: an application under version 1
    first = await apply(services, desk, "door-card")
    # when: staff publish version 2 with a shorter limit and a new name
    async with services.db.unit_of_work() as uow:
        draft = next(d for d in _drafts(desk) if d.code == "door-card")
        await hall.publish_procedure(
            uow, viewer=desk.staff_viewer, draft=replace(draft, name="门禁卡办理", time_limit_days=1)
        )
    second = await apply(services, desk, "door-card")
    # then
    seen = [
        (await gql(APPLICATION, {"id": gid("HallApplication", a.id)}, token=desk.resident.token))["node"]["procedure"]
        for a in (first, second)
    ]
    assert seen == [{"version": 1, "name": "门禁卡办理/补办"}, {"version": 2, "name": "门禁卡办理"}]
    listed = (await gql(PROCEDURES, {"c": desk.community_gid}, token=desk.resident.token))["hallProcedures"]
    assert [p["current"]["version"] for p in listed if p["code"] == "door-card"] == [2]
    # a resident cannot publish
    async with services.db.unit_of_work() as uow:
        with pytest.raises(Forbidden):
            await hall.publish_procedure(uow, viewer=desk.resident_viewer, draft=draft)


async def test_the_queue_is_ordered_by_due_date_filtered_and_paged(gql, gql_raw, services, desk: Desk):
    # given: 5 applications with limits of 2, 3, 3, 5 and 5 working days, one of them accepted
    door = await apply(services, desk, "door-card")
    residence = [await apply(services, desk, "residence-certificate") for _ in range(2)]
    rental = [await apply(services, desk, "rental-registration") for _ in range(2)]
    await move(services, "accept", desk.staff_viewer, residence[1].id)
    closed = await apply(services, desk, "door-card")
    await move(services, "reject", desk.staff_viewer, closed.id, reason="重复申请")
    # when: the first page of 3, then the rest
    page = (await gql(QUEUE, {"c": desk.community_gid, "first": 3}, token=desk.staff.token))["hallQueue"]
    rest = (await gql(QUEUE, {"c": desk.community_gid, "first": 3, "after": page["pageInfo"]["endCursor"]},
                      token=desk.staff.token))["hallQueue"]  # fmt: skip
    # then: soonest due first, the rejected one gone
    ids = [db_id(e["node"]["id"]) for e in page["edges"] + rest["edges"]]
    assert ids == [door.id, residence[0].id, residence[1].id, rental[0].id, rental[1].id]
    assert page["totalCount"] == 5
    assert page["pageInfo"]["hasNextPage"]
    assert not rest["pageInfo"]["hasNextPage"]

    # filters
    async def ids_for(f: dict[str, Any]) -> list[int]:
        data = await gql(QUEUE, {"c": desk.community_gid, "f": f}, token=desk.staff.token)
        return [db_id(e["node"]["id"]) for e in data["hallQueue"]["edges"]]

    assert await ids_for({"procedureId": desk.procedure_gid("rental-registration")}) == [r.id for r in rental]
    assert await ids_for({"states": ["IN_PROGRESS"]}) == [residence[1].id]
    assert await ids_for({"mine": True}) == [residence[1].id]
    assert await ids_for({"assigneeId": gid("Account", desk.staff.account.id)}) == [residence[1].id]
    assert await ids_for({"unassigned": True}) == [door.id, residence[0].id, rental[0].id, rental[1].id]
    # residents do not get the queue
    denied = await gql_raw(QUEUE, {"c": desk.community_gid}, token=desk.resident.token)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = await gql_raw(QUEUE, {"c": desk.community_gid, "after": "bm9wZQ=="}, token=desk.staff.token)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def _application(services, application_id: int) -> HallApplication:
    async with services.db.read_session() as session:
        row = await session.get(HallApplication, application_id)
    assert isinstance(row, HallApplication)
    return row


def stored_files(media: Path) -> list[Path]:
    return list(media.rglob("*.png"))


def _drafts(desk: Desk) -> list[hall.ProcedureDraft]:
    return procedure_drafts(desk.cid)


__all__ = ["through_to_last_step"]


async def test_attachments_are_served_to_the_applicant_and_staff_only(gql, services, desk: Desk):
    # given: the endpoint as the app mounts it, and an application with its documents
    app = Starlette(routes=[Route("/media/hall-attachments/{attachment_id}", hall_attachment_endpoint(services))])
    submitted = await apply(services, desk, "door-card")
    seen = await gql(APPLICATION_FILES, {"id": gid("HallApplication", submitted.id)}, token=desk.resident.token)
    url = seen["node"]["attachments"][0]["url"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as http:

        async def get(token: str | None) -> int:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await http.get(url, headers=headers)
            if response.status_code == 200:
                assert response.headers["content-type"] == "image/png"
            return response.status_code

        # then
        assert await get(desk.resident.token) == 200
        assert await get(desk.staff.token) == 200
        assert await get(desk.neighbour.token) == 404
        assert await get(desk.outsider.token) == 404
        assert await get(None) == 401


APPLICATION_FILES = "query A($id: ID!) { node(id: $id) { ... on HallApplication { attachments { id url } } } }"


QUEUE_NESTED = """
query Q($c: ID!, $first: Int) {
  hallQueue(communityId: $c, first: $first) {
    totalCount
    edges { node { id procedure { name } currentStep { name } timeline { kind } attachments { slot }
                   applicantName handlerName } }
  }
}
"""


async def test_the_queue_costs_the_same_statements_for_3_or_30_applications(gql, services, desk: Desk):
    # given: 30 open applications, 10 of them accepted
    apps = await bulk_open(services, desk, 30)
    for a in apps[:10]:
        await move(services, "accept", desk.staff_viewer, a)
    counts = []
    for first in (3, 30):
        with counting(services) as statements:
            data = await gql(QUEUE_NESTED, {"c": desk.community_gid, "first": first}, token=desk.staff.token)
        assert len(data["hallQueue"]["edges"]) == first
        counts.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
    assert counts[0] == counts[1] <= 10, counts


async def bulk_open(services, desk: Desk, n: int) -> list[int]:
    """`n` door-card applications with their two documents, through the service."""
    out = []
    for _ in range(n):
        out.append((await apply(services, desk, "door-card")).id)
    return out
