"""Open311 GeoReport v2 over tickets: jurisdictions, services, requests and client keys.

Framework-free: the routes turn HTTP into these calls and the returned records into JSON or XML.
A jurisdiction is a community (`jurisdiction_id` = its code); a service is an active ticket
category (`service_code` = its code); a service request is a ticket. Records never carry personal
data: no reporter, contact name, phone or e-mail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import Account
from api.core.clock import CHINA_TZ, utc_now
from api.core.database import UnitOfWork
from api.core.errors import Forbidden, NotFound, ValidationFailed
from api.registry.models import Building, Community
from api.tickets import service as tickets_service
from api.tickets.models import OPEN_STATUS_VALUES, Open311Client, Ticket, TicketCategory, TicketEvent

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-02-01T00:00:00+08:00"  # when this API last changed; bump it with the API
FORMATS = ("application/json", "text/xml")
MAX_RANGE = timedelta(days=90)
MAX_REQUESTS = 1000
MAX_ATTRIBUTES = 50
OPEN, CLOSED = "open", "closed"

Record = dict[str, Any]


# -- clients and keys ------------------------------------------------------------------------


def hash_key(api_key: str) -> str:
    """The stored form of an API key: its SHA-256 digest in hex."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


async def create_client(uow: UnitOfWork, *, community_code: str, name: str) -> tuple[Open311Client, str]:
    """Register an Open311 client for one community; returns it and its key (shown once, stored hashed).

    Raises NotFound, ValidationFailed.
    """
    community = await jurisdiction(uow.session, community_code)
    clean_name = name.strip()
    if not 1 <= len(clean_name) <= 100:
        raise ValidationFailed("Name the client in 1 to 100 characters.", field="name")
    key = secrets.token_urlsafe(32)
    client = Open311Client(community_id=community.id, name=clean_name, key_hash=hash_key(key), active=True)
    uow.session.add(client)
    await uow.session.flush()
    return client, key


async def authenticate(session: AsyncSession, *, community: Community, api_key: str | None) -> Open311Client:
    """The active client the key belongs to, if it may post for this community. Raises Forbidden."""
    if not api_key:
        raise Forbidden("An api_key is required to post service requests.")
    client = await session.scalar(select(Open311Client).where(Open311Client.key_hash == hash_key(api_key)))
    if client is None or not client.active or client.community_id != community.id:
        raise Forbidden("The api_key is not valid for this jurisdiction.")
    return client


# -- jurisdictions and services --------------------------------------------------------------


async def jurisdiction(session: AsyncSession, jurisdiction_id: str | None) -> Community:
    """The community whose code is `jurisdiction_id`. Raises ValidationFailed (absent), NotFound."""
    if not jurisdiction_id:
        raise ValidationFailed("jurisdiction_id is required: this endpoint serves several communities.")
    community = await session.scalar(select(Community).where(Community.code == jurisdiction_id))
    if community is None:
        raise NotFound(f"No jurisdiction {jurisdiction_id!r}.", field="jurisdiction_id")
    return community


def discovery(url: str) -> Record:
    """The service discovery document for the endpoint at `url`."""
    return {
        "changeset": CHANGESET,
        "contact": "Each jurisdiction is a community; contact its residents' committee (居委会).",
        "key_service": "Ask the residents' committee for an api_key; staff issue one with `linli open311-key`.",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": url,
                "changeset": CHANGESET,
                "type": "production",
                "formats": list(FORMATS),
            }
        ],
    }


async def _category(session: AsyncSession, community: Community, service_code: str) -> TicketCategory:
    category = await session.scalar(
        select(TicketCategory).where(
            TicketCategory.community_id == community.id,
            TicketCategory.code == service_code,
            TicketCategory.active.is_(True),
        )
    )
    if category is None:
        raise NotFound(f"No service {service_code!r} in this jurisdiction.", field="service_code")
    return category


async def service_list(session: AsyncSession, community: Community) -> list[Record]:
    """The community's active categories as Open311 services."""
    rows = await session.scalars(
        select(TicketCategory)
        .where(TicketCategory.community_id == community.id, TicketCategory.active.is_(True))
        .order_by(TicketCategory.id)
    )
    return [
        {
            "service_code": c.code,
            "service_name": c.name,
            "description": c.description,
            "metadata": bool(c.questions),
            "type": "realtime",
            "keywords": c.keywords,
            "group": c.group,
        }
        for c in rows
    ]


