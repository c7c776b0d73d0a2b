from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from strawberry.relay import GlobalID

from api.core.clock import CHINA_TZ
from api.core.viewer import Role
from api.registry.calendar import calendar_for
from api.tickets.service import Place, TicketDraft, ensure_categories, submit
from tests.factories import make_community, make_estate, make_login
from tests.tickets.conftest import category_of, viewer_of

SET = """
mutation Set($input: SetCommunityCalendarInput!) {
  setCommunityCalendar(input: $input) {
    __typename
    ... on SetCommunityCalendarSuccess { calendar { week { weekday opens closes } holidays } }
    ... on UserError { message field code }
  }
}
"""


def cid(community) -> str:
    return str(GlobalID("Community", str(community.id)))


async def test_an_admin_sets_office_hours_and_holidays(services, gql) -> None:
    # given
    community = await make_community(services.db)
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=community)
    # when
    data = await gql(
        SET,
        {"input": {"communityId": cid(community), "week": [{"weekday": 6, "opens": "09:00", "closes": "12:00"}],
                   "holidays": ["2027-01-01"]}},
        token=admin.token,
    )  # fmt: skip
    # then
    assert data["setCommunityCalendar"]["calendar"] == {
        "week": [{"weekday": 6, "opens": "09:00", "closes": "12:00"}],
        "holidays": ["2027-01-01"],
    }
    async with services.db.read_session() as session:
        calendar = await calendar_for(session, community.id)
    assert dict(calendar.week) == {6: (540, 720)}
    assert calendar.holidays == frozenset({date(2027, 1, 1)})


async def test_bad_hours_are_typed_errors_and_staff_may_not_set_them(services, gql, gql_raw) -> None:
    community = await make_community(services.db)
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=community)
    staff = await make_login(services, role=Role.STAFF, community=community)
    bad = await gql(
        SET,
        {"input": {"communityId": cid(community), "week": [{"weekday": 0, "opens": "18:00", "closes": "09:00"}]}},
        token=admin.token,
    )
    bad_time = await gql(
        SET,
        {"input": {"communityId": cid(community), "week": [{"weekday": 0, "opens": "9h", "closes": "17:00"}]}},
        token=admin.token,
    )
    refused = await gql_raw(
        SET,
        {"input": {"communityId": cid(community), "week": [{"weekday": 0, "opens": "09:00", "closes": "17:00"}]}},
        token=staff.token,
    )
    assert bad["setCommunityCalendar"]["__typename"] == "ValidationError"
    assert bad_time["setCommunityCalendar"]["field"] == "week"
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    async with services.db.read_session() as session:
        assert (await calendar_for(session, community.id)).week[0] == (510, 1050)  # the default stays


async def test_sla_targets_run_on_the_communitys_own_hours(services) -> None:
    # given: a community open only on Sundays 09:00-12:00
    estate = await make_estate(services, households=1, members=1)
    admin = await make_login(services, role=Role.COMMUNITY_ADMIN, community=estate.community)
    reporter = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=estate.residents[0])
    async with services.db.unit_of_work() as uow:
        await ensure_categories(uow, community_ids=[estate.community.id])
        from api.registry.calendar import set_calendar

        await set_calendar(
            uow, viewer=await viewer_of(services, admin), community_id=estate.community.id, week={6: (540, 720)},
            holidays=[],
        )  # fmt: skip
    category = await category_of(services, estate.community.id, "street_light")  # 60 office minutes
    friday_noon = datetime(2026, 12, 4, 12, 0, tzinfo=CHINA_TZ).astimezone(UTC)
    # when
    async with services.db.unit_of_work() as uow:
        ticket = await submit(
            uow,
            viewer=await viewer_of(services, reporter),
            draft=TicketDraft(
                category_id=category.id, description="路灯不亮", place=Place(latitude=38.0, longitude=114.5)
            ),
            now=friday_noon,
        )
    # then: the call-back is due at 10:00 on Sunday, an hour into the only open window
    assert ticket.callback_due_at == datetime(2026, 12, 6, 10, 0, tzinfo=CHINA_TZ).astimezone(UTC)
    assert ticket.callback_due_at - friday_noon > timedelta(days=1)
