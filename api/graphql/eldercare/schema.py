"""Queries and mutations of the eldercare domain."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from strawberry import relay

from api.core.clock import utc_now
from api.core.errors import DomainError, Forbidden, Unauthenticated, ValidationFailed
from api.eldercare import abilities, common, models, rules
from api.eldercare import oversight as oversight_service
from api.eldercare import people as people_service
from api.eldercare import service as visits_service
from api.eldercare import timebank as timebank_service
from api.graphql.context import Info
from api.graphql.eldercare.types import (
    NODE_TYPES,
    Assessment,
    AssessmentDetail,
    CarePair,
    CareTierTable,
    Elder,
    ElderCareOversight,
    ElderHealth,
    HolidayCampaign,
    TimeBankEntry,
    TimeBankStatement,
    Visit,
    Volunteer,
    VolunteerTeam,
    YoungerElderRule,
    managed,
)
from api.graphql.errors import (
    ConflictError,
    NotFoundError,
    UserError,
    ValidationError,
    auth_error,
    bad_input,
    to_user_error,
)
from api.graphql.pagination import Connection, decode_id, page_args, paged
from api.registry.models import ResidentTag

InputArg = strawberry.argument(description="The mutation's input.")
CommunityArg = Annotated[relay.GlobalID, strawberry.argument(description="The community.")]
FirstArg = Annotated[int | None, strawberry.argument(description="Page size, 1 to 100 (default 20).")]
AfterArg = Annotated[str | None, strawberry.argument(description="Cursor of the last item of the previous page.")]


# -- errors ---------------------------------------------------------------------------------------------


@strawberry.type(description="The resident is younger than the elder age (LINLI_ELDERCARE_MIN_AGE, default 60).")
class NotAnElderError(UserError):
    pass


@strawberry.type(
    description="Health data needs the elder's separate consent to health-data processing (PIPL); record it first."
)
class HealthConsentRequiredError(UserError):
    pass


@strawberry.type(description="An assessment item score is outside the item's range (see `field`).")
class ScoreOutOfRangeError(UserError):
    pass


@strawberry.type(description="The volunteer is already booked for an overlapping visit.")
class VolunteerDoubleBookedError(UserError):
    pass


@strawberry.type(description="The volunteer already looks after as many elders as they take.")
class VolunteerFullError(UserError):
    pass


@strawberry.type(description="No volunteer can take the elder (all full, or none matches the elder's preferences).")
class NoVolunteerAvailableError(UserError):
    pass


@strawberry.type(description="The visit is no longer open for this (done, missed, cancelled or under way).")
class VisitNotOpenError(UserError):
    pass


@strawberry.type(description="The visit has not been checked in: check in before checking out.")
class VisitNotCheckedInError(UserError):
    pass


@strawberry.type(description="The visit was checked in already.")
class VisitAlreadyCheckedInError(UserError):
    pass


@strawberry.type(description="There is no open offer of this visit to you (answered, withdrawn or expired).")
class VisitOfferNotOpenError(UserError):
    pass


@strawberry.type(description="The volunteer holds fewer time-bank minutes than asked for.")
class InsufficientHoursError(UserError):
    pass


@strawberry.type(description="Only the elder, a family member (guardian or household) or staff may ask for this.")
class NotARelativeError(UserError):
    pass


_TYPED: dict[type[DomainError], type[UserError]] = {
    common.NotAnElder: NotAnElderError,
    common.HealthConsentRequired: HealthConsentRequiredError,
    common.ScoreOutOfRange: ScoreOutOfRangeError,
    common.VolunteerDoubleBooked: VolunteerDoubleBookedError,
    common.VolunteerFull: VolunteerFullError,
    common.NoVolunteerAvailable: NoVolunteerAvailableError,
    common.VisitNotOpen: VisitNotOpenError,
    common.VisitNotCheckedIn: VisitNotCheckedInError,
    common.AlreadyCheckedIn: VisitAlreadyCheckedInError,
    common.VisitOfferNotOpen: VisitOfferNotOpenError,
    common.InsufficientHours: InsufficientHoursError,
    common.NotARelative: NotARelativeError,
}
ERROR_TYPES: list[type[UserError]] = list(_TYPED.values())


def _error(exc: DomainError, allowed: list[type[UserError]]) -> Any:
    gql_type = _TYPED.get(type(exc))
    if gql_type is not None and gql_type in allowed:
        return gql_type(message=exc.message, field=exc.field, code=exc.code)
    return to_user_error(exc, allowed)


def _settings(info: Info) -> common.ElderCareSettings:
    return common.ElderCareSettings.from_settings(info.context.services.settings)


def _require_manage(info: Info, community_id: int) -> None:
    try:
        common.require_manage(info.context.viewer, community_id)
    except (Forbidden, Unauthenticated) as exc:
        raise auth_error(exc) from exc


# -- inputs and results ---------------------------------------------------------------------------------


@strawberry.input(description="An emergency contact (the phone is stored encrypted and shown masked).")
class EmergencyContactInput:
    name: str = strawberry.field(description="The contact's name.")
    relation: str = strawberry.field(default="", description="How they are related, e.g. 女儿.")
    phone: str = strawberry.field(description="A mainland mobile number.")


@strawberry.input(description="Register an elder, or update their profile (staff).")
class SaveElderInput:
    resident_id: relay.GlobalID = strawberry.field(description="The resident (aged 60 or more by default).")
    living_situation: models.LivingSituation = strawberry.field(description="Who they live with.")
    care_flags: list[str] = strawberry.field(
        default_factory=list, description="Care flags that change the tier, e.g. fall_risk (at most 10)."
    )
    preferred_volunteer_gender: str | None = strawberry.field(
        default=None, description="male or female, if the elder prefers a volunteer of that gender."
    )
    emergency_contacts: list[EmergencyContactInput] = strawberry.field(
        default_factory=list, description="Emergency contacts (at most 5); replaces the previous ones."
    )


@strawberry.type(description="The elder.")
class ElderSuccess:
    elder: Elder = strawberry.field(description="The elder's profile.")


ELDER_ERRORS: list[type[UserError]] = [NotAnElderError, HealthConsentRequiredError, ValidationError, NotFoundError,
                                       ConflictError]  # fmt: skip
ElderResult = Annotated[
    ElderSuccess | NotAnElderError | HealthConsentRequiredError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("ElderResult", description="The elder, or why the change was refused."),
]


@strawberry.input(description="Record the conditions that change an elder's care (health data; needs consent).")
class RecordElderConditionsInput:
    elder_id: relay.GlobalID = strawberry.field(description="The elder.")
    conditions: list[str] = strawberry.field(description="Conditions, e.g. 高血压 (at most 30); replaces the list.")


@strawberry.input(description="Mark that an elder's condition changed, so a reassessment is due now.")
class MarkElderChangedInput:
    elder_id: relay.GlobalID = strawberry.field(description="The elder.")


@strawberry.input(description="One item score of a GB/T 42195 assessment.")
class ItemScoreInput:
    code: str = strawberry.field(description="Item code, e.g. eating (see the standard's 26 items).")
    score: int = strawberry.field(description="The score, within the item's range.")


@strawberry.input(description="A care-risk event in the 30 days before the assessment.")
class RiskEventInput:
    kind: abilities.RiskEventKind = strawberry.field(description="fall, choking, self_harm or wandering.")
    occurred_on: dt.date = strawberry.field(description="The day it happened.")


@strawberry.input(description="A GB/T 42195-2022 ability assessment (health data; needs consent).")
class RecordAssessmentInput:
    elder_id: relay.GlobalID = strawberry.field(description="The elder.")
    assessed_on: dt.date = strawberry.field(description="The day of the assessment.")
    scores: list[ItemScoreInput] = strawberry.field(description="All 26 item scores.")
    diagnosed_dementia: bool = strawberry.field(default=False, description="Diagnosed dementia (ICD F00–F03).")
    diagnosed_mental_disorder: bool = strawberry.field(
        default=False, description="Another mental or behavioural disorder diagnosed by a psychiatrist."
    )
    risk_events: list[RiskEventInput] = strawberry.field(
        default_factory=list, description="Care-risk events (at most 20)."
    )
    reason: str = strawberry.field(default="scheduled", description="initial, scheduled or change.")


@strawberry.type(description="The assessment and the elder's new level.")
class AssessmentSuccess:
    assessment: Assessment = strawberry.field(description="The assessment.")
    elder: Elder = strawberry.field(description="The elder, with the new level.")


AssessmentResult = Annotated[
    AssessmentSuccess | ScoreOutOfRangeError | HealthConsentRequiredError | ValidationError | NotFoundError,
    strawberry.union("AssessmentResult", description="The assessment, or why it was refused."),
]
ASSESSMENT_ERRORS: list[type[UserError]] = [ScoreOutOfRangeError, HealthConsentRequiredError, ValidationError,
                                            NotFoundError]  # fmt: skip


@strawberry.input(description="Read an elder's health data (holders of the health-data right; logged).")
class ViewElderHealthInput:
    elder_id: relay.GlobalID = strawberry.field(description="The elder.")
    purpose: str = strawberry.field(description="Why you need it; written to the access log.")


ElderHealthResult = Annotated[
    ElderHealth | HealthConsentRequiredError | ValidationError | NotFoundError,
    strawberry.union("ElderHealthResult", description="The health data, or why it cannot be shown."),
]


@strawberry.input(description="A row of the care-tier table.")
class CareTierRowInput:
    name: str = strawberry.field(description="Tier name.")
    min_level: int = strawberry.field(description="Lowest ability level matched (0–4).")
    max_level: int = strawberry.field(description="Highest ability level matched (0–4).")
    visits_per_month: int = strawberry.field(description="Visits planned per month (0–31).")
    visit_types: list[models.VisitType] = strawberry.field(description="Visit types, used in turn.")
    lives_alone: bool | None = strawberry.field(
        default=None, description="Only elders living alone (true), not (false), or either."
    )
    required_flags: list[str] = strawberry.field(default_factory=list, description="Flags the elder must all have.")


@strawberry.input(description="Save a new version of the community's care-tier table (staff, community admin).")
class SetCareTiersInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    rows: list[CareTierRowInput] = strawberry.field(
        description="1 to 20 rows in matching order; every elder must match one."
    )
    note: str = strawberry.field(default="", description="What changed.")


@strawberry.type(description="The new version of the tier table.")
class CareTiersSuccess:
    table: CareTierTable = strawberry.field(description="The table.")


CareTiersResult = Annotated[
    CareTiersSuccess | ValidationError | ConflictError,
    strawberry.union("CareTiersResult", description="The new table, or why it was refused."),
]


@strawberry.input(description="A weekly availability window (China time).")
class AvailabilityInput:
    weekday: int = strawberry.field(description="0 Monday … 6 Sunday.")
    start_minute: int = strawberry.field(description="Minutes after midnight it starts.")
    end_minute: int = strawberry.field(description="Minutes after midnight it ends (at most 1440).")


@strawberry.input(description="Register a resident with a login as a volunteer, or update them (staff).")
class RegisterVolunteerInput:
    resident_id: relay.GlobalID = strawberry.field(description="The resident.")
    skills: list[str] = strawberry.field(
        default_factory=list, description="haircut, electrical, escort, companionship."
    )
    max_elders: int = strawberry.field(default=3, description="Most elders they look after (1–50).")
    availability: list[AvailabilityInput] = strawberry.field(
        default_factory=list, description="Weekly windows (at most 21); none means any time."
    )
    team_ids: list[relay.GlobalID] = strawberry.field(default_factory=list, description="Teams they join.")


@strawberry.type(description="The volunteer.")
class VolunteerSuccess:
    volunteer: Volunteer = strawberry.field(description="The volunteer.")


VolunteerResult = Annotated[
    VolunteerSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("VolunteerResult", description="The volunteer, or why the change was refused."),
]
VOLUNTEER_ERRORS: list[type[UserError]] = [ValidationError, NotFoundError, ConflictError]


@strawberry.input(description="The volunteer is away; their visits go to a stand-in (the volunteer or staff).")
class AddVolunteerTimeOffInput:
    volunteer_id: relay.GlobalID = strawberry.field(description="The volunteer.")
    starts_at: dt.datetime = strawberry.field(description="Away from.")
    ends_at: dt.datetime = strawberry.field(description="Back at.")
    reason: str = strawberry.field(default="", description="Why (optional).")


@strawberry.input(description="A volunteer team (staff).")
class CreateVolunteerTeamInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    name: str = strawberry.field(description="The team's name, e.g. 爱心敲门.")


@strawberry.type(description="The team.")
class VolunteerTeamSuccess:
    team: VolunteerTeam = strawberry.field(description="The team.")


VolunteerTeamResult = Annotated[
    VolunteerTeamSuccess | ValidationError | ConflictError,
    strawberry.union("VolunteerTeamResult", description="The team, or why it was refused."),
]


@strawberry.input(description="Set the age range that counts as 低龄 for volunteers (staff).")
class SetYoungerElderRuleInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    min_age: int = strawberry.field(description="Youngest age counted.")
    max_age: int = strawberry.field(description="Oldest age counted.")


YoungerElderRuleResult = Annotated[
    YoungerElderRule | ValidationError,
    strawberry.union("YoungerElderRuleResult", description="The rule, or why it was refused."),
]


@strawberry.input(description="Pair an elder with a volunteer (staff); the best-ranked volunteer when none is given.")
class PairVolunteerInput:
    elder_id: relay.GlobalID = strawberry.field(description="The elder.")
    volunteer_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The volunteer, or none to choose."
    )


@strawberry.input(description="End a pair (staff); it stays in the history.")
class EndPairInput:
    pair_id: relay.GlobalID = strawberry.field(description="The pair.")
    reason: str = strawberry.field(description="Why it ends, e.g. 志愿者搬家.")


@strawberry.type(description="The pair.")
class PairSuccess:
    pair: CarePair = strawberry.field(description="The pair.")


PairResult = Annotated[
    PairSuccess | VolunteerFullError | NoVolunteerAvailableError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("PairResult", description="The pair, or why it was refused."),
]
PAIR_ERRORS: list[type[UserError]] = [VolunteerFullError, NoVolunteerAvailableError, ValidationError, NotFoundError,
                                      ConflictError]  # fmt: skip


@strawberry.input(description="Plan a month's visits for the community now (staff); planning again adds nothing.")
class PlanVisitsInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    period: str = strawberry.field(description="The month, YYYY-MM.")


@strawberry.type(description="Planning was asked for; the worker plans and dispatches the visits.")
class PlanVisitsSuccess:
    period: str = strawberry.field(description="The month.")


PlanVisitsResult = Annotated[
    PlanVisitsSuccess | ValidationError,
    strawberry.union("PlanVisitsResult", description="Accepted, or why not."),
]


@strawberry.input(description="Ask for a visit (hospital escort, haircut…) on a date: the elder, a relative or staff.")
class RequestVisitInput:
    resident_id: relay.GlobalID = strawberry.field(description="Who is visited.")
    visit_type: models.VisitType = strawberry.field(description="What for.")
    starts_at: dt.datetime = strawberry.field(description="From (with a time zone).")
    ends_at: dt.datetime = strawberry.field(description="Until (within 12 hours).")
    note: str = strawberry.field(default="", description="e.g. 市一院心内科复诊 (at most 500 characters).")


@strawberry.type(description="The visit.")
class VisitSuccess:
    visit: Visit = strawberry.field(description="The visit.")


VISIT_ERRORS: list[type[UserError]] = [
    VolunteerDoubleBookedError, VisitNotOpenError, VisitNotCheckedInError, VisitAlreadyCheckedInError,
    VisitOfferNotOpenError, NotARelativeError, ValidationError, NotFoundError, ConflictError,
]  # fmt: skip
VisitResult = Annotated[
    VisitSuccess | VolunteerDoubleBookedError | VisitNotOpenError | VisitNotCheckedInError | VisitAlreadyCheckedInError
    | VisitOfferNotOpenError | NotARelativeError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("VisitResult", description="The visit, or why the change was refused."),
]  # fmt: skip


@strawberry.input(description="Accept or decline a visit offered to you.")
class AnswerVisitOfferInput:
    visit_id: relay.GlobalID = strawberry.field(description="The visit.")
    accept: bool = strawberry.field(description="True accepts (and books you), false declines.")
    note: str = strawberry.field(default="", description="Note, e.g. why you decline.")


@strawberry.input(description="Book a volunteer for a visit directly (staff).")
class AssignVisitInput:
    visit_id: relay.GlobalID = strawberry.field(description="The visit.")
    volunteer_id: relay.GlobalID = strawberry.field(description="The volunteer.")


@strawberry.input(description="The booked volunteer arrives.")
class CheckInVisitInput:
    visit_id: relay.GlobalID = strawberry.field(description="The visit.")


@strawberry.input(description="A checklist answer.")
class ChecklistAnswerInput:
    code: str = strawberry.field(description="The item code (see Visit.checklist).")
    answer: str = strawberry.field(description="ok, problem or not_applicable.")


@strawberry.input(description="Something found on the visit; a hazard opens a repair ticket.")
class FindingInput:
    item_code: str = strawberry.field(description="The checklist item, or other.")
    severity: models.FindingSeverity = strawberry.field(description="info, concern or hazard.")
    note: str = strawberry.field(default="", description="What was found.")
    hazard_kind: str | None = strawberry.field(
        default=None, description="gas, electrical, water, fire, door, medicine or other (default: from the item)."
    )


@strawberry.input(description="The volunteer leaves: every checklist item answered, findings and a report.")
class CheckOutVisitInput:
    visit_id: relay.GlobalID = strawberry.field(description="The visit.")
    checklist: list[ChecklistAnswerInput] = strawberry.field(description="An answer for each checklist item.")
    findings: list[FindingInput] = strawberry.field(default_factory=list, description="Findings (at most 20).")
    report: str = strawberry.field(default="", description="A short report (at most 4000 characters).")


@strawberry.input(description="Call a visit off before it begins (staff, or whoever asked for it).")
class CancelVisitInput:
    visit_id: relay.GlobalID = strawberry.field(description="The visit.")
    reason: str = strawberry.field(default="", description="Why.")


@strawberry.input(description="A holiday campaign (staff): deliveries to households with residents of these tags.")
class CreateHolidayCampaignInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    name: str = strawberry.field(description="e.g. 元宵节送汤圆.")
    tags: list[ResidentTag] = strawberry.field(description="Target residents with any of these tags.")
    starts_at: dt.datetime = strawberry.field(description="Deliveries from.")
    ends_at: dt.datetime = strawberry.field(description="Deliveries until (within 31 days).")
    min_age: int | None = strawberry.field(default=None, description="Only residents at least this old.")
    note: str = strawberry.field(default="", description="What is delivered.")


@strawberry.type(description="The campaign; the worker makes and dispatches its deliveries.")
class HolidayCampaignSuccess:
    campaign: HolidayCampaign = strawberry.field(description="The campaign.")


HolidayCampaignResult = Annotated[
    HolidayCampaignSuccess | ValidationError,
    strawberry.union("HolidayCampaignResult", description="The campaign, or why it was refused."),
]


@strawberry.input(description="Spend time-bank minutes on care received (the volunteer, or staff for them).")
class RedeemHoursInput:
    volunteer_id: relay.GlobalID = strawberry.field(description="Whose minutes.")
    minutes: int = strawberry.field(description="How many (1 to 6000).")
    for_visit_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The completed visit received, if any."
    )
    note: str = strawberry.field(default="", description="What for.")


@strawberry.type(description="The minutes were redeemed.")
class RedeemHoursSuccess:
    volunteer: Volunteer = strawberry.field(description="The volunteer, with the new balance.")
    balance_minutes: int = strawberry.field(description="Minutes held now.")


RedeemHoursResult = Annotated[
    RedeemHoursSuccess | InsufficientHoursError | ValidationError | NotFoundError,
    strawberry.union("RedeemHoursResult", description="The new balance, or why it was refused."),
]


# -- queries --------------------------------------------------------------------------------------------


@strawberry.type
class ElderCareQuery:
    @strawberry.field(description="Elders the community looks after (staff), by id.")
    async def elders(
        self,
        info: Info,
        community_id: CommunityArg,
        first: FirstArg = None,
        after: AfterArg = None,
        level: Annotated[int | None, strawberry.argument(description="Only elders at this level (0–4).")] = None,
    ) -> Connection[Elder]:
        cid = decode_id(community_id, "Community")
        stmt = select(models.ElderProfile).where(
            models.ElderProfile.community_id == cid, models.ElderProfile.community_id.in_(managed(info))
        )
        if level is not None:
            stmt = stmt.where(models.ElderProfile.current_level == level)
        return await paged(info.context.db, stmt, models.ElderProfile.id, page_args(first, after), Elder.from_model)

    @strawberry.field(description="The community's volunteers (staff), by id.")
    async def elder_care_volunteers(
        self, info: Info, community_id: CommunityArg, first: FirstArg = None, after: AfterArg = None
    ) -> Connection[Volunteer]:
        cid = decode_id(community_id, "Community")
        stmt = select(models.Volunteer).where(
            models.Volunteer.community_id == cid, models.Volunteer.community_id.in_(managed(info))
        )
        return await paged(info.context.db, stmt, models.Volunteer.id, page_args(first, after), Volunteer.from_model)

    @strawberry.field(description="Visits you may see (all for staff; yours as volunteer, elder or family), by id.")
    async def elder_visits(
        self,
        info: Info,
        community_id: CommunityArg,
        first: FirstArg = None,
        after: AfterArg = None,
        from_: Annotated[dt.datetime | None, strawberry.argument(name="from", description="Starting from.")] = None,
        to: Annotated[dt.datetime | None, strawberry.argument(description="Starting before.")] = None,
        state: Annotated[models.VisitState | None, strawberry.argument(description="Only in this state.")] = None,
    ) -> Connection[Visit]:
        stmt = visits_service.visible_visits(info.context.viewer).where(
            models.Visit.community_id == decode_id(community_id, "Community")
        )
        if from_ is not None:
            stmt = stmt.where(models.Visit.starts_at >= from_)
        if to is not None:
            stmt = stmt.where(models.Visit.starts_at < to)
        if state is not None:
            stmt = stmt.where(models.Visit.state == state.value)
        return await paged(info.context.db, stmt, models.Visit.id, page_args(first, after), Visit.from_model)

    @strawberry.field(description="Visits offered to you or booked to you and not over, soonest first.")
    async def my_visit_offers(self, info: Info) -> list[Visit]:
        async with info.context.db.read_session() as session:
            rows = await visits_service.my_offers(session, viewer=info.context.viewer)
        return [Visit.from_model(v) for v, _a in rows]

    @strawberry.field(description="A version of the community's care-tier table (the latest by default).")
    async def care_tiers(
        self,
        info: Info,
        community_id: CommunityArg,
        version: Annotated[int | None, strawberry.argument(description="A past version number.")] = None,
    ) -> CareTierTable | None:
        cid = decode_id(community_id, "Community")
        if cid not in info.context.viewer.community_ids:
            return None
        async with info.context.db.read_session() as session:
            row, rules_ = await people_service.tier_table(session, community_id=cid, version=version)
        if row is None and version is not None:
            return None
        return CareTierTable.from_models(row, rules_)

    @strawberry.field(description="The community's volunteer teams.")
    async def volunteer_teams(self, info: Info, community_id: CommunityArg) -> list[VolunteerTeam]:
        cid = decode_id(community_id, "Community")
        if cid not in info.context.viewer.community_ids:
            return []
        async with info.context.db.read_session() as session:
            rows = await session.scalars(
                select(models.VolunteerTeam)
                .where(models.VolunteerTeam.community_id == cid)
                .order_by(models.VolunteerTeam.name)
            )
            return [VolunteerTeam(db_id=r.id, name=r.name) for r in rows.all()]

    @strawberry.field(description="The community's 低龄 rule.")
    async def younger_elder_rule(self, info: Info, community_id: CommunityArg) -> YoungerElderRule | None:
        cid = decode_id(community_id, "Community")
        if cid not in info.context.viewer.community_ids:
            return None
        async with info.context.db.read_session() as session:
            policy = await common.policy_of(session, cid)
        return YoungerElderRule(min_age=policy.younger_elder_min_age, max_age=policy.younger_elder_max_age)

    @strawberry.field(description="The community's holiday campaigns (staff), newest first.")
    async def holiday_campaigns(self, info: Info, community_id: CommunityArg) -> list[HolidayCampaign]:
        cid = decode_id(community_id, "Community")
        if cid not in managed(info):
            return []
        async with info.context.db.read_session() as session:
            rows = await session.scalars(
                select(models.HolidayCampaign)
                .where(models.HolidayCampaign.community_id == cid)
                .order_by(models.HolidayCampaign.id.desc())
                .limit(100)
            )
            return [HolidayCampaign.from_model(r) for r in rows.all()]

    @strawberry.field(description="A volunteer's time-bank statement (the volunteer or staff).")
    async def time_bank_statement(
        self,
        info: Info,
        volunteer_id: Annotated[relay.GlobalID, strawberry.argument(description="The volunteer.")],
    ) -> TimeBankStatement | None:
        viewer = info.context.viewer
        async with info.context.db.read_session() as session:
            try:
                volunteer = await people_service.volunteer_in(session, viewer, decode_id(volunteer_id, "Volunteer"))
            except DomainError:
                return None
            if volunteer.community_id not in managed(info) and not await people_service.is_self(
                session, viewer, volunteer
            ):
                return None
            balance = (await timebank_service.balance_of(session, [volunteer.id]))[volunteer.id]
            lines = await timebank_service.statement(session, volunteer_id=volunteer.id)
        return TimeBankStatement(
            volunteer=Volunteer.from_model(volunteer),
            balance_minutes=balance,
            entries=[
                TimeBankEntry(
                    at=line.entry.created_at, kind=line.transaction.kind, minutes=line.entry.amount_minutes,
                    balance_after=line.entry.balance_after, note=line.transaction.note,
                    visit_id=relay.GlobalID("Visit", str(line.transaction.visit_id)) if line.transaction.visit_id else None,
                )
                for line in lines
            ],
        )  # fmt: skip

    @strawberry.field(
        description="Elder-care oversight for a month: the ageing survey, elders by level and tier, coverage, overdue visits, volunteer load."
    )
    async def elder_care_oversight(
        self,
        info: Info,
        community_id: CommunityArg,
        period: Annotated[
            str | None, strawberry.argument(description="The month, YYYY-MM (default: this month).")
        ] = None,
    ) -> ElderCareOversight:
        cid = decode_id(community_id, "Community")
        today = info.context.today
        month = period or rules.period_of(today)
        try:
            async with info.context.db.read_session() as session:
                result = await oversight_service.oversight(
                    session, viewer=info.context.viewer, community_id=cid, period=month, now=utc_now(), today=today,
                    settings=_settings(info),
                )  # fmt: skip
        except (Forbidden, Unauthenticated) as exc:
            raise auth_error(exc) from exc
        except ValueError as exc:
            raise bad_input(str(exc)) from exc
        return ElderCareOversight.from_oversight(result)


# -- mutations ------------------------------------------------------------------------------------------


def _visit_id(gid: relay.GlobalID) -> int:
    return decode_id(gid, "Visit")


@strawberry.type
class ElderCareMutation:
    @strawberry.mutation(description="Register an elder, or update their profile (staff).")
    async def save_elder(self, info: Info, input: Annotated[SaveElderInput, InputArg]) -> ElderResult:
        try:
            draft = people_service.ElderDraft(
                resident_id=decode_id(input.resident_id, "Resident"), living_situation=input.living_situation,
                care_flags=tuple(input.care_flags), preferred_volunteer_gender=input.preferred_volunteer_gender,
                emergency_contacts=tuple(
                    people_service.ContactDraft(c.name, c.relation, c.phone) for c in input.emergency_contacts
                ),
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                elder = await people_service.save_elder(
                    uow, viewer=info.context.viewer, cipher=info.context.cipher, draft=draft, settings=_settings(info),
                    today=info.context.today,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, ELDER_ERRORS)
        return ElderSuccess(elder=Elder.from_model(elder))

    @strawberry.mutation(description="Record the conditions that change an elder's care (health data; needs consent).")
    async def record_elder_conditions(
        self, info: Info, input: Annotated[RecordElderConditionsInput, InputArg]
    ) -> ElderResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                elder = await people_service.record_conditions(
                    uow, viewer=info.context.viewer, cipher=info.context.cipher,
                    elder_id=decode_id(input.elder_id, "Elder"), conditions=input.conditions,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, ELDER_ERRORS)
        return ElderSuccess(elder=Elder.from_model(elder))

    @strawberry.mutation(description="Mark that an elder's condition changed: a reassessment is due now (staff).")
    async def mark_elder_changed(self, info: Info, input: Annotated[MarkElderChangedInput, InputArg]) -> ElderResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                elder = await people_service.mark_changed(
                    uow, viewer=info.context.viewer, elder_id=decode_id(input.elder_id, "Elder"),
                    today=info.context.today,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, ELDER_ERRORS)
        return ElderSuccess(elder=Elder.from_model(elder))

    @strawberry.mutation(description="Record a GB/T 42195-2022 ability assessment (staff; needs health-data consent).")
    async def record_ability_assessment(
        self, info: Info, input: Annotated[RecordAssessmentInput, InputArg]
    ) -> AssessmentResult:
        try:
            if len(input.risk_events) > 20:
                raise ValidationFailed("At most 20 risk events.", field="riskEvents")
            scores: dict[str, int] = {}
            for item in input.scores:
                if item.code in scores:
                    raise ValidationFailed(f"{item.code} is scored twice.", field=f"scores.{item.code}")
                scores[item.code] = item.score
            data = abilities.AssessmentInput(
                scores=scores, diagnosed_dementia=input.diagnosed_dementia,
                diagnosed_mental_disorder=input.diagnosed_mental_disorder,
                risk_events=tuple(abilities.RiskEvent(e.kind, e.occurred_on) for e in input.risk_events),
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await people_service.record_assessment(
                    uow, viewer=info.context.viewer, cipher=info.context.cipher,
                    elder_id=decode_id(input.elder_id, "Elder"), data=data, assessed_on=input.assessed_on,
                    reason=input.reason, today=info.context.today,
                )  # fmt: skip
                elder = await uow.session.get(models.ElderProfile, row.elder_id)
        except DomainError as exc:
            return _error(exc, ASSESSMENT_ERRORS)
        assert elder is not None
        return AssessmentSuccess(assessment=Assessment.from_model(row), elder=Elder.from_model(elder))

    @strawberry.mutation(description="Read an elder's health data (health-data right only; every read is logged).")
    async def view_elder_health(
        self, info: Info, input: Annotated[ViewElderHealthInput, InputArg]
    ) -> ElderHealthResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                record = await people_service.read_health(
                    uow, viewer=info.context.viewer, cipher=info.context.cipher,
                    elder_id=decode_id(input.elder_id, "Elder"), purpose=input.purpose,
                    request_id=info.context.request_id,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, [HealthConsentRequiredError, ValidationError, NotFoundError])
        return ElderHealth(
            elder=Elder.from_model(record.elder), conditions=record.conditions,
            assessments=[AssessmentDetail.from_details(d) for d in record.assessments],
        )  # fmt: skip

    @strawberry.mutation(description="Save a new version of the care-tier table (staff); past plans keep theirs.")
    async def set_care_tiers(self, info: Info, input: Annotated[SetCareTiersInput, InputArg]) -> CareTiersResult:
        try:
            rows = [
                rules.TierRow(
                    name=r.name, min_level=r.min_level, max_level=r.max_level, visits_per_month=r.visits_per_month,
                    visit_types=tuple(t.value for t in r.visit_types), lives_alone=r.lives_alone,
                    required_flags=tuple(r.required_flags),
                )
                for r in input.rows
            ]  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                version, saved = await people_service.set_tier_table(
                    uow, viewer=info.context.viewer, community_id=decode_id(input.community_id, "Community"),
                    rows=rows, note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, [ValidationError, ConflictError])
        return CareTiersSuccess(table=CareTierTable.from_models(version, saved))

    @strawberry.mutation(description="Register a volunteer, or update their skills, load and availability (staff).")
    async def register_volunteer(
        self, info: Info, input: Annotated[RegisterVolunteerInput, InputArg]
    ) -> VolunteerResult:
        try:
            draft = people_service.VolunteerDraft(
                resident_id=decode_id(input.resident_id, "Resident"), skills=tuple(input.skills),
                max_elders=input.max_elders,
                availability=tuple(
                    people_service.WindowDraft(w.weekday, w.start_minute, w.end_minute) for w in input.availability
                ),
                team_ids=tuple(decode_id(t, "VolunteerTeam") for t in input.team_ids),
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await people_service.register_volunteer(uow, viewer=info.context.viewer, draft=draft)
        except DomainError as exc:
            return _error(exc, VOLUNTEER_ERRORS)
        return VolunteerSuccess(volunteer=Volunteer.from_model(row))

    @strawberry.mutation(description="Record time away for a volunteer; their visits then go to a stand-in.")
    async def add_volunteer_time_off(
        self, info: Info, input: Annotated[AddVolunteerTimeOffInput, InputArg]
    ) -> VolunteerResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                off = await people_service.add_time_off(
                    uow, viewer=info.context.viewer, volunteer_id=decode_id(input.volunteer_id, "Volunteer"),
                    starts_at=input.starts_at, ends_at=input.ends_at, reason=input.reason,
                )  # fmt: skip
                volunteer = await uow.session.scalar(
                    select(models.Volunteer).where(models.Volunteer.responder_id == off.responder_id)
                )
        except DomainError as exc:
            return _error(exc, VOLUNTEER_ERRORS)
        assert volunteer is not None
        return VolunteerSuccess(volunteer=Volunteer.from_model(volunteer))

    @strawberry.mutation(description="Create a volunteer team (staff).")
    async def create_volunteer_team(
        self, info: Info, input: Annotated[CreateVolunteerTeamInput, InputArg]
    ) -> VolunteerTeamResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                team = await people_service.create_team(
                    uow, viewer=info.context.viewer, community_id=decode_id(input.community_id, "Community"),
                    name=input.name,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, [ValidationError, ConflictError])
        return VolunteerTeamSuccess(team=VolunteerTeam(db_id=team.id, name=team.name))

    @strawberry.mutation(description="Set the community's 低龄 age range (staff).")
    async def set_younger_elder_rule(
        self, info: Info, input: Annotated[SetYoungerElderRuleInput, InputArg]
    ) -> YoungerElderRuleResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await common.set_younger_elder_rule(
                    uow, viewer=info.context.viewer, community_id=decode_id(input.community_id, "Community"),
                    min_age=input.min_age, max_age=input.max_age,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, [ValidationError])
        return YoungerElderRule(min_age=row.younger_elder_min_age, max_age=row.younger_elder_max_age)

    @strawberry.mutation(description="Pair an elder with a volunteer (staff): by place, skills, load and preferences.")
    async def pair_volunteer(self, info: Info, input: Annotated[PairVolunteerInput, InputArg]) -> PairResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await people_service.pair(
                    uow, viewer=info.context.viewer, elder_id=decode_id(input.elder_id, "Elder"),
                    volunteer_id=decode_id(input.volunteer_id, "Volunteer") if input.volunteer_id else None,
                    today=info.context.today,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, PAIR_ERRORS)
        return PairSuccess(pair=CarePair.from_model(row))

    @strawberry.mutation(description="End a pair (staff); it stays in the elder's history.")
    async def end_pair(self, info: Info, input: Annotated[EndPairInput, InputArg]) -> PairResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await people_service.end_pair(
                    uow, viewer=info.context.viewer, pair_id=decode_id(input.pair_id, "CarePair"), reason=input.reason
                )
        except DomainError as exc:
            return _error(exc, PAIR_ERRORS)
        return PairSuccess(pair=CarePair.from_model(row))

    @strawberry.mutation(description="Plan and dispatch a month's visits now (staff); the scheduler also does it.")
    async def plan_visits(self, info: Info, input: Annotated[PlanVisitsInput, InputArg]) -> PlanVisitsResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                period = await visits_service.request_planning(
                    uow, viewer=info.context.viewer, community_id=decode_id(input.community_id, "Community"),
                    period=input.period,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, [ValidationError])
        return PlanVisitsSuccess(period=period)

    @strawberry.mutation(description="Ask for a visit on a date (the elder, a relative or staff); it is dispatched.")
    async def request_visit(self, info: Info, input: Annotated[RequestVisitInput, InputArg]) -> VisitResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                visit = await visits_service.ask_for_visit(
                    uow, viewer=info.context.viewer, resident_id=decode_id(input.resident_id, "Resident"),
                    visit_type=input.visit_type.value, starts_at=input.starts_at, ends_at=input.ends_at,
                    note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, VISIT_ERRORS)
        return VisitSuccess(visit=Visit.from_model(visit))

    @strawberry.mutation(description="Accept (and be booked for) or decline a visit offered to you.")
    async def answer_visit_offer(self, info: Info, input: Annotated[AnswerVisitOfferInput, InputArg]) -> VisitResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                visit = await visits_service.answer_offer(
                    uow, viewer=info.context.viewer, visit_id=_visit_id(input.visit_id), accept=input.accept,
                    note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, VISIT_ERRORS)
        return VisitSuccess(visit=Visit.from_model(visit))

    @strawberry.mutation(description="Book a volunteer for a visit directly (staff); never two overlapping visits.")
    async def assign_visit(self, info: Info, input: Annotated[AssignVisitInput, InputArg]) -> VisitResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                visit = await visits_service.assign_visit(
                    uow, viewer=info.context.viewer, visit_id=_visit_id(input.visit_id),
                    volunteer_id=decode_id(input.volunteer_id, "Volunteer"),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, VISIT_ERRORS)
        return VisitSuccess(visit=Visit.from_model(visit))

    @strawberry.mutation(description="Check in on arrival (the booked volunteer or staff).")
    async def check_in_visit(self, info: Info, input: Annotated[CheckInVisitInput, InputArg]) -> VisitResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                visit = await visits_service.check_in(
                    uow, viewer=info.context.viewer, visit_id=_visit_id(input.visit_id)
                )
        except DomainError as exc:
            return _error(exc, VISIT_ERRORS)
        return VisitSuccess(visit=Visit.from_model(visit))

    @strawberry.mutation(description="Check out with the checklist, findings and report; hours are credited.")
    async def check_out_visit(self, info: Info, input: Annotated[CheckOutVisitInput, InputArg]) -> VisitResult:
        try:
            if len(input.checklist) > 20:
                raise ValidationFailed("At most 20 checklist answers.", field="checklist")
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                visit, _findings = await visits_service.check_out(
                    uow, viewer=info.context.viewer, visit_id=_visit_id(input.visit_id),
                    checklist={a.code: a.answer for a in input.checklist},
                    findings=[
                        visits_service.FindingDraft(f.item_code, f.severity, f.note, f.hazard_kind)
                        for f in input.findings
                    ],
                    report=input.report,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, VISIT_ERRORS)
        return VisitSuccess(visit=Visit.from_model(visit))

    @strawberry.mutation(description="Call a visit off before it begins (staff, or whoever asked for it).")
    async def cancel_visit(self, info: Info, input: Annotated[CancelVisitInput, InputArg]) -> VisitResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                visit = await visits_service.cancel_visit(
                    uow, viewer=info.context.viewer, visit_id=_visit_id(input.visit_id), reason=input.reason
                )
        except DomainError as exc:
            return _error(exc, VISIT_ERRORS)
        return VisitSuccess(visit=Visit.from_model(visit))

    @strawberry.mutation(description="Start a holiday campaign (staff); the worker makes one delivery per household.")
    async def create_holiday_campaign(
        self, info: Info, input: Annotated[CreateHolidayCampaignInput, InputArg]
    ) -> HolidayCampaignResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await visits_service.create_campaign(
                    uow, viewer=info.context.viewer, community_id=decode_id(input.community_id, "Community"),
                    name=input.name, tags=input.tags, starts_at=input.starts_at, ends_at=input.ends_at,
                    min_age=input.min_age, note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, [ValidationError])
        return HolidayCampaignSuccess(campaign=HolidayCampaign.from_model(row))

    @strawberry.mutation(description="Redeem time-bank minutes for care received; never more than held.")
    async def redeem_hours(self, info: Info, input: Annotated[RedeemHoursInput, InputArg]) -> RedeemHoursResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                volunteer_id = decode_id(input.volunteer_id, "Volunteer")
                await timebank_service.redeem(
                    uow, viewer=info.context.viewer, volunteer_id=volunteer_id, minutes=input.minutes,
                    for_visit_id=_visit_id(input.for_visit_id) if input.for_visit_id else None, note=input.note,
                )  # fmt: skip
                volunteer = await uow.session.get(models.Volunteer, volunteer_id)
                balance = (await timebank_service.balance_of(uow.session, [volunteer_id]))[volunteer_id]
        except DomainError as exc:
            return _error(exc, [InsufficientHoursError, ValidationError, NotFoundError])
        assert volunteer is not None
        return RedeemHoursSuccess(volunteer=Volunteer.from_model(volunteer), balance_minutes=balance)


TYPES: list[Any] = [*NODE_TYPES]
