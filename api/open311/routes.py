"""The Open311 GeoReport v2 HTTP adapter: paths, formats (.json / .xml) and error bodies.

Mounted at /open311/v2 by api.app. Every answer is UTF-8; errors are a list of
`{code, description}` with 400 (bad input), 403 (api_key) or 404 (unknown jurisdiction,
service or request). XML is built with ElementTree, never by pasting strings together.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api.core.database import Database
from api.core.errors import DomainError, Forbidden, NotFound, Unauthenticated, ValidationFailed
from api.core.jobs import JobSender
from api.open311 import service
from api.tickets.categories import EmergencyNotice

log = logging.getLogger(__name__)

FORMATS = ("json", "xml")
MAX_BODY_BYTES = 256 * 1024
MAX_FIELDS = 200
# XML: the element of each item of a list, by the list's element name.
ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

Reply = tuple[str, Any]  # (XML root element, body)
Handler = Callable[[Request], Awaitable[Reply]]


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, list):
        item_tag = ITEMS[element.tag]
        for item in value:
            _fill(ET.SubElement(element, item_tag), item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = _NOT_XML.sub("", str(value))


def to_xml(root: str, body: Any) -> bytes:
    """The body as an XML document whose root element is `root`."""
    element = ET.Element(root)
    _fill(element, body)
    document: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return document


def _render(fmt: str, root: str, body: Any, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(to_xml(root, body), status_code=status, media_type="text/xml")
    return JSONResponse(body, status_code=status)


def _error(fmt: str, status: int, description: str) -> Response:
    return _render(fmt, "errors", [{"code": status, "description": description}], status)


def _status_of(exc: DomainError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Forbidden | Unauthenticated):
        return 403
    return 400


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Pick the format from the path's suffix and turn domain errors into Open311 errors."""

    async def endpoint(request: Request) -> Response:
        fmt = request.path_params["fmt"]
        if fmt not in FORMATS:
            return _error("json", 404, "Ask for .json or .xml.")
        try:
            root, body = await handler(request)
        except EmergencyNotice as exc:
            return _error(fmt, 400, exc.notice or exc.message)
        except DomainError as exc:
            return _error(fmt, _status_of(exc), exc.message)
        except Exception:
            log.exception("Open311 %s %s failed", request.method, request.url.path)
            return _error(fmt, 500, "The service is unavailable; try again later.")
        return _render(fmt, root, body)

    return endpoint


async def _form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body's arguments (bounded in size and count)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type not in ("", "application/x-www-form-urlencoded"):
        raise ValidationFailed("Send the arguments as application/x-www-form-urlencoded.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ValidationFailed("The request body is too large.")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except ValueError:  # bad UTF-8 (UnicodeDecodeError is a ValueError) or too many fields
        raise ValidationFailed("The body is not valid urlencoded UTF-8 with at most 200 arguments.") from None


class Backend(Protocol):
    """What the routes use of the process's services (read per request)."""

    @property
    def db(self) -> Database: ...

    @property
    def jobs(self) -> JobSender: ...


def open311_routes(backend: Backend) -> list[BaseRoute]:
    """The GeoReport v2 routes, to mount at /open311/v2."""

    async def discovery(request: Request) -> Reply:
        url = str(request.url.replace(query="")).rsplit("/discovery.", 1)[0]
        return "discovery", service.discovery(url)

    async def services(request: Request) -> Reply:
        async with backend.db.read_session() as session:
            community = await service.jurisdiction(session, request.query_params.get("jurisdiction_id"))
            return "services", await service.service_list(session, community)

    async def definition(request: Request) -> Reply:
        async with backend.db.read_session() as session:
            community = await service.jurisdiction(session, request.query_params.get("jurisdiction_id"))
            return "service_definition", await service.service_definition(
                session, community, request.path_params["code"]
            )

    async def requests(request: Request) -> Reply:
        if request.method == "POST":
            return await post_request(request)
        async with backend.db.read_session() as session:
            community = await service.jurisdiction(session, request.query_params.get("jurisdiction_id"))
            query = service.parse_query(request.query_params)
            return "service_requests", await service.find_requests(session, community, query)

    async def post_request(request: Request) -> Reply:
        pairs = [*request.query_params.multi_items(), *await _form(request)]
        fields = {key: value.strip() for key, value in pairs}
        async with backend.db.unit_of_work(backend.jobs) as uow:
            community = await service.jurisdiction(uow.session, fields.get("jurisdiction_id"))
            await service.authenticate(uow.session, community=community, api_key=fields.get("api_key"))
            ticket = await service.file_request(uow, community=community, pairs=pairs)
        return "service_requests", service.created(ticket)

    async def one_request(request: Request) -> Reply:
        async with backend.db.read_session() as session:
            community = await service.jurisdiction(session, request.query_params.get("jurisdiction_id"))
            return "service_requests", await service.get_request(session, community, request.path_params["id"])

    return [
        Route("/discovery.{fmt}", _endpoint(discovery), methods=["GET"]),
        Route("/services.{fmt}", _endpoint(services), methods=["GET"]),
        Route("/services/{code}.{fmt}", _endpoint(definition), methods=["GET"]),
        Route("/requests.{fmt}", _endpoint(requests), methods=["GET", "POST"]),
        Route("/requests/{id}.{fmt}", _endpoint(one_request), methods=["GET"]),
    ]
