"""Deterministic demo data: four Shijiazhuang communities with buildings, households, residents and logins."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from itertools import accumulate
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.service import Passwords, create_account, grant_role
from api.core.clock import local_today, utc_now, years_before
from api.core.crypto import PersonalDataCipher, mask_national_id, mask_phone
from api.core.database import Database
from api.core.errors import Conflict
from api.core.viewer import Role
from api.registry.models import Building, Community, Compound, Gender, Household, Resident, ResidentTag, ResidentTagLink
from api.registry.validation import check_char

DEMO_PASSWORD = "linli-demo-2026"
CITY = "石家庄市"
BATCH_SIZE = 5_000
# Demo logins use 13900000001, 13900000002, ...; random resident phones never start with this.
_DEMO_PHONE_BASE = 13_900_000_000
_DEMO_PHONE_PREFIX = "1390000"
_DEMO_DISTRICT = "新华区"
_SEEDED_TABLES = ("community", "compound", "building", "household", "resident", "resident_tag")

_DISTRICT_CODES = {"新华区": "130105", "裕华区": "130108", "桥西区": "130104", "长安区": "130102"}

# Relations to the head of household (与户主关系), as written in a household register.
HEAD, SPOUSE, CHILD, PARENT, GRANDCHILD = "户主", "配偶", "子女", "父母", "孙子女"
DAUGHTER_IN_LAW, SON_IN_LAW = "儿媳", "女婿"

_GUARDIAN_AGE = 14  # children younger than this get a guardian in their household

# Common surnames, weighted roughly by frequency (Hebei adds 赵, 张, 刘 and 王 near the top).
_SURNAMES = (
    ("王", 9.0), ("李", 8.0), ("张", 8.0), ("刘", 6.5), ("赵", 4.0), ("陈", 3.5), ("杨", 3.5), ("高", 2.0),
    ("孙", 2.0), ("马", 1.8), ("郭", 1.8), ("周", 1.6), ("吴", 1.5), ("徐", 1.5), ("田", 1.3), ("韩", 1.3),
    ("黄", 1.2), ("朱", 1.2), ("胡", 1.1), ("郝", 1.0), ("梁", 1.0), ("宋", 1.0), ("何", 0.9), ("曹", 0.9),
    ("许", 0.8), ("冯", 0.8), ("董", 0.8), ("谷", 0.7), ("崔", 0.7), ("贾", 0.7), ("魏", 0.7), ("杜", 0.6),
    ("石", 0.6), ("苏", 0.6), ("范", 0.6), ("申", 0.5), ("翟", 0.5), ("吕", 0.5), ("袁", 0.5), ("程", 0.5),
    ("方", 0.4), ("邢", 0.4), ("霍", 0.4), ("尹", 0.4), ("薛", 0.4), ("侯", 0.4), ("史", 0.4), ("康", 0.3),
)  # fmt: skip
_SURNAME_CHOICES = tuple(s for s, _ in _SURNAMES)
_SURNAME_CUM_WEIGHTS = tuple(accumulate(w for _, w in _SURNAMES))

# Given-name characters by generation (born before 1960, 1960-1989, from 1990) and gender.
_GIVEN_CHARS: dict[tuple[int, Gender], str] = {
    (0, Gender.MALE): "建国军华明志庆福德海文胜利忠保成振兴林树春山民玉存金永长",
    (0, Gender.FEMALE): "秀英桂兰淑珍玉凤芳荣霞琴素梅金翠华云香春莲爱巧月花菊",
    (1, Gender.MALE): "伟强磊军勇杰涛斌超明刚鹏辉峰建波亮志宏新彬立海东晓森",
    (1, Gender.FEMALE): "丽静艳娟敏燕红霞芳玲娜婷颖洁慧萍晶雪莉琳晓佳倩丹彤瑶",
    (2, Gender.MALE): "浩宇轩子梓博俊泽睿晨昊然铭天一嘉逸瑞航凯皓宸煜辰阳鑫",
    (2, Gender.FEMALE): "欣怡梓涵诗雨萱佳可馨语彤琪思悦若瑶依晗梦雅婉汐沐一诺",
}

_PHONE_PREFIXES = tuple(
    str(p)
    for p in (
        *range(130, 140), 145, 147, *range(150, 154), *range(155, 160), 166, 173, 175, 176, 177, 178,
        *range(180, 190), 191, 198, 199,
    )
)  # fmt: skip


@dataclass(frozen=True)
class DemoLogin:
    """A demo account's credentials, for the README and the login screen's hint."""

    role: str
    community_code: str | None
    phone: str
    password: str
    display_name: str


@dataclass(frozen=True)
class SeedReport:
    """What seed_demo inserted and how long it took."""

    communities: int
    compounds: int
    buildings: int
    households: int
    residents: int
    accounts: int
    seconds: float
    logins: list[DemoLogin]


class _Kind(StrEnum):
    """Household compositions; each size draws from some of them."""

    LONE_ELDER = "lone_elder"
    SINGLE = "single"
    COUPLE = "couple"
    ELDER_COUPLE = "elder_couple"  # elder couple, plus unmarried adult children when larger
    SINGLE_PARENT = "single_parent"
    SKIPPED_GENERATION = "skipped_generation"  # grandparents raising a grandchild (隔代)
    COUPLE_CHILDREN = "couple_children"
    THREE_GENERATIONS = "three_generations"


@dataclass(frozen=True)
class _CompoundSpec:
    name: str
    weight: float  # share of the community's households
    buildings: int | None = None  # a fixed number of buildings per unit of scale


@dataclass(frozen=True)
class _BuildingStyle:
    floors: tuple[int, int]
    units: tuple[int, int]
    rooms_per_floor: tuple[int, int]
    occupancy: float  # share of flats with a registered household


@dataclass(frozen=True)
class _Profile:
    code: str
    name: str
    district: str
    street: str
    address: str
    compounds: tuple[_CompoundSpec, ...]
    households: int
    people: int
    style: _BuildingStyle
    size_weights: tuple[float, float, float, float, float]
    kinds: dict[int, tuple[tuple[_Kind, float], ...]]
    young_adult_share: float  # share of working-age adults (without children) aged 20-35
    eldest_child_max: int  # the eldest child's greatest age in families with children
    share_80_of_elders: float
    disabled_rate: float
    low_income_rate: float
    lone_elder_no_support: float  # share of elders living alone who have no family (孤寡)


_K = _Kind
_PROFILES: tuple[_Profile, ...] = (
    _Profile(
        code="mingzhu",
        name="明珠花苑社区",
        district="新华区",
        street="赵佗路街道",
        address="颐宏路东5号",
        compounds=(
            _CompoundSpec("明珠花苑南区", 0.22),
            _CompoundSpec("明珠花苑北区", 0.21),
            _CompoundSpec("安华家园", 0.18),
            _CompoundSpec("明珠园", 0.15),
            _CompoundSpec("颐宏家园", 0.13),
            _CompoundSpec("明珠新苑", 0.11),
        ),
        households=4488,
        people=9060,
        style=_BuildingStyle(floors=(6, 18), units=(2, 4), rooms_per_floor=(2, 3), occupancy=0.93),
        size_weights=(0.36, 0.35, 0.19, 0.08, 0.02),
        kinds={
            1: ((_K.LONE_ELDER, 0.25), (_K.SINGLE, 0.75)),
            2: (
                (_K.ELDER_COUPLE, 0.2), (_K.COUPLE, 0.42), (_K.SINGLE_PARENT, 0.2),
                (_K.THREE_GENERATIONS, 0.12), (_K.SKIPPED_GENERATION, 0.06),
            ),
            3: (
                (_K.COUPLE_CHILDREN, 0.58), (_K.THREE_GENERATIONS, 0.2), (_K.ELDER_COUPLE, 0.12),
                (_K.SINGLE_PARENT, 0.06), (_K.SKIPPED_GENERATION, 0.04),
            ),
            4: ((_K.COUPLE_CHILDREN, 0.45), (_K.THREE_GENERATIONS, 0.5), (_K.ELDER_COUPLE, 0.05)),
            5: ((_K.THREE_GENERATIONS, 0.8), (_K.COUPLE_CHILDREN, 0.2)),
        },
        young_adult_share=0.4,
        eldest_child_max=22,
        share_80_of_elders=0.15,
        disabled_rate=0.055,
        low_income_rate=0.15,
        lone_elder_no_support=0.3,
    ),
    _Profile(
        code="zhihuicheng",
        name="智汇城社区",
        district="裕华区",
        street="建华南街道",
        address="体育南大街386号",
        compounds=(
            _CompoundSpec("东南智汇城6号院", 0.26),
            _CompoundSpec("东南智汇城7号院", 0.25),
            _CompoundSpec("东南智汇城8号院", 0.25),
            _CompoundSpec("东南智汇城9号院", 0.24),
        ),
        households=3195,
        people=5230,
        style=_BuildingStyle(floors=(15, 18), units=(1, 2), rooms_per_floor=(2, 4), occupancy=0.9),
        size_weights=(0.6, 0.2, 0.12, 0.06, 0.02),
        kinds={
            1: ((_K.LONE_ELDER, 0.07), (_K.SINGLE, 0.93)),
            2: (
                (_K.COUPLE, 0.4), (_K.SINGLE_PARENT, 0.35), (_K.ELDER_COUPLE, 0.1),
                (_K.THREE_GENERATIONS, 0.1), (_K.SKIPPED_GENERATION, 0.05),
            ),
            3: ((_K.COUPLE_CHILDREN, 0.8), (_K.THREE_GENERATIONS, 0.12), (_K.SINGLE_PARENT, 0.08)),
            4: ((_K.COUPLE_CHILDREN, 0.65), (_K.THREE_GENERATIONS, 0.35)),
            5: ((_K.THREE_GENERATIONS, 0.6), (_K.COUPLE_CHILDREN, 0.4)),
        },
        young_adult_share=0.7,
        eldest_child_max=12,
        share_80_of_elders=0.1,
        disabled_rate=0.025,
        low_income_rate=0.03,
        lone_elder_no_support=0.2,
    ),
    _Profile(
        code="c3502",
        name="3502社区",
        district="桥西区",
        street="苑东街道",
        address="新华路598号际华苑小区院内",
        compounds=(_CompoundSpec("际华苑", 0.64), _CompoundSpec("三五零二家属院", 0.36)),
        households=2705,
        people=6455,
        style=_BuildingStyle(floors=(6, 9), units=(3, 4), rooms_per_floor=(2, 2), occupancy=0.95),
        size_weights=(0.22, 0.38, 0.22, 0.12, 0.06),
        kinds={
            1: ((_K.LONE_ELDER, 0.6), (_K.SINGLE, 0.4)),
            2: (
                (_K.ELDER_COUPLE, 0.38), (_K.COUPLE, 0.34), (_K.THREE_GENERATIONS, 0.13),
                (_K.SINGLE_PARENT, 0.1), (_K.SKIPPED_GENERATION, 0.05),
            ),
            3: (
                (_K.COUPLE_CHILDREN, 0.5), (_K.THREE_GENERATIONS, 0.3), (_K.ELDER_COUPLE, 0.15),
                (_K.SKIPPED_GENERATION, 0.05),
            ),
            4: ((_K.COUPLE_CHILDREN, 0.3), (_K.THREE_GENERATIONS, 0.6), (_K.ELDER_COUPLE, 0.1)),
            5: ((_K.THREE_GENERATIONS, 0.9), (_K.COUPLE_CHILDREN, 0.1)),
        },
        young_adult_share=0.3,
        eldest_child_max=22,
        share_80_of_elders=0.2,
        disabled_rate=0.035,
        low_income_rate=0.03,
        lone_elder_no_support=0.25,
    ),
    _Profile(
        code="beizhaiying",
        name="北翟营社区",
        district="长安区",
        street="建北街道",
        address="北翟营",
        compounds=(
            _CompoundSpec("亚龙花园", 32 / 70, buildings=32),
            _CompoundSpec("北翟营小区", 24 / 70, buildings=24),
            _CompoundSpec("翟营新居", 14 / 70, buildings=14),
        ),
        households=820,
        people=3040,
        style=_BuildingStyle(floors=(6, 7), units=(1, 2), rooms_per_floor=(2, 2), occupancy=1.0),
        size_weights=(0.03, 0.09, 0.22, 0.38, 0.28),
        kinds={
            1: ((_K.LONE_ELDER, 0.6), (_K.SINGLE, 0.4)),
            2: ((_K.ELDER_COUPLE, 0.5), (_K.COUPLE, 0.3), (_K.THREE_GENERATIONS, 0.1), (_K.SINGLE_PARENT, 0.1)),
            3: ((_K.COUPLE_CHILDREN, 0.55), (_K.THREE_GENERATIONS, 0.3), (_K.ELDER_COUPLE, 0.15)),
            4: ((_K.COUPLE_CHILDREN, 0.4), (_K.THREE_GENERATIONS, 0.6)),
            5: ((_K.THREE_GENERATIONS, 0.75), (_K.COUPLE_CHILDREN, 0.25)),
        },
        young_adult_share=0.45,
        eldest_child_max=22,
        share_80_of_elders=0.14,
        disabled_rate=0.03,
        low_income_rate=0.03,
        lone_elder_no_support=0.25,
    ),
)  # fmt: skip

# Demo staff per community, in this order; the resident login is linked to a seeded resident.
_COMMUNITY_ROLES: tuple[tuple[Role, str], ...] = (
    (Role.STAFF, "工作人员"),
    (Role.COMMUNITY_ADMIN, "管理员"),
    (Role.RESIDENT, ""),
    (Role.VOLUNTEER, "志愿者"),
    (Role.CRAFTSPERSON, "手艺人"),
)
_RESIDENT_ROLE_INDEX = [role for role, _ in _COMMUNITY_ROLES].index(Role.RESIDENT)


@dataclass(slots=True, eq=False)  # compared by identity: list.index finds this very member
class _Member:
    relation: str
    age: int
    gender: Gender
    surname: str
    guardian: int | None = None  # index of the guardian within the household
    lives_alone: bool = False
    no_family_support: bool = False


@dataclass(slots=True)
class _Ids:
    """The next primary key per table: ids are assigned here, so inserts need no RETURNING."""

    community: int
    compound: int
    building: int
    household: int
    resident: int
    tag: int


@dataclass(slots=True)
class _Counts:
    compounds: int = 0
    buildings: int = 0
    households: int = 0
    residents: int = 0


class _Families:
    """Draws household compositions, names and ages for one community's profile."""

    def __init__(self, rng: random.Random, profile: _Profile) -> None:
        self.rng = rng
        self.p = profile
        self._kinds = {
            size: (tuple(k for k, _ in options), tuple(w for _, w in options))
            for size, options in profile.kinds.items()
        }

    def members(self, size: int) -> list[_Member]:
        kinds, weights = self._kinds[size]
        kind = self.rng.choices(kinds, weights)[0]
        if kind is _Kind.LONE_ELDER:
            return [self._lone_elder()]
        if kind is _Kind.SINGLE:
            return [_Member(HEAD, self._adult_age(), self._gender(), self.surname())]
        if kind is _Kind.COUPLE:
            return self._couple_with_children(0)
        if kind is _Kind.ELDER_COUPLE:
            return self._elder_couple(size - 2)
        if kind is _Kind.SINGLE_PARENT:
            return self._single_parent(size - 1)
        if kind is _Kind.SKIPPED_GENERATION:
            return self._skipped_generation(size)
        if kind is _Kind.COUPLE_CHILDREN:
            return self._couple_with_children(size - 2)
        return self._three_generations(size)

    def surname(self) -> str:
        return self.rng.choices(_SURNAME_CHOICES, cum_weights=_SURNAME_CUM_WEIGHTS)[0]

    def given_name(self, age: int, gender: Gender, today: date) -> str:
        born = today.year - age
        generation = 0 if born < 1960 else 1 if born < 1990 else 2
        chars = _GIVEN_CHARS[(generation, gender)]
        if self.rng.random() < 0.22:
            return self.rng.choice(chars)
        first, second = self.rng.sample(chars, 2)
        return first + second

    def _gender(self, male: float = 0.5) -> Gender:
        return Gender.MALE if self.rng.random() < male else Gender.FEMALE

    def _adult_age(self) -> int:
        if self.rng.random() < self.p.young_adult_share:
            return self.rng.randint(20, 35)
        return self.rng.randint(36, 59)

    def _elder_age(self) -> int:
        if self.rng.random() < self.p.share_80_of_elders:
            return min(100, 80 + int(self.rng.expovariate(1 / 5.5)))
        return 60 + int(self.rng.triangular(0, 20, 0))

    def _lone_elder(self) -> _Member:
        return _Member(
            HEAD,
            self._elder_age(),
            self._gender(male=0.38),
            self.surname(),
            lives_alone=True,
            no_family_support=self.rng.random() < self.p.lone_elder_no_support,
        )

    def _children(self, members: list[_Member], n: int, eldest: int, family: str, guardians: Sequence[int]) -> None:
        age = eldest
        for i in range(n):
            if i:
                age = max(0, age - self.rng.randint(1, 6))
            guardian = self.rng.choice(guardians) if age < _GUARDIAN_AGE else None
            members.append(_Member(CHILD, age, self._gender(), family, guardian=guardian))

    def _couple(self, husband_age: int, wife_age: int) -> tuple[list[_Member], str]:
        family = self.surname()
        husband = _Member(HEAD, husband_age, Gender.MALE, family)
        wife = _Member(SPOUSE, wife_age, Gender.FEMALE, self.surname())
        if self.rng.random() < 0.3:
            husband.relation, wife.relation = SPOUSE, HEAD
            return [wife, husband], family
        return [husband, wife], family

    def _couple_with_children(self, n: int) -> list[_Member]:
        if n == 0:
            husband_age = self._adult_age()
            wife_age = max(20, husband_age - self.rng.randint(-2, 5))
            return self._couple(husband_age, wife_age)[0]
        eldest = self.rng.randint(0, self.p.eldest_child_max)
        wife_age = eldest + self.rng.randint(23, 34)
        members, family = self._couple(wife_age + self.rng.randint(0, 4), wife_age)
        self._children(members, n, eldest, family, (0, 1))
        return members

    def _single_parent(self, n: int) -> list[_Member]:
        eldest = self.rng.randint(0, min(17, self.p.eldest_child_max))
        parent = _Member(HEAD, eldest + self.rng.randint(24, 38), self._gender(male=0.25), self.surname())
        members = [parent]
        self._children(members, n, eldest, parent.surname, (0,))
        return members

    def _elder_couple(self, adult_children: int) -> list[_Member]:
        husband_age = self._elder_age()
        wife_age = max(55, husband_age - self.rng.randint(0, 5))
        members, family = self._couple(husband_age, wife_age)
        for _ in range(adult_children):
            age = max(18, wife_age - self.rng.randint(24, 34))
            members.append(_Member(CHILD, age, self._gender(), family))
        return members

    def _skipped_generation(self, size: int) -> list[_Member]:
        grandchild_age = self.rng.randint(2, 13)
        grandmother_age = grandchild_age + self.rng.randint(48, 60)
        if size == 2:
            grandmother = _Member(HEAD, grandmother_age, Gender.FEMALE, self.surname())
            members, family = [grandmother], grandmother.surname
        else:
            members, family = self._couple(grandmother_age + self.rng.randint(0, 4), grandmother_age)
        guardian = next(i for i, m in enumerate(members) if m.gender is Gender.FEMALE)
        for _ in range(size - len(members)):
            members.append(_Member(GRANDCHILD, grandchild_age, self._gender(), family, guardian=guardian))
            grandchild_age = max(0, grandchild_age - self.rng.randint(1, 4))
        return members

    def _three_generations(self, size: int) -> list[_Member]:
        """A couple (or, for two people, one adult child) living with their parents and children."""
        rng = self.rng
        if size == 2:
            elder = _Member(HEAD, self._elder_age(), self._gender(male=0.4), self.surname())
            child_age = max(18, elder.age - rng.randint(24, 34))
            child = _Member(CHILD, child_age, self._gender(), elder.surname)
            if elder.age >= 75 and rng.random() < 0.6:  # an aged parent moved in with a child
                elder.relation, child.relation = PARENT, HEAD
                return [child, elder]
            return [elder, child]
        n_elders = 1 if size == 3 else rng.choice((1, 2))
        n_kids = size - 2 - n_elders
        if n_kids:
            eldest = rng.randint(0, self.p.eldest_child_max)
            wife_age = eldest + rng.randint(23, 34)
        else:
            eldest, wife_age = 0, rng.randint(30, 55)
        husband_age = wife_age + rng.randint(0, 4)
        family = self.surname()
        husband = _Member(HEAD, husband_age, Gender.MALE, family)
        wife = _Member(SPOUSE, wife_age, Gender.FEMALE, self.surname())
        husbands_parents = rng.random() < 0.7
        blood, in_law = (husband, wife) if husbands_parents else (wife, husband)
        mother_age = min(98, blood.age + rng.randint(22, 32))
        mother = _Member(PARENT, mother_age, Gender.FEMALE, self.surname())
        father = _Member(PARENT, min(100, mother_age + rng.randint(0, 4)), Gender.MALE, blood.surname)
        elders = [father, mother] if n_elders == 2 else [mother if rng.random() < 0.65 else father]
        kids_relation = CHILD
        if rng.random() < 0.4:  # the elder generation heads the household
            elders[0].relation = HEAD
            if n_elders == 2:
                elders[1].relation = SPOUSE
            blood.relation = CHILD
            in_law.relation = DAUGHTER_IN_LAW if in_law.gender is Gender.FEMALE else SON_IN_LAW
            members = [*elders, blood, in_law]
            kids_relation = GRANDCHILD
        else:
            if rng.random() < 0.3:
                husband.relation, wife.relation = SPOUSE, HEAD
            members = [husband, wife, *elders]
        parents = (members.index(husband), members.index(wife))
        start = len(members)
        self._children(members, n_kids, eldest, family, parents)
        for kid in members[start:]:
            kid.relation = kids_relation
        return members


