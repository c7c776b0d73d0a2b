"""The ageing survey as GraphQL types."""

from __future__ import annotations

import datetime as dt
from typing import Self

import strawberry

from api.registry import survey


@strawberry.type(description="Counts for one group of residents (a unit, a building or the community).")
class SurveyCounts:
    compound_name: str | None = strawberry.field(description="Compound, for building and unit rows.")
    building_name: str | None = strawberry.field(description="Building, for building and unit rows.")
    building_id: strawberry.Private[int | None]
    unit: int | None = strawberry.field(description="Unit number, for unit rows.")
    residents: int = strawberry.field(description="Residents registered in a household.")
    aged_60_plus: int = strawberry.field(description="Residents aged 60 or more.")
    aged_80_plus: int = strawberry.field(description="Residents aged 80 or more.")
    elders_living_alone: int = strawberry.field(description="Residents aged 60+ who live alone.")
    elders_without_family_support: int = strawberry.field(
        description="Residents aged 60+ without family support (孤寡)."
    )
    disabled: int = strawberry.field(description="Residents with a disability.")
    low_income: int = strawberry.field(description="Residents in low-income households.")
    ageing_rate: float = strawberry.field(description="Share of residents aged 60+, from 0 to 1.")

    @classmethod
    def from_row(cls, r: survey.SurveyRow) -> Self:
        return cls(
            compound_name=r.compound_name, building_name=r.building_name, building_id=r.building_id, unit=r.unit,
            residents=r.residents, aged_60_plus=r.aged_60_plus, aged_80_plus=r.aged_80_plus,
            elders_living_alone=r.elders_living_alone, elders_without_family_support=r.elders_without_family_support,
            disabled=r.disabled, low_income=r.low_income, ageing_rate=round(r.ageing_rate, 4),
        )  # fmt: skip


@strawberry.type(description="The ageing survey (老龄化调查) of a community, per building and per unit.")
class AgeingSurvey:
    as_of: dt.date = strawberry.field(description="The date ages are computed for.")
    total: SurveyCounts = strawberry.field(description="The whole community.")
    buildings: list[SurveyCounts] = strawberry.field(description="One row per building.")
    units: list[SurveyCounts] = strawberry.field(description="One row per unit of each building.")

    @classmethod
    def from_survey(cls, s: survey.AgeingSurvey) -> Self:
        return cls(
            as_of=s.as_of,
            total=SurveyCounts.from_row(s.total),
            buildings=[SurveyCounts.from_row(r) for r in s.buildings],
            units=[SurveyCounts.from_row(r) for r in s.units],
        )