_BOOLEAN_VALUES = [{"key": "true", "name": "是"}, {"key": "false", "name": "否"}]
_DATATYPES = {"boolean": "singlevaluelist", "choice": "singlevaluelist", "number": "number", "text": "string"}
_DATATYPE_DESCRIPTIONS = {
    "boolean": "true or false",
    "choice": "one of the listed keys",
    "number": "a number",
    "text": "text of at most 500 characters",
}


def _attribute(question: Mapping[str, Any], order: int) -> Record:
    kind = str(question.get("kind", "text"))
    if kind == "boolean":
        values: list[Record] = list(_BOOLEAN_VALUES)
    elif kind == "choice":
        values = [{"key": str(c), "name": str(c)} for c in question.get("choices", [])]
    else:
        values = []
    return {
        "variable": True,
        "code": question["code"],
        "datatype": _DATATYPES.get(kind, "string"),
        "required": bool(question.get("required")),
        "datatype_description": _DATATYPE_DESCRIPTIONS.get(kind, ""),
        "order": order,
        "description": question.get("label", ""),
        "values": values,
    }


async def service_definition(session: AsyncSession, community: Community, service_code: str) -> Record:
    """The attributes (the category's questions) a request for this service answers. Raises NotFound."""
    category = await _category(session, community, service_code)
    return {
        "service_code": category.code,
        "attributes": [_attribute(q, i) for i, q in enumerate(category.questions or [], start=1)],
    }


# -- posting a request -----------------------------------------------------------------------


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def strip_html(value: str) -> str:
    """The text of `value` with tags removed and character references decoded."""
    parser = _TextOnly()
    parser.feed(value)
    parser.close()
    return "".join(parser.parts).strip()


_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")


