"""Open311 GeoReport v2 at /open311/v2, through the real ASGI app on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from strawberry.relay import GlobalID

from api.core.clock import CHINA_TZ, utc_now
from api.core.viewer import Role
from api.open311.service import create_client
from api.tickets import service as tickets_service
from api.tickets.categories import DEFAULT_CATEGORIES
from api.tickets.models import Open311Client, Ticket, TicketCategory
from api.tickets.service import Place, TicketDraft, ensure_categories
from tests.factories import Estate, Login, make_estate, make_login

BASE = "/open311/v2"
GAS_NOTICE = "燃气泄漏请立即开窗、不要开关电器，离开后拨打燃气抢修电话或119。"
RECORD_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "lat", "long", "media_url",
]  # fmt: skip

CHANGE = """
mutation Change($input: ChangeTicketStatusInput!) {
  changeTicketStatus(input: $input) { __typename ... on TicketSuccess { ticket { status } } }
}
"""
COMMENT = """
mutation Comment($input: CommentOnTicketInput!) {
  commentOnTicket(input: $input) { __typename }
}
"""
SUBMIT = """
mutation Submit($input: SubmitTicketInput!) {
  submitTicket(input: $input) { __typename ... on SubmitTicketSuccess { ticket { id } } }
}
"""


@dataclass
class Town:
    """Two communities with the default catalogue; the hotline holds a key for 明珠 (mingzhu)."""

    estate: Estate
    other: Estate
    key: str
    other_key: str
    staff: Login
    reporter: Login

    @property
    def cid(self) -> int:
        return self.estate.community.id


@pytest.fixture
async def town(services) -> Town:
    estate = await make_estate(services, households=2, members=1, code="mingzhu")
    other = await make_estate(services, households=1, members=1, code="xinhua")
    async with services.db.unit_of_work() as uow:
        await ensure_categories(uow, community_ids=[estate.community.id, other.community.id])
        _, key = await create_client(uow, community_code="mingzhu", name="市民热线")
        _, other_key = await create_client(uow, community_code="xinhua", name="新华热线")
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    reporter = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=estate.residents[0])
    return Town(estate, other, key, other_key, staff, reporter)


async def ticket_count(services) -> int:
    async with services.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)


async def file_ticket(services, community_id: int, code: str, *, days_ago: float, **place: Any) -> Ticket:
    """A ticket filed through the Open311 service path at a chosen time."""
    async with services.db.unit_of_work() as uow:
        category_id = await uow.session.scalar(
            select(TicketCategory.id).where(TicketCategory.community_id == community_id, TicketCategory.code == code)
        )
        return await tickets_service.submit_from_open311(
            uow,
            community_id=community_id,
            draft=TicketDraft(category_id=category_id, description=f"{code} 问题", place=Place(**place)),
            contact_name="王五",
            now=utc_now() - timedelta(days=days_ago),
        )


def w3c(moment) -> str:
    text: str = moment.astimezone(CHINA_TZ).isoformat(timespec="seconds")
    return text


def xml_records(text: str, item: str) -> list[dict[str, str | None]]:
    return [{child.tag: child.text for child in element} for element in ET.fromstring(text).findall(item)]


# -- discovery and services ------------------------------------------------------------------


async def test_discovery_describes_the_endpoint_in_json_and_xml(client):
    # when
    as_json = await client.get(f"{BASE}/discovery.json")
    as_xml = await client.get(f"{BASE}/discovery.xml")
    # then
    assert as_json.status_code == 200
    body = as_json.json()
    assert set(body) == {"changeset", "contact", "key_service", "endpoints"}
    assert body["endpoints"] == [
        {
            "specification": "http://wiki.open311.org/GeoReport_v2",
            "url": "http://linli.test/open311/v2",
            "changeset": body["changeset"],
            "type": "production",
            "formats": ["application/json", "text/xml"],
        }
    ]
    assert as_xml.headers["content-type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(as_xml.content)
    assert root.tag == "discovery"
    assert root.findtext("endpoints/endpoint/url") == "http://linli.test/open311/v2"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ["application/json", "text/xml"]


async def test_services_list_the_active_categories_of_the_jurisdiction(client, services, town):
    # given: one category switched off
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(
            update(TicketCategory)
            .where(TicketCategory.community_id == town.cid, TicketCategory.code == "haircut")
            .values(active=False)
        )
    # when
    response = await client.get(f"{BASE}/services.json", params={"jurisdiction_id": "mingzhu"})
    # then
    assert response.status_code == 200
    listed = response.json()
    assert [s["service_code"] for s in listed] == [c[0] for c in DEFAULT_CATEGORIES if c[0] != "haircut"]
    assert listed[4] == {
        "service_code": "leak",
        "service_name": "漏水",
        "description": "",
        "metadata": True,
        "type": "realtime",
        "keywords": "",
        "group": "居家维修",
    }
    assert next(s for s in listed if s["service_code"] == "street_light")["metadata"] is False


async def test_services_list_in_xml(client, town):
    response = await client.get(f"{BASE}/services.xml", params={"jurisdiction_id": "mingzhu"})
    assert response.status_code == 200
    services_xml = xml_records(response.text, "service")
    assert len(services_xml) == len(DEFAULT_CATEGORIES)
    assert services_xml[6] == {
        "service_code": "gas",
        "service_name": "燃气问题",
        "description": None,
        "metadata": "true",
        "type": "realtime",
        "keywords": None,
        "group": "居家维修",
    }


async def test_service_definition_maps_questions_to_attributes(client, services, town):
    # given: a category with a number and a text question
    async with services.db.unit_of_work() as uow:
        uow.session.add(
            TicketCategory(
                community_id=town.cid, code="noise", name="噪音扰民", group="公共秩序", kind="report", area="public",
                skill=None, callback_minutes=60, injury_callback_minutes=15, resolution_hours=24,
                questions=[
                    {"code": "decibels", "label": "大约多少分贝？", "kind": "number", "required": False},
                    {"code": "source", "label": "噪音来源", "kind": "text", "required": True},
                ],
            )
        )  # fmt: skip
    # when
    gas = await client.get(f"{BASE}/services/gas.json", params={"jurisdiction_id": "mingzhu"})
    noise = await client.get(f"{BASE}/services/noise.json", params={"jurisdiction_id": "mingzhu"})
    # then
    assert gas.status_code == 200
    assert gas.json() == {
        "service_code": "gas",
        "attributes": [
            {
                "variable": True,
                "code": "smell_gas",
                "datatype": "singlevaluelist",
                "required": True,
                "datatype_description": "true or false",
                "order": 1,
                "description": "闻到燃气味了吗？",
                "values": [{"key": "true", "name": "是"}, {"key": "false", "name": "否"}],
            }
        ],
    }
    attributes = noise.json()["attributes"]
    assert [(a["code"], a["datatype"], a["required"], a["order"], a["values"]) for a in attributes] == [
        ("decibels", "number", False, 1, []),
        ("source", "string", True, 2, []),
    ]


async def test_service_definition_in_xml_lists_the_choices(client, town):
    response = await client.get(f"{BASE}/services/leak.xml", params={"jurisdiction_id": "mingzhu"})
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "leak"
    attribute = root.find("attributes/attribute")
    assert attribute is not None
    assert attribute.findtext("code") == "where"
    assert attribute.findtext("datatype") == "singlevaluelist"
    assert attribute.findtext("required") == "true"
    assert [v.findtext("key") for v in attribute.findall("values/value")] == [
        "厨房",
        "卫生间",
        "楼上渗漏",
        "管道井",
        "其他",
    ]


# -- posting ---------------------------------------------------------------------------------


async def test_a_valid_key_files_a_ticket_on_the_open311_channel_with_the_answers(client, services, town):
    # given
    building = town.estate.buildings[0]
    # when
    response = await client.post(
        f"{BASE}/requests.json",
        data={
            "jurisdiction_id": "mingzhu",
            "api_key": town.key,
            "service_code": "leak",
            "address_id": str(building.id),
            "attribute[where]": "厨房",
            "description": "<p>厨房水管<b>漏水</b></p>",
            "first_name": "三",
            "last_name": "张",
            "phone": "13912345678",
        },
    )
    # then
    assert response.status_code == 200, response.text
    async with services.db.read_session() as session:
        ticket = await session.scalar(select(Ticket))
    assert ticket is not None
    local_due = ticket.callback_due_at.astimezone(CHINA_TZ)
    assert response.json() == [
        {
            "service_request_id": str(ticket.id),
            "service_notice": f"staff will call back by {local_due:%Y-%m-%d %H:%M} (UTC+08:00)",
            "account_id": None,
        }
    ]
    assert ticket.channel == "open311"
    assert ticket.answers == {"where": "厨房"}
    assert ticket.description == "厨房水管漏水"
    assert ticket.contact_name == "张三"
    assert ticket.building_id == building.id
    assert (ticket.reporter_account_id, ticket.reporter_resident_id, ticket.created_by_account_id) == (None, None, None)
    assert ticket.status == "submitted"


async def test_post_in_xml_with_a_map_point_and_latin_names(client, services, town):
    response = await client.post(
        f"{BASE}/requests.xml",
        data={
            "jurisdiction_id": "mingzhu", "api_key": town.key, "service_code": "street_light",
            "lat": "38.0428", "long": "114.5149", "first_name": "Ann", "last_name": "Lee",
        },
    )  # fmt: skip
    assert response.status_code == 200, response.text
    async with services.db.read_session() as session:
        ticket = await session.scalar(select(Ticket))
    assert ticket is not None
    root = ET.fromstring(response.content)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == str(ticket.id)
    assert (ticket.latitude, ticket.longitude, ticket.contact_name) == (38.0428, 114.5149, "Ann Lee")
    assert ticket.description == "路灯不亮"  # no description: the service's name


@pytest.mark.parametrize("key", [None, "", "not-a-key", "other"], ids=["missing", "empty", "wrong", "other-community"])
async def test_post_without_a_valid_key_is_forbidden_and_files_nothing(client, services, town, key):
    # given
    data = {"jurisdiction_id": "mingzhu", "service_code": "street_light", "lat": "38.04", "long": "114.51"}
    if key is not None:
        data["api_key"] = town.other_key if key == "other" else key
    # when
    response = await client.post(f"{BASE}/requests.json", data=data)
    # then
    assert response.status_code == 403
    body = response.json()
    assert len(body) == 1
    assert body[0]["code"] == 403
    assert await ticket_count(services) == 0


async def test_an_inactive_client_is_forbidden(client, services, town):
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(update(Open311Client).values(active=False))
    response = await client.post(
        f"{BASE}/requests.json",
        data={
            "jurisdiction_id": "mingzhu",
            "api_key": town.key,
            "service_code": "street_light",
            "lat": "1",
            "long": "2",
        },
    )
    assert response.status_code == 403
    assert await ticket_count(services) == 0


@pytest.mark.parametrize(
    ("fields", "status", "description"),
    [
        ({"service_code": "street_light"}, 400, "Give a location: lat and long, address_string or address_id."),
        ({"lat": "38.04", "long": "114.51"}, 400, "service_code is required."),
        ({"service_code": "street_light", "lat": "38.04"}, 400, "Give both lat and long."),
        ({"service_code": "street_light", "lat": "north", "long": "114.51"}, 400, "lat is a WGS84 coordinate in degrees."),
        ({"service_code": "street_light", "lat": "95", "long": "114.51"}, 400, "That is not a place on Earth."),
        (
            {"service_code": "street_light", "address_string": "明珠路", "attribute[colour]": "red"},
            400,
            "Unknown attribute 'colour' for service 'street_light'.",
        ),
        ({"service_code": "leak", "address_string": "明珠路"}, 400, "Please answer: 漏水位置"),
        ({"service_code": "leak", "address_id": "999999", "attribute[where]": "厨房"}, 400, "No such building in this community."),
        ({"service_code": "leak", "address_id": "QnVpbGRpbmc=", "attribute[where]": "厨房"}, 400, "address_id is a building id of this jurisdiction."),
        ({"service_code": "lift", "address_string": "1号楼", "attribute[people_trapped]": "maybe"}, 400, "Attribute 'people_trapped' is true or false."),
        ({"service_code": "street_light", "address_string": "明珠路", "description": "长" * 4001}, 400, "At most 4000 characters."),
        ({"service_code": "no_such_service", "address_string": "明珠路"}, 404, "No service 'no_such_service' in this jurisdiction."),
    ],
    ids=[
        "no-location", "no-service-code", "half-a-point", "bad-lat", "off-earth", "unknown-attribute",
        "required-attribute", "unknown-building", "not-a-building-id", "bad-boolean", "long-description",
        "unknown-service",
    ],
)  # fmt: skip
async def test_bad_posts_are_typed_errors_and_file_nothing(client, services, town, fields, status, description):
    # when
    response = await client.post(
        f"{BASE}/requests.json", data={"jurisdiction_id": "mingzhu", "api_key": town.key, **fields}
    )
    # then
    assert response.status_code == status
    assert response.json() == [{"code": status, "description": description}]
    assert await ticket_count(services) == 0


async def test_a_building_of_another_community_is_not_a_place_here(client, services, town):
    response = await client.post(
        f"{BASE}/requests.json",
        data={
            "jurisdiction_id": "mingzhu", "api_key": town.key, "service_code": "leak",
            "address_id": str(town.other.buildings[0].id), "attribute[where]": "厨房",
        },
    )  # fmt: skip
    assert response.status_code == 400
    assert await ticket_count(services) == 0


async def test_a_gas_smell_is_refused_with_the_emergency_notice_in_json_and_xml(client, services, town):
    data = {
        "jurisdiction_id": "mingzhu",
        "api_key": town.key,
        "service_code": "gas",
        "address_id": str(GlobalID("Building", str(town.estate.buildings[0].id))),
        "attribute[smell_gas]": "true",
    }
    as_json = await client.post(f"{BASE}/requests.json", data=data)
    as_xml = await client.post(f"{BASE}/requests.xml", data=data)
    assert as_json.status_code == 400
    assert as_json.json() == [{"code": 400, "description": GAS_NOTICE}]
    assert as_xml.status_code == 400
    assert xml_records(as_xml.text, "error") == [{"code": "400", "description": GAS_NOTICE}]
    assert await ticket_count(services) == 0


async def test_a_post_that_is_not_urlencoded_is_refused(client, services, town):
    response = await client.post(
        f"{BASE}/requests.json",
        json={"jurisdiction_id": "mingzhu", "api_key": town.key, "service_code": "street_light"},
    )
    assert response.status_code == 400
    assert response.json()[0]["description"] == "Send the arguments as application/x-www-form-urlencoded."
    assert await ticket_count(services) == 0


# -- querying --------------------------------------------------------------------------------


@dataclass
class Filed:
    light: Ticket  # street light, 10 days ago, open
    road: Ticket  # road damage, 5 days ago, resolved
    old: Ticket  # manhole, 100 days ago, open
    elsewhere: Ticket  # the other community, 1 day ago


@pytest.fixture
async def filed(services, town) -> Filed:
    light = await file_ticket(services, town.cid, "street_light", days_ago=10, latitude=38.04, longitude=114.51)
    road = await file_ticket(services, town.cid, "road_damage", days_ago=5, address_text="明珠路与和平路口")
    old = await file_ticket(services, town.cid, "manhole", days_ago=100, address_text="明珠路")
    elsewhere = await file_ticket(services, town.other.community.id, "street_light", days_ago=1, address_text="新华路")
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(update(Ticket).where(Ticket.id == road.id).values(status="resolved"))
    return Filed(light, road, old, elsewhere)


async def request_ids(client, **params) -> list[int]:
    response = await client.get(f"{BASE}/requests.json", params={"jurisdiction_id": "mingzhu", **params})
    assert response.status_code == 200, response.text
    return [int(r["service_request_id"]) for r in response.json()]


async def test_get_requests_defaults_to_the_last_90_days_of_the_jurisdiction(client, filed):
    assert await request_ids(client) == [filed.road.id, filed.light.id]


async def test_get_requests_filters_by_status(client, filed):
    assert await request_ids(client, status="open") == [filed.light.id]
    assert await request_ids(client, status="closed") == [filed.road.id]
    assert await request_ids(client, status="open,closed") == [filed.road.id, filed.light.id]


async def test_get_requests_filters_by_service_code(client, filed):
    assert await request_ids(client, service_code="street_light") == [filed.light.id]
    assert await request_ids(client, service_code="street_light,road_damage") == [filed.road.id, filed.light.id]
    assert await request_ids(client, service_code="haircut") == []


async def test_get_requests_filters_by_dates(client, filed):
    now = utc_now()
    # then: a window in the past finds the old ticket; a start alone covers the 90 days after it
    assert await request_ids(
        client, start_date=w3c(now - timedelta(days=120)), end_date=w3c(now - timedelta(days=40))
    ) == [filed.old.id]
    assert await request_ids(client, start_date=w3c(now - timedelta(days=7))) == [filed.road.id]
    assert await request_ids(client, end_date=w3c(now - timedelta(days=7))) == [filed.light.id]
    # naive times are China time
    start = (now - timedelta(days=11)).astimezone(CHINA_TZ).replace(tzinfo=None).isoformat(timespec="seconds")
    end = (now - timedelta(days=9)).astimezone(CHINA_TZ).replace(tzinfo=None).isoformat(timespec="seconds")
    assert await request_ids(client, start_date=start, end_date=end) == [filed.light.id]


async def test_get_requests_by_ids_overrides_the_other_filters_but_not_the_jurisdiction(client, filed):
    ids = f"{filed.old.id},{filed.light.id},{filed.elsewhere.id}"
    assert await request_ids(client, service_request_id=ids, status="closed") == [filed.light.id, filed.old.id]


async def test_get_requests_pages(client, filed):
    assert await request_ids(client, page_size="1") == [filed.road.id]
    assert await request_ids(client, page_size="1", page="2") == [filed.light.id]
    assert await request_ids(client, page_size="1", page="3") == []


async def test_another_communitys_requests_never_appear(client, filed):
    response = await client.get(f"{BASE}/requests.json", params={"jurisdiction_id": "xinhua"})
    assert [int(r["service_request_id"]) for r in response.json()] == [filed.elsewhere.id]
    one = await client.get(f"{BASE}/requests/{filed.elsewhere.id}.json", params={"jurisdiction_id": "mingzhu"})
    assert one.status_code == 404


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"start_date": "last tuesday"}, "start_date is a W3C (ISO 8601) date-time."),
        ({"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-04-02T00:00:00+08:00"}, "The date range is at most 90 days."),
        ({"start_date": "2026-02-01T00:00:00+08:00", "end_date": "2026-01-01T00:00:00+08:00"}, "end_date is before start_date."),
        ({"status": "pending"}, "status is open, closed or both (comma-separated)."),
        ({"service_request_id": "1,abc"}, "service_request_id is a comma list of at most 1000 ids."),
        ({"page_size": "1001"}, "page_size is a whole number from 1 to 1000."),
        ({"page": "0"}, "page is a whole number from 1 to 1000000."),
    ],
    ids=["bad-date", "too-long", "reversed", "bad-status", "bad-id", "big-page", "page-zero"],
)  # fmt: skip
async def test_bad_queries_are_400(client, town, params, description):
    response = await client.get(f"{BASE}/requests.json", params={"jurisdiction_id": "mingzhu", **params})
    assert response.status_code == 400
    assert response.json() == [{"code": 400, "description": description}]


async def test_a_request_record_has_the_open311_fields_and_no_personal_data(client, services, gql, town):
    # given: a resident reports through the app; staff comment publicly, then the resident adds a note
    building = town.estate.buildings[0]
    household = town.estate.households[0]
    async with services.db.read_session() as session:
        leak_id = await session.scalar(
            select(TicketCategory.id).where(TicketCategory.community_id == town.cid, TicketCategory.code == "leak")
        )
    submitted = await gql(
        SUBMIT,
        {
            "input": {
                "categoryId": str(GlobalID("TicketCategory", str(leak_id))),
                "description": "卫生间漏水",
                "place": {
                    "buildingId": str(GlobalID("Building", str(household.building_id))),
                    "unit": household.unit,
                    "room": household.room,
                },
                "answers": {"where": "卫生间"},
            }
        },
        token=town.reporter.token,
    )
    gid = submitted["submitTicket"]["ticket"]["id"]
    await gql(COMMENT, {"input": {"ticketId": gid, "note": "师傅明天上午到"}}, token=town.staff.token)
    await gql(COMMENT, {"input": {"ticketId": gid, "note": "我的电话13900001111"}}, token=town.reporter.token)
    await gql(
        COMMENT, {"input": {"ticketId": gid, "note": "内部：先联系物业", "public": False}}, token=town.staff.token
    )
    async with services.db.read_session() as session:
        ticket = await session.scalar(select(Ticket))
    assert ticket is not None
    # when
    as_json = await client.get(f"{BASE}/requests/{ticket.id}.json", params={"jurisdiction_id": "mingzhu"})
    as_xml = await client.get(f"{BASE}/requests/{ticket.id}.xml", params={"jurisdiction_id": "mingzhu"})
    # then
    assert as_json.status_code == 200
    expected = {
        "service_request_id": str(ticket.id),
        "status": "open",
        "status_notes": "师傅明天上午到",
        "service_name": "漏水",
        "service_code": "leak",
        "description": "卫生间漏水",
        "agency_responsible": "测试社区居委会",
        "service_notice": f"staff will call back by {ticket.callback_due_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M} (UTC+08:00)",
        "requested_datetime": w3c(ticket.created_at),
        "updated_datetime": w3c(ticket.updated_at),
        "expected_datetime": w3c(ticket.resolution_due_at),
        "address": f"{building.name}{household.unit}单元{household.room}室",
        "address_id": str(building.id),
        "lat": None,
        "long": None,
        "media_url": None,
    }
    assert as_json.json() == [expected]
    assert list(as_json.json()[0]) == RECORD_FIELDS
    assert w3c(ticket.created_at).endswith("+08:00")
    for private in (town.reporter.phone, town.reporter.account.display_name, "13900001111", "内部"):
        assert private not in as_json.text
        assert private not in as_xml.text
    assert xml_records(as_xml.text, "request") == [{k: (None if v is None else str(v)) for k, v in expected.items()}]


@pytest.mark.parametrize(
    ("path", "params", "status", "description"),
    [
        ("/services.json", {"jurisdiction_id": "nowhere"}, 404, "No jurisdiction 'nowhere'."),
        ("/services.json", {}, 400, "jurisdiction_id is required: this endpoint serves several communities."),
        ("/services/no_such.json", {"jurisdiction_id": "mingzhu"}, 404, "No service 'no_such' in this jurisdiction."),
        ("/requests.json", {"jurisdiction_id": "nowhere"}, 404, "No jurisdiction 'nowhere'."),
        ("/requests/999999.json", {"jurisdiction_id": "mingzhu"}, 404, "No service request '999999' in this jurisdiction."),
        ("/requests/abc.json", {"jurisdiction_id": "mingzhu"}, 404, "No service request 'abc' in this jurisdiction."),
        ("/services.html", {"jurisdiction_id": "mingzhu"}, 404, "Ask for .json or .xml."),
    ],
    ids=["unknown-jurisdiction", "no-jurisdiction", "unknown-service", "requests-unknown-jurisdiction",
         "unknown-request", "non-numeric-request", "unknown-format"],
)  # fmt: skip
async def test_unknown_things_are_404_with_an_error_list(client, town, path, params, status, description):
    response = await client.get(f"{BASE}{path}", params=params)
    assert response.status_code == status
    assert response.json() == [{"code": status, "description": description}]


async def test_an_unknown_jurisdiction_is_404_in_xml_too(client, town):
    response = await client.get(f"{BASE}/services.xml", params={"jurisdiction_id": "nowhere"})
    assert response.status_code == 404
    assert xml_records(response.text, "error") == [{"code": "404", "description": "No jurisdiction 'nowhere'."}]


async def test_an_unknown_jurisdiction_is_404_before_the_key_is_checked(client, services, town):
    response = await client.post(
        f"{BASE}/requests.json",
        data={
            "jurisdiction_id": "nowhere",
            "api_key": town.key,
            "service_code": "street_light",
            "lat": "1",
            "long": "2",
        },
    )
    assert response.status_code == 404
    assert await ticket_count(services) == 0


# -- a real client ---------------------------------------------------------------------------


class Open311App:
    """What a city app does: discover the endpoint, pick a service, file a report and poll it."""

    def __init__(self, http: httpx.AsyncClient, *, jurisdiction: str, api_key: str) -> None:
        self.http = http
        self.jurisdiction = jurisdiction
        self.api_key = api_key
        self.endpoint = ""

    async def discover(self) -> None:
        response = await self.http.get(f"{BASE}/discovery.json")
        response.raise_for_status()
        endpoint = next(e for e in response.json()["endpoints"] if e["type"] == "production")
        assert "application/json" in endpoint["formats"]
        self.endpoint = httpx.URL(endpoint["url"]).path

    async def service_code(self, name: str) -> str:
        response = await self.http.get(f"{self.endpoint}/services.json", params={"jurisdiction_id": self.jurisdiction})
        response.raise_for_status()
        code: str = next(s["service_code"] for s in response.json() if s["service_name"] == name)
        return code

    async def report(self, **fields: str) -> tuple[str, str]:
        response = await self.http.post(
            f"{self.endpoint}/requests.json",
            data={"jurisdiction_id": self.jurisdiction, "api_key": self.api_key, **fields},
        )
        response.raise_for_status()
        [created] = response.json()
        return created["service_request_id"], created["service_notice"]

    async def follow(
        self, request_id: str, *, until: str, polled: asyncio.Event, interval: float = 0.02, attempts: int = 500
    ) -> list[tuple[str, str | None]]:
        """Poll the request; returns each distinct (status, status_notes) seen, until `until`."""
        seen: list[tuple[str, str | None]] = []
        for _ in range(attempts):
            response = await self.http.get(
                f"{self.endpoint}/requests/{request_id}.json", params={"jurisdiction_id": self.jurisdiction}
            )
            response.raise_for_status()
            [record] = response.json()
            state = (record["status"], record["status_notes"])
            if not seen or seen[-1] != state:
                seen.append(state)
            polled.set()
            if record["status"] == until:
                return seen
            await asyncio.sleep(interval)
        raise AssertionError(f"request {request_id} never became {until}; saw {seen}")


async def test_an_open311_app_files_a_report_and_sees_staff_close_it(client, gql, services, town):
    # given: the app has discovered the endpoint and picked a service
    app = Open311App(client, jurisdiction="mingzhu", api_key=town.key)
    await app.discover()
    code = await app.service_code("路灯不亮")
    # when: it files a report and polls it while staff call back and fix it
    request_id, notice = await app.report(
        service_code=code,
        lat="38.0431",
        long="114.5122",
        description="小区门口路灯不亮",
        first_name="四",
        last_name="李",
    )
    polled = asyncio.Event()
    following = asyncio.create_task(app.follow(request_id, until="closed", polled=polled))

    async def staff_work() -> list[str]:
        await polled.wait()  # the app has seen it open
        ticket_gid = str(GlobalID("Ticket", request_id))
        done = []
        for action, note in (("ACKNOWLEDGE", "已电话联系"), ("RESOLVE", "路灯已修复")):
            data = await gql(
                CHANGE, {"input": {"ticketId": ticket_gid, "action": action, "note": note}}, token=town.staff.token
            )
            done.append(data["changeTicketStatus"]["ticket"]["status"])
            await asyncio.sleep(0.05)
        return done

    staff_done = await staff_work()
    seen = await asyncio.wait_for(following, timeout=30)
    # then
    assert notice.startswith("staff will call back by ")
    assert staff_done == ["ACKNOWLEDGED", "RESOLVED"]
    assert seen[0] == ("open", None)
    assert seen[-1] == ("closed", "路灯已修复")
    assert set(seen[1:-1]) <= {("open", "已电话联系")}
    async with services.db.read_session() as session:
        ticket = await session.get(Ticket, int(request_id))
    assert ticket is not None
    assert (ticket.channel, ticket.status, ticket.contact_name) == ("open311", "resolved", "李四")
    final = await client.get(f"{BASE}/requests/{request_id}.json", params={"jurisdiction_id": "mingzhu"})
    record = final.json()[0]
    assert record["updated_datetime"] == w3c(ticket.updated_at)
    assert record["service_notice"] is None


# -- the key command -------------------------------------------------------------------------


async def test_the_cli_prints_a_key_once_and_stores_only_its_hash(client, services, settings, town):
    # when
    env = {**os.environ, "LINLI_DATABASE_URL": settings.database_url, "LINLI_SEED_ON_START": "false"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "open311-key", "--community", "mingzhu", "--name", "市民热线二号",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    unknown = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "open311-key", "--community", "nowhere", "--name", "x",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, unknown_err = await asyncio.wait_for(unknown.communicate(), timeout=60)
    # then
    assert proc.returncode == 0, err.decode()
    key = out.decode().strip().splitlines()[-1]
    assert len(key) >= 43
    async with services.db.read_session() as session:
        row = await session.scalar(select(Open311Client).where(Open311Client.name == "市民热线二号"))
    assert row is not None
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert (row.community_id, row.active) == (town.cid, True)
    response = await client.post(
        f"{BASE}/requests.json",
        data={"jurisdiction_id": "mingzhu", "api_key": key, "service_code": "street_light", "address_string": "明珠路"},
    )
    assert response.status_code == 200
    assert unknown.returncode == 1
    assert "No jurisdiction 'nowhere'." in unknown_err.decode()


async def test_xml_escapes_untrusted_text_and_drops_characters_xml_cannot_hold(client, services, town):
    # given: text as typed at a counter, markup characters and a control character included
    async with services.db.unit_of_work() as uow:
        category_id = await uow.session.scalar(
            select(TicketCategory.id).where(
                TicketCategory.community_id == town.cid, TicketCategory.code == "street_light"
            )
        )
        ticket = await tickets_service.submit_from_open311(
            uow,
            community_id=town.cid,
            draft=TicketDraft(
                category_id=category_id,
                description='灯 </description><evil a="1"/> & \x07亮',
                place=Place(address_text="<明珠路>"),
            ),
            contact_name="Open311",
        )
    # when
    response = await client.get(f"{BASE}/requests/{ticket.id}.xml", params={"jurisdiction_id": "mingzhu"})
    # then
    [record] = xml_records(response.text, "request")
    assert record["description"] == '灯 </description><evil a="1"/> & 亮'
    assert record["address"] == "<明珠路>"
    assert ET.fromstring(response.content).find(".//evil") is None
