"""Demo data of the hall domain (runs after the registry seed).

Every community gets the common procedures, and every compound a yearly parking quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from api.core.clock import local_today, utc_now
from api.core.database import Database, UnitOfWork
from api.hall import service as hall_service
from api.hall.models import HallProcedure, ParkingQuota, ProcedureKind
from api.hall.service import DocumentSpec, ProcedureDraft, StepSpec
from api.registry.models import Community, Compound

WINDOW = "社区党群服务中心一站式服务窗口"
ID_CARD = DocumentSpec("id_card", "居民身份证", True, "本人身份证正反面")
HOUSEHOLD_BOOK = DocumentSpec("household_register", "户口簿", False, "户主页及本人页")


@dataclass(frozen=True, slots=True)
class Template:
    code: str
    kind: ProcedureKind
    name: str
    purpose: str
    documents: tuple[DocumentSpec, ...]
    steps: tuple[StepSpec, ...]
    time_limit_days: int
    fee_cents: int
    basis: str


# The common procedures (小微权力清单 entries), the same for every community until staff revise them.
PROCEDURES: tuple[Template, ...] = (
    Template(code="residence-certificate", kind=ProcedureKind.GENERAL,
        name="居住证明", purpose="为在本社区实际居住的居民出具居住证明，用于入学、就业、社保等事项。",
        documents=(ID_CARD, DocumentSpec("tenancy_or_deed", "房屋产权证明或租赁合同", True, "租住的提供已登记的租赁合同"),
                      HOUSEHOLD_BOOK),
        steps=(StepSpec("受理", "综合窗口"), StepSpec("入户核实", "网格员"), StepSpec("审核盖章", "社区党委书记"),
                  StepSpec("办结发证", "综合窗口")),
        time_limit_days=3, fee_cents=0, basis="《城市居民委员会组织法》；街道证明事项清单",
    ),
    Template(code="door-card", kind=ProcedureKind.GENERAL,
        name="门禁卡办理/补办", purpose="为本小区住户办理或补办门禁卡。",
        documents=(ID_CARD, DocumentSpec("residence_proof", "住户证明", True, "房产证、租赁合同或居住证明"),
                      DocumentSpec("loss_statement", "遗失说明", False, "补办时填写")),
        steps=(StepSpec("受理", "综合窗口"), StepSpec("信息核验", "网格员"), StepSpec("制卡发放", "物业服务中心")),
        time_limit_days=2, fee_cents=2000, basis="小区门禁管理办法（补办工本费20元）",
    ),
    Template(code="vehicle", kind=ProcedureKind.VEHICLE,
        name="车辆登记/变更", purpose="登记、变更或注销本户车辆信息，作为停车管理和停车证办理的依据。",
        documents=(ID_CARD, DocumentSpec("vehicle_license", "机动车行驶证", True, "正副页"),
                      DocumentSpec("residence_proof", "住户证明", True, "房产证或租赁合同")),
        steps=(StepSpec("受理", "综合窗口"), StepSpec("信息核验", "网格员"), StepSpec("登记办结", "综合窗口")),
        time_limit_days=3, fee_cents=0, basis="小区机动车停放管理规定",
    ),
    Template(code="parking-permit", kind=ProcedureKind.PARKING_PERMIT,
        name="停车证", purpose="为已登记车辆办理本小区停车证，按小区车位额度发放。",
        documents=(ID_CARD, DocumentSpec("vehicle_license", "机动车行驶证", True, "正副页")),
        steps=(StepSpec("受理", "综合窗口"), StepSpec("额度审核", "物业服务中心"), StepSpec("发证", "综合窗口")),
        time_limit_days=5, fee_cents=0, basis="小区机动车停放管理规定；业主大会车位分配方案",
    ),
    Template(code="rental-registration", kind=ProcedureKind.GENERAL,
        name="房屋出租登记", purpose="出租房屋及承租人信息登记备案（以房管人）。",
        documents=(DocumentSpec("owner_id_card", "出租人身份证", True, "正反面"),
                      DocumentSpec("deed", "房屋产权证明", True, ""),
                      DocumentSpec("lease", "房屋租赁合同", True, ""),
                      DocumentSpec("tenant_id_card", "承租人身份证", True, "每位承租人")),
        steps=(StepSpec("受理", "综合窗口"), StepSpec("入户核查", "网格员"), StepSpec("登记备案", "社区民警")),
        time_limit_days=5, fee_cents=0, basis="《商品房屋租赁管理办法》；流动人口居住登记规定",
    ),
)  # fmt: skip

PARKING_QUOTA = 120


def procedure_drafts(community_id: int) -> list[ProcedureDraft]:
    """The common procedures for one community, in list order."""
    drafts = []
    for order, t in enumerate(PROCEDURES):
        drafts.append(
            ProcedureDraft(
                community_id=community_id, code=t.code, kind=t.kind, name=t.name, purpose=t.purpose,
                documents=t.documents, steps=t.steps, time_limit_days=t.time_limit_days, fee_cents=t.fee_cents,
                handled_by=WINDOW, basis=t.basis, sort_order=order,
            )
        )  # fmt: skip
    return drafts


async def seed_procedures(uow: UnitOfWork, community_id: int) -> int:
    """Publish the common procedures in a community that has none yet. Returns how many."""
    if await uow.session.scalar(select(HallProcedure.id).where(HallProcedure.community_id == community_id).limit(1)):
        return 0
    for draft in procedure_drafts(community_id):
        await hall_service.write_procedure(uow, draft=draft, account_id=None)
    return len(PROCEDURES)


def year_bounds(day: date) -> tuple[date, date]:
    return date(day.year, 1, 1), date(day.year, 12, 31)


async def seed_demo(db: Database, *, today: date | None = None) -> None:
    """The procedures of every community and a yearly parking quota per compound; idempotent."""
    today = today or local_today()
    starts_on, ends_on = year_bounds(today)
    async with db.unit_of_work() as uow:
        communities = (await uow.session.scalars(select(Community.id).order_by(Community.id))).all()
        for cid in communities:
            await seed_procedures(uow, cid)
        compounds = (await uow.session.scalars(select(Compound).order_by(Compound.id))).all()
        have = set(
            (
                await uow.session.scalars(
                    select(ParkingQuota.compound_id).where(
                        ParkingQuota.starts_on <= today, ParkingQuota.ends_on >= today
                    )
                )
            ).all()
        )
        now = utc_now()
        for compound in compounds:
            if compound.id in have:
                continue
            uow.session.add(
                ParkingQuota(community_id=compound.community_id, compound_id=compound.id, starts_on=starts_on,
                             ends_on=ends_on, quota=PARKING_QUOTA, issued=0, created_at=now, updated_at=now)
            )  # fmt: skip
        await uow.session.flush()


__all__ = ["PROCEDURES", "procedure_drafts", "seed_demo", "seed_procedures"]