def _fields(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Plain arguments (the last value wins) and `attribute[CODE]` / `attribute[CODE][]` values."""
    fields: dict[str, str] = {}
    attributes: dict[str, list[str]] = {}
    for key, value in pairs:
        match = _ATTRIBUTE.match(key)
        if match is None:
            fields[key] = value.strip()
        elif value.strip():  # an argument sent empty equals an absent one
            attributes.setdefault(match.group(1), []).append(value.strip())
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValidationFailed("Too many attributes.", field="attribute")
    return fields, attributes


def _answers(category: TicketCategory, attributes: Mapping[str, list[str]]) -> dict[str, Any]:
    """Typed answers from the attribute strings; unknown codes and malformed values are errors."""
    questions = {q["code"]: q for q in category.questions or []}
    answers: dict[str, Any] = {}
    for code, values in attributes.items():
        question = questions.get(code)
        if question is None:
            raise ValidationFailed(f"Unknown attribute {code!r} for service {category.code!r}.", field="attribute")
        if len(values) != 1:
            raise ValidationFailed(f"Attribute {code!r} takes one value.", field=f"attribute[{code}]")
        raw, kind = values[0], question.get("kind", "text")
        if kind == "boolean":
            if raw.lower() not in ("true", "false"):
                raise ValidationFailed(f"Attribute {code!r} is true or false.", field=f"attribute[{code}]")
            answers[code] = raw.lower() == "true"
        elif kind == "number":
            answers[code] = _number(raw, code)
        else:
            answers[code] = raw
    return answers


def _number(raw: str, code: str) -> int | float:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValidationFailed(f"Attribute {code!r} is a number.", field=f"attribute[{code}]")
    return value


def _coordinate(raw: str | None, name: str) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValidationFailed(f"{name} is a WGS84 coordinate in degrees.", field=name)
    return value


def building_id_of(address_id: str) -> int:
    """A building id from a numeric id or a `Building` global id. Raises ValidationFailed."""
    if address_id.isdigit():
        return int(address_id)
    try:
        decoded = base64.b64decode(address_id, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    type_name, _, node_id = decoded.partition(":")
    if type_name != "Building" or not node_id.isdigit():
        raise ValidationFailed("address_id is a building id of this jurisdiction.", field="address_id")
    return int(node_id)


def _contact_name(first: str, last: str) -> str:
    """`first last` for Latin names; Chinese names read family name first (张 + 三 = 张三)."""
    first, last = strip_html(first), strip_html(last)
    if not (first or last):
        return "Open311"
    if any(c.isascii() and c.isalpha() for c in first + last):
        return " ".join(p for p in (first, last) if p)
    return last + first


async def file_request(
    uow: UnitOfWork, *, community: Community, pairs: Sequence[tuple[str, str]], now: datetime | None = None
) -> Ticket:
    """Create a ticket from the POSTed arguments of an authenticated client.

    Raises ValidationFailed (bad input), NotFound (unknown service), EmergencyNotice.
    """
    fields, attributes = _fields(pairs)
    service_code = fields.get("service_code", "")
    if not service_code:
        raise ValidationFailed("service_code is required.", field="service_code")
    category = await _category(uow.session, community, service_code)
    latitude = _coordinate(fields.get("lat"), "lat")
    longitude = _coordinate(fields.get("long"), "long")
    if (latitude is None) != (longitude is None):
        raise ValidationFailed("Give both lat and long.", field="lat")
    address = strip_html(fields.get("address_string", ""))
    address_id = fields.get("address_id", "")
    building_id = building_id_of(address_id) if address_id else None
    if latitude is None and not address and building_id is None:
        raise ValidationFailed("Give a location: lat and long, address_string or address_id.", field="lat")
    description = strip_html(fields.get("description", "")) or category.name
    draft = tickets_service.TicketDraft(
        category_id=category.id,
        description=description,
        place=tickets_service.Place(
            building_id=building_id, latitude=latitude, longitude=longitude, address_text=address or None
        ),
        answers=_answers(category, attributes),
    )
    try:
        return await tickets_service.submit_from_open311(
            uow,
            community_id=community.id,
            draft=draft,
            contact_name=_contact_name(fields.get("first_name", ""), fields.get("last_name", "")),
            now=now,
        )
    except NotFound as exc:  # the service exists; a building or room that does not is bad input
        raise ValidationFailed(exc.message, field="address_id") from exc


def _w3c(moment: datetime | None) -> str | None:
    return moment.astimezone(CHINA_TZ).isoformat(timespec="seconds") if moment else None


def service_notice(ticket: Ticket) -> str | None:
    """The promised first contact while it is still to come."""
    if ticket.status not in OPEN_STATUS_VALUES or ticket.acknowledged_at is not None or not ticket.callback_due_at:
        return None
    return f"staff will call back by {ticket.callback_due_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M} (UTC+08:00)"


def created(ticket: Ticket) -> list[Record]:
    """The POST answer: the new request's id and the promised call-back."""
    return [{"service_request_id": str(ticket.id), "service_notice": service_notice(ticket), "account_id": None}]


# -- querying requests -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """GET requests arguments; `ids` overrides the rest."""

    ids: tuple[int, ...] | None = None
    service_codes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: frozenset[str] = frozenset()
    page: int = 1
    page_size: int = MAX_REQUESTS


def _comma_list(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def _moment(raw: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"{name} is a W3C (ISO 8601) date-time.", field=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA_TZ)


def _positive(raw: str | None, name: str, default: int, limit: int) -> int:
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= limit:
        raise ValidationFailed(f"{name} is a whole number from 1 to {limit}.", field=name)
    return int(raw)


def parse_query(params: Mapping[str, str], *, now: datetime | None = None) -> RequestQuery:
    """Validate GET requests arguments (empty equals absent). Raises ValidationFailed."""
    ids = _comma_list(params.get("service_request_id"))
    if ids:
        if not all(i.isdigit() for i in ids) or len(ids) > MAX_REQUESTS:
            raise ValidationFailed(
                f"service_request_id is a comma list of at most {MAX_REQUESTS} ids.", field="service_request_id"
            )
        return RequestQuery(ids=tuple(int(i) for i in ids))
    now = now or utc_now()
    start_raw, end_raw = params.get("start_date"), params.get("end_date")
    start = _moment(start_raw, "start_date") if start_raw else None
    end = _moment(end_raw, "end_date") if end_raw else None
    if start is None and end is None:
        start, end = now - MAX_RANGE, now
    elif start is None:
        assert end is not None
        start = end - MAX_RANGE
    elif end is None:
        end = start + MAX_RANGE
    if end < start:
        raise ValidationFailed("end_date is before start_date.", field="end_date")
    if end - start > MAX_RANGE:
        raise ValidationFailed("The date range is at most 90 days.", field="end_date")
    statuses = frozenset(_comma_list(params.get("status")))
    if not statuses <= {OPEN, CLOSED}:
        raise ValidationFailed("status is open, closed or both (comma-separated).", field="status")
    return RequestQuery(
        service_codes=tuple(_comma_list(params.get("service_code"))),
        start=start,
        end=end,
        statuses=statuses,
        page=_positive(params.get("page"), "page", 1, 1_000_000),
        page_size=_positive(params.get("page_size"), "page_size", MAX_REQUESTS, MAX_REQUESTS),
    )


async def find_requests(session: AsyncSession, community: Community, query: RequestQuery) -> list[Record]:
    """The community's requests matching the query, newest first."""
    stmt = _base(community)
    if query.ids is not None:
        stmt = stmt.where(Ticket.id.in_(query.ids)).limit(MAX_REQUESTS)
    else:
        assert query.start is not None
        assert query.end is not None
        stmt = stmt.where(Ticket.created_at >= query.start, Ticket.created_at <= query.end)
        if query.service_codes:
            stmt = stmt.where(TicketCategory.code.in_(query.service_codes))
        if query.statuses == {OPEN}:
            stmt = stmt.where(Ticket.status.in_(OPEN_STATUS_VALUES))
        elif query.statuses == {CLOSED}:
            stmt = stmt.where(Ticket.status.not_in(OPEN_STATUS_VALUES))
        stmt = stmt.offset((query.page - 1) * query.page_size).limit(query.page_size)
    rows = (await session.execute(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()))).all()
    return await _records(session, community, rows)


async def get_request(session: AsyncSession, community: Community, service_request_id: str) -> list[Record]:
    """One request of the community, as a one-element list. Raises NotFound."""
    missing = NotFound(f"No service request {service_request_id!r} in this jurisdiction.", field="service_request_id")
    if not service_request_id.isdigit():
        raise missing
    rows = (await session.execute(_base(community).where(Ticket.id == int(service_request_id)))).all()
    if not rows:
        raise missing
    return await _records(session, community, rows)


def _base(community: Community) -> Select[Ticket, str, str, str]:  # the building name is None without one
    return (
        select(Ticket, TicketCategory.code, TicketCategory.name, Building.name)
        .join(TicketCategory, TicketCategory.id == Ticket.category_id)
        .outerjoin(Building, Building.id == Ticket.building_id)
        .where(Ticket.community_id == community.id)
    )


async def _status_notes(session: AsyncSession, ticket_ids: Sequence[int]) -> dict[int, str | None]:
    """The latest public note each ticket's handlers left (never one by the reporter)."""
    if not ticket_ids:
        return {}
    rows = await session.execute(
        select(TicketEvent.ticket_id, TicketEvent.note)
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .outerjoin(Account, Account.id == TicketEvent.actor_account_id)
        .where(
            TicketEvent.ticket_id.in_(ticket_ids),
            TicketEvent.public.is_(True),
            TicketEvent.note.is_not(None),
            TicketEvent.kind.in_(("status", "comment")),
            or_(
                TicketEvent.actor_account_id.is_(None),
                and_(
                    TicketEvent.actor_account_id != func.coalesce(Ticket.reporter_account_id, -1),
                    or_(
                        Account.resident_id.is_(None),
                        Ticket.reporter_resident_id.is_(None),
                        Account.resident_id != Ticket.reporter_resident_id,
                    ),
                ),
            ),
        )
        .order_by(TicketEvent.id)
    )
    return dict(rows.all())


def _address(ticket: Ticket, building_name: str | None) -> str | None:
    if ticket.address_text:
        return ticket.address_text
    if building_name is None:
        return None
    unit = f"{ticket.unit}单元" if ticket.unit is not None else ""
    room = f"{ticket.room}室" if ticket.room else ""
    return f"{building_name}{unit}{room}"


async def _records(session: AsyncSession, community: Community, rows: Sequence[Any]) -> list[Record]:
    notes = await _status_notes(session, [row[0].id for row in rows])
    agency = f"{community.name}居委会"
    records = []
    for ticket, code, name, building_name in rows:
        records.append(
            {
                "service_request_id": str(ticket.id),
                "status": OPEN if ticket.status in OPEN_STATUS_VALUES else CLOSED,
                "status_notes": notes.get(ticket.id),
                "service_name": name,
                "service_code": code,
                "description": ticket.description,
                "agency_responsible": agency,
                "service_notice": service_notice(ticket),
                "requested_datetime": _w3c(ticket.created_at),
                "updated_datetime": _w3c(ticket.updated_at),
                "expected_datetime": _w3c(ticket.resolution_due_at),
                "address": _address(ticket, building_name),
                "address_id": str(ticket.building_id) if ticket.building_id is not None else None,
                "lat": ticket.latitude,
                "long": ticket.longitude,
                "media_url": None,
            }
        )
    return records
