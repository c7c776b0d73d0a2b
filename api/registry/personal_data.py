"""Unmasked reads of personal fields: allowed by role, always written to the access log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, insert, select, text

from api.core.clock import utc_now
from api.core.crypto import PersonalDataCipher
from api.core.database import UnitOfWork
from api.core.errors import Forbidden, ValidationFailed
from api.core.viewer import Permission, Viewer
from api.registry.models import PersonalDataAccess, Resident


class PersonalField(StrEnum):
    NATIONAL_ID = "national_id"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class RevealRequest:
    resident_id: int
    field: PersonalField
    purpose: str


async def reveal(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    cipher: PersonalDataCipher,
    requests: Sequence[RevealRequest],
    request_id: str | None = None,
) -> list[str | None]:
    """Decrypt the requested fields, writing one access-log row per value shown.

    Raises Forbidden when the viewer lacks the right in a resident's community, and
    ValidationFailed when no purpose is given. Values come back in request order.
    """
    for r in requests:
        if len(r.purpose.strip()) < 2:
            raise ValidationFailed("Say why you need the unmasked value (purpose).", field="purpose")
    allowed = viewer.communities_where(Permission.VIEW_PERSONAL_DATA)
    ids = sorted({r.resident_id for r in requests})
    rows = {
        row.id: row
        for row in (
            await uow.session.execute(
                select(
                    Resident.id, Resident.community_id, Resident.national_id_encrypted, Resident.phone_encrypted
                ).where(Resident.id.in_(ids))
            )
        ).all()
    }
    out: list[str | None] = []
    log_rows = []
    now = utc_now()
    for r in requests:
        row = rows.get(r.resident_id)
        if row is None or row.community_id not in allowed:
            raise Forbidden("You may not see this person's unmasked data.")
        encrypted = row.national_id_encrypted if r.field is PersonalField.NATIONAL_ID else row.phone_encrypted
        if encrypted is None:
            out.append(None)
            continue
        out.append(cipher.decrypt(encrypted))
        log_rows.append(
            {
                "community_id": row.community_id,
                "actor_account_id": viewer.account_id,
                "subject_resident_id": r.resident_id,
                "field": r.field.value,
                "purpose": r.purpose.strip()[:200],
                "request_id": request_id,
                "accessed_at": now,
            }
        )
    if log_rows:
        await uow.session.execute(insert(PersonalDataAccess), log_rows)
    return out


async def purge_access_log(uow: UnitOfWork, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete access-log rows past their retention; the only delete the log allows (PostgreSQL trigger)."""
    now = now or utc_now()
    if uow.session.get_bind().dialect.name == "postgresql":
        await uow.session.execute(text("SET LOCAL linli.audit_purge = 'on'"))
    result = await uow.session.execute(
        delete(PersonalDataAccess)
        .where(PersonalDataAccess.accessed_at < now - older_than)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
