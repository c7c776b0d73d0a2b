"""Demo data of the notices domain (runs after the registry seed): announcements in 明珠花苑 and 智汇城."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from api.core.clock import CHINA_TZ, local_today, utc_now
from api.core.database import Database, UnitOfWork
from api.notices import service as notices_service
from api.notices.models import Notice, NoticeStatus
from api.registry.models import Community, Compound, ResidentTag

COMMUNITY_CODES = ("mingzhu", "zhihuicheng")
PUBLISHED = (
    (
        "冬季供暖及安全用气提示",
        "供暖季已开始，请各位居民注意室内通风，安全使用燃气；如发现暖气不热或漏水，请通过“报事报修”反映。",
    ),
    (
        "幸福食堂订餐须知",
        "午餐请于当天9:30前预订，晚餐于15:00前预订。80岁以上及行动不便的老人可申请送餐上门。",
    ),
)
LONE_ELDERS = (
    "爱心敲门：本周上门探访安排",
    "社区志愿者本周将上门探访独居老人，检查燃气和用电安全，请保持电话畅通。",
)
DRAFT = ("春节联欢会节目征集", "欢迎居民报名参加社区春节联欢会，歌舞、戏曲、书法均可。")
SCHEDULED = ("周六义诊活动", "本周六上午9点在社区广场举办义诊，量血压、测血糖，欢迎居民参加。")


async def seed_demo(db: Database) -> None:
    """Create the demo data; safe to call on a database that already has it."""
    for code in COMMUNITY_CODES:
        async with db.unit_of_work() as uow:
            community = await uow.session.scalar(select(Community).where(Community.code == code))
            if community is None:
                continue
            if await uow.session.scalar(select(Notice.id).where(Notice.community_id == community.id).limit(1)):
                continue
            await _seed(uow, community.id)


async def _seed(uow: UnitOfWork, community_id: int) -> None:
    now = utc_now()
    first_compound = await uow.session.scalar(
        select(Compound.id).where(Compound.community_id == community_id).order_by(Compound.id).limit(1)
    )

    def notice(title: str, body: str, status: NoticeStatus, **extra: Any) -> Notice:
        values: dict[str, Any] = {
            "community_id": community_id, "title": title, "body": body, "status": status.value,
            "whole_community": False, "compound_ids": [], "building_ids": [], "tags": [], "created_at": now,
            "updated_at": now,
        }  # fmt: skip
        row = Notice(**(values | extra))
        uow.session.add(row)
        return row

    published = [notice(t, b, NoticeStatus.PUBLISHED, whole_community=True, published_at=now) for t, b in PUBLISHED]
    published.append(
        notice(*LONE_ELDERS, NoticeStatus.PUBLISHED, tags=[ResidentTag.LIVES_ALONE.value], published_at=now)
    )
    notice(
        *DRAFT,
        NoticeStatus.DRAFT,
        compound_ids=[first_compound] if first_compound else [],
        whole_community=not first_compound,
    )
    saturday = local_today() + timedelta(days=(5 - local_today().weekday()) % 7 or 7)
    morning = datetime.combine(saturday - timedelta(days=1), time(8, 0), CHINA_TZ).astimezone(UTC)
    notice(*SCHEDULED, NoticeStatus.SCHEDULED, whole_community=True, publish_at=morning)
    await uow.session.flush()
    for row in published:
        await notices_service.deliver(uow, notice_id=row.id, now=now)