class _Generator:
    """Turns profiles into rows: ids, unique national ids and phones, encryption of personal fields."""

    def __init__(self, rng: random.Random, cipher: PersonalDataCipher, today: date, now: datetime) -> None:
        self.rng = rng
        self.cipher = cipher
        self.today = today
        self.now = now
        self._sequences: dict[tuple[str, date, bool], int] = {}
        self._phones: set[str] = set()

    def national_id(self, prefix: str, birth: date, male: bool) -> tuple[str, date]:
        """A valid ID whose sequence number is unique for (region, birth date, gender)."""
        while True:
            key = (prefix, birth, male)
            n = self._sequences.get(key)
            if n is None:
                n = self.rng.randrange(1, 200)
            if n < 500:
                break
            birth -= timedelta(days=1)  # 500 people of one gender born on one day: use the day before
        self._sequences[key] = n + 1
        first17 = f"{prefix}{birth:%Y%m%d}{2 * n + (1 if male else 0):03d}"
        return first17 + check_char(first17), birth

    def phone(self) -> str:
        while True:
            phone = f"{self.rng.choice(_PHONE_PREFIXES)}{self.rng.randrange(100_000_000):08d}"
            if not phone.startswith(_DEMO_PHONE_PREFIX) and phone not in self._phones:
                self._phones.add(phone)
                return phone

    def birth_date(self, age: int) -> date:
        return years_before(self.today, age) - timedelta(days=self.rng.randrange(365))

    def has_phone(self, age: int) -> bool:
        if age < 18:
            return False
        return self.rng.random() < (0.9 if age < 60 else 0.72 if age < 80 else 0.4)

    def is_disabled(self, age: int, rate: float) -> bool:
        return self.rng.random() < rate * (2.2 if age >= 60 else 0.7 if age >= _GUARDIAN_AGE else 0.3)

    def phone_fields(self, phone: str | None) -> dict[str, Any]:
        if phone is None:
            return {"phone_encrypted": None, "phone_hash": None, "phone_masked": None}
        return {
            "phone_encrypted": self.cipher.encrypt(phone),
            "phone_hash": self.cipher.lookup_hash(phone),
            "phone_masked": mask_phone(phone),
        }


