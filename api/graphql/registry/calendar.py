"""Community office hours and holidays: the clock SLA targets run on."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry import relay

from api.core.business_hours import BusinessCalendar
from api.core.errors import DomainError
from api.graphql.context import Info
from api.graphql.errors import NotFoundError, ValidationError, to_user_error
from api.graphql.pagination import decode_id
from api.registry import calendar as registry_calendar

MAX_HOLIDAYS = 400


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(value: str, field: str) -> int:
    try:
        hours, mins = value.split(":")
        total = int(hours) * 60 + int(mins)
    except ValueError:
        raise DomainError("Write times as HH:MM.", field=field) from None
    if not 0 <= total <= 24 * 60 or not 0 <= int(mins) < 60:
        raise DomainError("Write times as HH:MM within the day.", field=field)
    return total


@strawberry.type(description="Office hours of one weekday (China time).")
class OfficeHours:
    weekday: int = strawberry.field(description="0 = Monday … 6 = Sunday.")
    opens: str = strawberry.field(description="Opening time, HH:MM.")
    closes: str = strawberry.field(description="Closing time, HH:MM.")


@strawberry.type(description="A community's office hours and holidays; SLA targets count only this time.")
class CommunityCalendar:
    week: list[OfficeHours] = strawberry.field(description="Open weekdays; days not listed are closed.")
    holidays: list[dt.date] = strawberry.field(description="Days the office is closed.")

    @classmethod
    def from_calendar(cls, calendar: BusinessCalendar) -> CommunityCalendar:
        return cls(
            week=[
                OfficeHours(weekday=day, opens=_hhmm(hours[0]), closes=_hhmm(hours[1]))
                for day, hours in sorted(calendar.week.items())
            ],
            holidays=sorted(calendar.holidays),
        )


@strawberry.input(description="Office hours of one weekday.")
class OfficeHoursInput:
    weekday: int = strawberry.field(description="0 = Monday … 6 = Sunday.")
    opens: str = strawberry.field(description="Opening time, HH:MM.")
    closes: str = strawberry.field(description="Closing time, HH:MM.")


@strawberry.input(description="A community's office hours and holidays.")
class SetCommunityCalendarInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    week: list[OfficeHoursInput] = strawberry.field(description="Open weekdays (at most 7).")
    holidays: list[dt.date] = strawberry.field(default_factory=list, description="Closed days (at most 400).")


@strawberry.type(description="The calendar was saved.")
class SetCommunityCalendarSuccess:
    calendar: CommunityCalendar = strawberry.field(description="The calendar now in force.")


SetCommunityCalendarResult = Annotated[
    SetCommunityCalendarSuccess | ValidationError | NotFoundError,
    strawberry.union("SetCommunityCalendarResult", description="The calendar, or why it was refused."),
]


@strawberry.type
class CalendarQuery:
    @strawberry.field(description="A community's office hours and holidays.")
    async def community_calendar(
        self, info: Info, community_id: Annotated[relay.GlobalID, strawberry.argument(description="The community.")]
    ) -> CommunityCalendar:
        cid = decode_id(community_id, "Community")
        if cid not in info.context.viewer.community_ids:
            raise GraphQLError("No such community.", extensions={"code": "NOT_FOUND"})
        async with info.context.db.read_session() as session:
            return CommunityCalendar.from_calendar(await registry_calendar.calendar_for(session, cid))


@strawberry.type
class CalendarMutation:
    @strawberry.mutation(description="Set a community's office hours and holidays (community admins).")
    async def set_community_calendar(
        self,
        info: Info,
        input: Annotated[SetCommunityCalendarInput, strawberry.argument(description="The mutation's input.")],
    ) -> SetCommunityCalendarResult:
        try:
            cid = decode_id(input.community_id, "Community")
            if cid not in info.context.viewer.community_ids:
                raise registry_calendar.NotFound("No such community.", field="communityId")
            if len(input.week) > 7 or len(input.holidays) > MAX_HOLIDAYS:
                raise DomainError("At most 7 weekdays and 400 holidays.", field="week")
            week: dict[int, tuple[int, int]] = {}
            for day in input.week:
                if day.weekday in week:
                    raise DomainError("Each weekday once.", field="week")
                week[day.weekday] = (_minutes(day.opens, "week"), _minutes(day.closes, "week"))
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                calendar = await registry_calendar.set_calendar(
                    uow, viewer=info.context.viewer, community_id=cid, week=week, holidays=input.holidays
                )
        except DomainError as exc:
            return to_user_error(exc, [ValidationError, NotFoundError])
        return SetCommunityCalendarSuccess(calendar=CommunityCalendar.from_calendar(calendar))
