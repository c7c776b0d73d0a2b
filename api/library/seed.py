"""Demo data for library lending: the Shijiazhuang 通借通还 network, its catalogue and default loan rules.

The ISBNs are synthetic (978-7-99, with valid check digits) so that the demo never claims a
real edition's number; titles and authors are well-known books a community book house holds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import insert, select

from api.core.clock import utc_now
from api.core.database import Database
from api.library.isbn import isbn13_check
from api.library.models import Book, Branch, BranchKind, ClosedDay, Copy, CopyStatus, FloatPolicy, LoanRule
from api.registry.models import Community

TITLES: list[tuple[str, str, str, list[str]]] = [
    ("红楼梦", "曹雪芹", "人民文学出版社", ["古典小说"]),
    ("西游记", "吴承恩", "人民文学出版社", ["古典小说"]),
    ("三国演义", "罗贯中", "人民文学出版社", ["古典小说", "历史"]),
    ("水浒传", "施耐庵", "人民文学出版社", ["古典小说"]),
    ("活着", "余华", "作家出版社", ["当代小说"]),
    ("平凡的世界", "路遥", "北京十月文艺出版社", ["当代小说"]),
    ("人生", "路遥", "北京十月文艺出版社", ["当代小说"]),
    ("围城", "钱锺书", "人民文学出版社", ["现代小说"]),
    ("骆驼祥子", "老舍", "人民文学出版社", ["现代小说"]),
    ("茶馆", "老舍", "人民文学出版社", ["戏剧"]),
    ("边城", "沈从文", "北岳文艺出版社", ["现代小说"]),
    ("呐喊", "鲁迅", "人民文学出版社", ["现代小说"]),
    ("朝花夕拾", "鲁迅", "人民文学出版社", ["散文"]),
    ("家", "巴金", "人民文学出版社", ["现代小说"]),
    ("城南旧事", "林海音", "中国青年出版社", ["儿童文学"]),
    ("草房子", "曹文轩", "江苏凤凰少年儿童出版社", ["儿童文学"]),
    ("青铜葵花", "曹文轩", "江苏凤凰少年儿童出版社", ["儿童文学"]),
    ("小王子", "圣埃克苏佩里", "人民文学出版社", ["儿童文学", "外国文学"]),
    ("安徒生童话", "安徒生", "人民文学出版社", ["儿童文学", "外国文学"]),
    ("格林童话", "格林兄弟", "人民文学出版社", ["儿童文学", "外国文学"]),
    ("十万个为什么", "少年儿童出版社", "少年儿童出版社", ["科普", "儿童"]),
    ("昆虫记", "法布尔", "作家出版社", ["科普"]),
    ("老人与海", "海明威", "上海译文出版社", ["外国文学"]),
    ("钢铁是怎样炼成的", "奥斯特洛夫斯基", "人民文学出版社", ["外国文学"]),
    ("鲁滨逊漂流记", "笛福", "人民文学出版社", ["外国文学"]),
    ("海底两万里", "凡尔纳", "人民文学出版社", ["外国文学", "科幻"]),
    ("三体", "刘慈欣", "重庆出版社", ["科幻"]),
    ("流浪地球", "刘慈欣", "中国华侨出版社", ["科幻"]),
    ("白鹿原", "陈忠实", "人民文学出版社", ["当代小说"]),
    ("傅雷家书", "傅雷", "译林出版社", ["书信", "家教"]),
    ("文化苦旅", "余秋雨", "长江文艺出版社", ["散文"]),
    ("我与地坛", "史铁生", "人民文学出版社", ["散文"]),
    ("人间草木", "汪曾祺", "江苏文艺出版社", ["散文"]),
    ("目送", "龙应台", "生活·读书·新知三联书店", ["散文"]),
    ("长征", "王树增", "人民文学出版社", ["历史"]),
    ("明朝那些事儿", "当年明月", "中国海关出版社", ["历史"]),
    ("中国通史", "吕思勉", "中华书局", ["历史"]),
    ("乡土中国", "费孝通", "北京大学出版社", ["社会"]),
    ("论语译注", "杨伯峻", "中华书局", ["国学"]),
    ("唐诗三百首", "蘅塘退士", "中华书局", ["诗词"]),
    ("宋词三百首", "上彊村民", "中华书局", ["诗词"]),
    ("家常菜谱大全", "本书编委会", "中国轻工业出版社", ["生活", "烹饪"]),
    ("老年人健康生活指南", "本书编委会", "人民卫生出版社", ["健康", "老年"]),
    ("太极拳图解", "本书编委会", "人民体育出版社", ["健身", "老年"]),
    ("智能手机轻松学", "本书编委会", "人民邮电出版社", ["老年", "数字生活"]),
    ("家庭急救手册", "本书编委会", "人民卫生出版社", ["健康"]),
    ("河北历史文化名城", "本书编委会", "河北人民出版社", ["地方文献"]),
    ("石家庄老街巷", "本书编委会", "河北教育出版社", ["地方文献"]),
    ("猜猜我有多爱你", "山姆·麦克布雷尼", "明天出版社", ["绘本"]),
    ("好饿的毛毛虫", "艾瑞·卡尔", "明天出版社", ["绘本"]),
]

# (code, name, kind, community code, district, float policy, copies)
BRANCHES: list[tuple[str, str, BranchKind, str | None, str | None, FloatPolicy, int]] = [
    ("sjz-city", "石家庄市图书馆", BranchKind.CITY, None, None, FloatPolicy.FLOAT, 400),
    ("yuhua", "裕华区图书馆", BranchKind.DISTRICT, None, "裕华区", FloatPolicy.RETURN_HOME, 300),
    ("zhihuicheng", "智汇城书屋", BranchKind.BOOK_HOUSE, "zhihuicheng", None, FloatPolicy.RETURN_HOME, 1000),
    ("mingzhu", "明珠花苑书屋", BranchKind.BOOK_HOUSE, "mingzhu", None, FloatPolicy.RETURN_HOME, 100),
    ("beizhaiying", "北翟营书屋", BranchKind.BOOK_HOUSE, "beizhaiying", None, FloatPolicy.RETURN_HOME, 100),
]
SPRING_FESTIVAL_2027 = date(2027, 2, 6)


@dataclass(frozen=True, slots=True)
class LibrarySeedReport:
    branches: int
    books: int
    copies: int


def demo_isbn(n: int) -> str:
    core = f"97879{n:07d}"
    return core + isbn13_check(core)


async def seed_library_demo(db: Database, *, seed: int = 20261130) -> LibrarySeedReport:
    """Create the demo network once (nothing when its branches exist): 5 branches, 1,900 copies, default rules."""
    rng = random.Random(seed)
    now = utc_now()
    async with db.unit_of_work() as uow:
        session = uow.session
        if await session.scalar(select(Branch.id).where(Branch.code == "sjz-city")) is not None:
            return LibrarySeedReport(0, 0, 0)
        communities = dict((await session.execute(select(Community.code, Community.id))).all())
        branches: list[tuple[Branch, int]] = []
        for code, name, kind, community_code, district, policy, copies in BRANCHES:
            community_id = communities.get(community_code) if community_code else None
            if kind is BranchKind.BOOK_HOUSE and community_id is None:
                continue  # that community is not in this database
            branch = Branch(code=code, name=name, kind=kind.value, community_id=community_id, district=district,
                            float_policy=policy.value, active=True, created_at=now)  # fmt: skip
            session.add(branch)
            branches.append((branch, copies))
        books = [
            Book(isbn=demo_isbn(i + 1), title=title, author=author, publisher=publisher,
                 year=rng.randint(1990, 2024), subjects=subjects, created_at=now)
            for i, (title, author, publisher, subjects) in enumerate(TITLES)
        ]  # fmt: skip
        session.add_all(books)
        await session.flush()
        copy_rows = []
        for branch, count in branches:
            for n in range(count):
                book = books[n % len(books)] if n < len(books) else rng.choice(books)
                copy_rows.append(
                    {"barcode": f"{branch.code.upper()}-{n + 1:06d}", "book_id": book.id, "home_branch_id": branch.id,
                     "current_branch_id": branch.id, "status": CopyStatus.AVAILABLE.value,
                     "item_type": "picture_book" if "绘本" in book.subjects else "book",
                     "created_at": now, "updated_at": now}
                )  # fmt: skip
        await session.execute(insert(Copy), copy_rows)
        # The network's rule: 3 books for 30 days, one renewal; elders may renew twice; picture
        # books for children go for 21 days.
        session.add_all(
            [
                LoanRule(max_loans=3, loan_days=30, renewals=1, renewal_days=30, holds_allowed=3, hold_pickup_days=7,
                         suspension_days_per_overdue_day=1, max_suspension_days=90, created_at=now),
                LoanRule(reader_category="elder", max_loans=3, loan_days=30, renewals=2, renewal_days=30,
                         holds_allowed=3, hold_pickup_days=7, suspension_days_per_overdue_day=1,
                         max_suspension_days=90, created_at=now),
                LoanRule(reader_category="child", item_type="picture_book", max_loans=3, loan_days=21, renewals=1,
                         renewal_days=21, holds_allowed=3, hold_pickup_days=7, suspension_days_per_overdue_day=1,
                         max_suspension_days=30, created_at=now),
            ]
        )  # fmt: skip
        city = branches[0][0]
        session.add_all(
            ClosedDay(branch_id=city.id, day=SPRING_FESTIVAL_2027 + timedelta(days=d), note="春节") for d in range(3)
        )
    return LibrarySeedReport(branches=len(branches), books=len(books), copies=len(copy_rows))