def _household_sizes(rng: random.Random, weights: Sequence[float], households: int, people: int) -> list[int]:
    """Draw household sizes (1-5), then nudge random households until they sum to `people`."""
    if not households <= people <= 5 * households:
        raise ValueError("people must lie between 1 and 5 per household")
    sizes = rng.choices(range(1, 6), weights, k=households)
    diff = people - sum(sizes)
    while diff:
        i = rng.randrange(households)
        if diff > 0 and sizes[i] < 5:
            sizes[i] += 1
            diff -= 1
        elif diff < 0 and sizes[i] > 1:
            sizes[i] -= 1
            diff += 1
    return sizes


def _split(total: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split of `total` in proportion to `weights`."""
    whole = sum(weights)
    quotas = [total * w / whole for w in weights]
    parts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: quotas[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _flats(rng: random.Random, style: _BuildingStyle, buildings: int | None, households: int) -> list[list[int]]:
    """Building shapes [floors, units, rooms per floor] for one compound, enough for its households."""
    shapes: list[list[int]] = []

    def capacity() -> int:
        return sum(f * u * r for f, u, r in shapes)

    def shape() -> list[int]:
        return [rng.randint(*style.floors), rng.randint(*style.units), rng.randint(*style.rooms_per_floor)]

    if buildings is not None:
        shapes = [shape() for _ in range(buildings)]
        while capacity() < households:
            shapes[rng.randrange(len(shapes))][0] += 1
    else:
        while capacity() * style.occupancy < households:
            shapes.append(shape())
    return shapes


async def _insert(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH_SIZE):
        await session.execute(insert(model), rows[start : start + BATCH_SIZE])


async def _next_ids(db: Database) -> _Ids:
    async with db.read_session() as session:

        async def after_max(model: Any) -> int:
            return int(await session.scalar(select(func.coalesce(func.max(model.id), 0))) or 0) + 1

        return _Ids(
            community=await after_max(Community),
            compound=await after_max(Compound),
            building=await after_max(Building),
            household=await after_max(Household),
            resident=await after_max(Resident),
            tag=await after_max(ResidentTagLink),
        )


async def _reset_sequences(session: AsyncSession) -> None:
    """Explicit ids leave PostgreSQL's sequences behind; move them to the tables' maxima."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in _SEEDED_TABLES:
        await session.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
        )


