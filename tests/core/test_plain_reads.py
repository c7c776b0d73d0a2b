"""`read_plain`: rows with the model's columns as attributes, equal to what the ORM reads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Row

import api.models  # noqa: F401 - every model registered
from api.core.db import Base, read_plain
from api.core.pagination import PageArgs, fetch_page
from api.registry.models import Building
from tests.factories import make_building, make_community, make_compound


def test_every_model_can_be_read_plain_column_names_are_attribute_names() -> None:
    # given Row's own attributes (a column called `count` would be shadowed by Row.count)
    reserved = {name for name in dir(Row) if not name.startswith("__")}
    # when every mapped column is checked
    mismatched = [
        (mapper.class_.__name__, attr.key, column.key)
        for mapper in Base.registry.mappers
        for attr in mapper.column_attrs
        for column in attr.columns
        if attr.key != column.key or column.key in reserved
    ]
    # then a row of the table reads like the model
    assert len(Base.registry.mappers) > 50
    assert mismatched == []


async def test_a_plain_read_gives_the_orm_read_s_rows_values_and_order(db) -> None:
    # given buildings in two compounds
    community = await make_community(db)
    compound_a, compound_b = await make_compound(db, community), await make_compound(db, community)
    for i in range(5):
        await make_building(db, compound_a if i % 2 else compound_b, name=f"{i}号楼", units=i + 1)
    stmt = select(Building).where(Building.community_id == community.id, Building.units > 1)
    async with db.read_session() as session:
        # when read both ways, plainly and through the ORM, also as a keyset page
        orm = (await session.scalars(stmt.order_by(Building.id.desc()))).all()
        plain = await read_plain(session, stmt.order_by(Building.id.desc()))
        page = await fetch_page(session, stmt, Building.id, PageArgs(first=2), plain=True)
    # then the same rows in the same order, with every column readable by its attribute name
    columns = [c.key for c in Building.__table__.columns]
    assert len(orm) == 4
    assert [[getattr(r, c) for c in columns] for r in plain] == [[getattr(o, c) for c in columns] for o in orm]
    assert isinstance(plain[0], Row)  # not an ORM object
    assert [b.id for b in page.items] == sorted(o.id for o in orm)[:2]
    assert page.has_next