async def _seed_community(
    db: Database, gen: _Generator, profile: _Profile, ids: _Ids, counts: _Counts, *, scale: int, demo_phone: str
) -> tuple[int, int, str]:
    """Insert one community in one transaction; returns its id and the demo resident's id and name."""
    rng, now, cipher = gen.rng, gen.now, gen.cipher
    families = _Families(rng, profile)
    prefix = _DISTRICT_CODES[profile.district]
    community_id = ids.community
    ids.community += 1
    compound_rows: list[dict[str, Any]] = []
    building_rows: list[dict[str, Any]] = []
    household_rows: list[dict[str, Any]] = []
    per_compound = _split(profile.households * scale, [c.weight for c in profile.compounds])
    for spec, households in zip(profile.compounds, per_compound, strict=True):
        compound_id = ids.compound
        ids.compound += 1
        compound_rows.append({"id": compound_id, "community_id": community_id, "name": spec.name})
        fixed = spec.buildings * scale if spec.buildings is not None else None
        flats: list[tuple[int, int, str]] = []
        for number, (floors, units, rooms) in enumerate(_flats(rng, profile.style, fixed, households), start=1):
            building_id = ids.building
            ids.building += 1
            building_rows.append(
                {
                    "id": building_id,
                    "community_id": community_id,
                    "compound_id": compound_id,
                    "name": f"{number}号楼",
                    "floors": floors,
                    "units": units,
                }
            )
            flats.extend(
                (building_id, unit, f"{floor}{room:02d}")
                for unit in range(1, units + 1)
                for floor in range(1, floors + 1)
                for room in range(1, rooms + 1)
            )
        for i in sorted(rng.sample(range(len(flats)), households)):
            building_id, unit, room = flats[i]
            household_rows.append(
                {
                    "id": ids.household,
                    "community_id": community_id,
                    "building_id": building_id,
                    "unit": unit,
                    "room": room,
                    "created_at": now,
                }
            )
            ids.household += 1
    sizes = _household_sizes(rng, profile.size_weights, len(household_rows), profile.people * scale)
    demo: tuple[int, str] | None = None

    async with db.unit_of_work() as uow:
        session = uow.session
        await session.execute(
            insert(Community),
            [
                {
                    "id": community_id,
                    "code": profile.code,
                    "name": profile.name,
                    "city": CITY,
                    "district": profile.district,
                    "street": profile.street,
                    "address": profile.address,
                    "created_at": now,
                }
            ],
        )
        await _insert(session, Compound, compound_rows)
        await _insert(session, Building, building_rows)
        await _insert(session, Household, household_rows)

        residents: list[dict[str, Any]] = []
        tags: list[dict[str, Any]] = []

        def tag(resident_id: int, value: ResidentTag) -> None:
            tags.append({"id": ids.tag, "community_id": community_id, "resident_id": resident_id, "tag": value.value})
            ids.tag += 1

        for household, size in zip(household_rows, sizes, strict=True):
            low_income = rng.random() < profile.low_income_rate
            base = ids.resident
            members = families.members(size)
            ids.resident += len(members)
            for offset, m in enumerate(members):
                resident_id = base + offset
                national_id, birth = gen.national_id(prefix, gen.birth_date(m.age), m.gender is Gender.MALE)
                phone = gen.phone() if gen.has_phone(m.age) else None
                name = m.surname + families.given_name(m.age, m.gender, gen.today)
                if demo is None and m.relation == HEAD and 25 <= m.age <= 59:
                    demo, phone = (resident_id, name), demo_phone
                residents.append(
                    {
                        "id": resident_id,
                        "community_id": community_id,
                        "household_id": household["id"],
                        "name": name,
                        "gender": m.gender.value,
                        "birth_date": birth,
                        "national_id_encrypted": cipher.encrypt(national_id),
                        "national_id_hash": cipher.lookup_hash(national_id),
                        "national_id_masked": mask_national_id(national_id),
                        **gen.phone_fields(phone),
                        "relation_to_head": m.relation,
                        "guardian_id": base + m.guardian if m.guardian is not None else None,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                if m.lives_alone:
                    tag(resident_id, ResidentTag.LIVES_ALONE)
                if m.no_family_support:
                    tag(resident_id, ResidentTag.NO_FAMILY_SUPPORT)
                if gen.is_disabled(m.age, profile.disabled_rate):
                    tag(resident_id, ResidentTag.DISABLED)
                if low_income:
                    tag(resident_id, ResidentTag.LOW_INCOME)
            if len(residents) >= BATCH_SIZE:
                await _insert(session, Resident, residents)
                await _insert(session, ResidentTagLink, tags)
                counts.residents += len(residents)
                residents, tags = [], []
        await _insert(session, Resident, residents)
        await _insert(session, ResidentTagLink, tags)
        counts.residents += len(residents)
        await _reset_sequences(session)

    counts.compounds += len(compound_rows)
    counts.buildings += len(building_rows)
    counts.households += len(household_rows)
    if demo is None:
        raise RuntimeError(f"no adult head of household to link the demo resident login of {profile.code}")
    return community_id, demo[0], demo[1]


def _login_phone(community_index: int, role_index: int) -> str:
    """13900000001, 13900000002, ...: five per community in _COMMUNITY_ROLES order, then the district admin."""
    return str(_DEMO_PHONE_BASE + community_index * len(_COMMUNITY_ROLES) + role_index + 1)


async def is_seeded(db: Database) -> bool:
    """Tell whether the database holds any community (seeded or real).

    Args:
        db: The database.

    Returns:
        True when at least one community exists.
    """
    async with db.read_session() as session:
        return await session.scalar(select(Community.id).limit(1)) is not None


async def seed_demo(
    db: Database,
    *,
    cipher: PersonalDataCipher,
    passwords: Passwords,
    scale: int = 1,
    seed: int = 20261128,
    today: date | None = None,
) -> SeedReport:
    """Insert the four demo communities of Shijiazhuang with their residents and demo logins.

    The data are deterministic for a given `seed`, `scale` and `today` (only ciphertexts and
    timestamps differ between runs). Each community is inserted in its own transaction.

    Args:
        db: The database; its tables must exist.
        cipher: Encrypts and hashes national ID numbers and phone numbers.
        passwords: Hashes the demo logins' password.
        scale: Multiplies households and residents (more buildings, the same compounds).
        seed: Seed of the random generator.
        today: The date ages are counted to; China's local date when None.

    Returns:
        Counts of what was inserted, the time taken and the demo logins.

    Raises:
        ValueError: When `scale` is less than 1.
        Conflict: When a demo community exists already.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    started = time.perf_counter()
    codes = [p.code for p in _PROFILES]
    async with db.read_session() as session:
        if await session.scalar(select(Community.id).where(Community.code.in_(codes)).limit(1)) is not None:
            raise Conflict("The demo communities exist already.")

    gen = _Generator(random.Random(seed), cipher, today or local_today(), utc_now())
    ids = await _next_ids(db)
    counts = _Counts()
    seeded: list[tuple[_Profile, int, int, str]] = []
    for i, profile in enumerate(_PROFILES):
        community_id, resident_id, resident_name = await _seed_community(
            db, gen, profile, ids, counts, scale=scale, demo_phone=_login_phone(i, _RESIDENT_ROLE_INDEX)
        )
        seeded.append((profile, community_id, resident_id, resident_name))

    logins: list[DemoLogin] = []
    async with db.unit_of_work() as uow:
        for i, (profile, community_id, resident_id, resident_name) in enumerate(seeded):
            for j, (role, label) in enumerate(_COMMUNITY_ROLES):
                phone = _login_phone(i, j)
                is_resident = role is Role.RESIDENT
                display_name = resident_name if is_resident else f"{profile.name}{label}"
                account = await create_account(
                    uow,
                    cipher=cipher,
                    passwords=passwords,
                    phone=phone,
                    password=DEMO_PASSWORD,
                    display_name=display_name,
                    resident_id=resident_id if is_resident else None,
                )
                await grant_role(uow, account_id=account.id, role=role, community_id=community_id)
                logins.append(DemoLogin(role.value, profile.code, phone, DEMO_PASSWORD, display_name))
        phone = _login_phone(len(seeded), 0)
        display_name = f"{_DEMO_DISTRICT}管理员"
        account = await create_account(
            uow, cipher=cipher, passwords=passwords, phone=phone, password=DEMO_PASSWORD, display_name=display_name
        )
        await grant_role(uow, account_id=account.id, role=Role.DISTRICT_ADMIN, district=_DEMO_DISTRICT)
        logins.append(DemoLogin(Role.DISTRICT_ADMIN.value, None, phone, DEMO_PASSWORD, display_name))

    return SeedReport(
        communities=len(seeded),
        compounds=counts.compounds,
        buildings=counts.buildings,
        households=counts.households,
        residents=counts.residents,
        accounts=len(logins),
        seconds=time.perf_counter() - started,
        logins=logins,
    )


def demo_logins() -> list[DemoLogin]:
    """The demo logins `seed_demo` creates, known without a database (for printing on start)."""
    logins = [
        DemoLogin(role.value, profile.code, _login_phone(i, j), DEMO_PASSWORD, f"{profile.name}{label}")
        for i, profile in enumerate(_PROFILES)
        for j, (role, label) in enumerate(_COMMUNITY_ROLES)
    ]
    logins.append(
        DemoLogin(
            Role.DISTRICT_ADMIN.value, None, _login_phone(len(_PROFILES), 0), DEMO_PASSWORD, f"{_DEMO_DISTRICT}管理员"
        )
    )
    return logins
