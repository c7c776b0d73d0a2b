"""Posting and moderation through GraphQL: who may post, per-kind details, the status flow and its refusals."""

from __future__ import annotations

from datetime import timedelta

from api.listings.models import ListingStatus
from tests.listings.conftest import Board, db_id, expire_in, gid, post, published, reload

CREATE = """
mutation Create($input: CreateListingInput!) {
  createListing(input: $input) {
    __typename
    ... on ListingSuccess {
      listing {
        id kind status title price priceCents areaM2 postedByYou postedByStaff expiresAt compound { name }
        details {
          __typename
          ... on RentalDetails { roomType areaM2 monthlyRentCents floor furnished }
          ... on SaleDetails { priceCents condition }
          ... on JobDetails { employer salaryMinCents salaryMaxCents openings }
        }
      }
    }
    ... on UserError { message field code }
  }
}
"""
UPDATE = """
mutation Update($input: UpdateListingInput!) {
  updateListing(input: $input) {
    __typename
    ... on ListingSuccess { listing { title priceCents } }
    ... on ListingStatusError { status }
    ... on UserError { message field code }
  }
}
"""
SUBMIT = """
mutation Submit($input: SubmitListingInput!) {
  submitListing(input: $input) {
    __typename ... on ListingSuccess { listing { status } } ... on ListingStatusError { status } ... on UserError { code }
  }
}
"""
MODERATE = """
mutation Moderate($input: ModerateListingInput!) {
  moderateListing(input: $input) {
    __typename
    ... on ListingSuccess { listing { status rejectReason expiresAt } }
    ... on ListingStatusError { status }
    ... on UserError { message field code }
  }
}
"""
RENEW = """
mutation Renew($input: RenewListingInput!) {
  renewListing(input: $input) {
    __typename
    ... on ListingSuccess { listing { status renewals expiresAt } }
    ... on RenewalNotDueError { renewableFrom }
    ... on ListingStatusError { status }
    ... on UserError { code }
  }
}
"""
WITHDRAW = """
mutation Withdraw($input: WithdrawListingInput!) {
  withdrawListing(input: $input) {
    __typename ... on ListingSuccess { listing { status } } ... on ListingStatusError { status } ... on UserError { code }
  }
}
"""
NODE = "query N($id: ID!) { node(id: $id) { ... on Listing { id status title } } }"


def status_error(result: dict[str, object]) -> object:
    assert result["__typename"] == "ListingStatusError", result
    assert result["code"] == "WRONG_LISTING_STATUS"
    return result["status"]


def rental_input(board: Board, **rental: object) -> dict[str, object]:
    details = {"roomType": "两室一厅", "areaM2": 68.5, "monthlyRentCents": 150000, "floor": 3, **rental}
    return {"communityId": board.community_gid, "kind": "RENTAL", "title": "明珠花苑两室出租", "rental": details}


async def test_a_resident_posts_a_rental_draft_with_its_details(gql, board: Board):
    # when
    data = await gql(CREATE, {"input": rental_input(board, furnished=True)}, token=board.poster.token)
    # then
    listing = data["createListing"]["listing"]
    assert listing["status"] == "DRAFT"
    assert (listing["kind"], listing["priceCents"], listing["price"], listing["areaM2"]) == (
        "RENTAL",
        150000,
        "1500.00",
        68.5,
    )
    assert listing["details"] == {
        "__typename": "RentalDetails",
        "roomType": "两室一厅",
        "areaM2": 68.5,
        "monthlyRentCents": 150000,
        "floor": 3,
        "furnished": True,
    }
    assert listing["postedByYou"] is True
    assert listing["postedByStaff"] is False
    assert listing["compound"] == {"name": board.estate.compound.name}  # where the poster lives
    assert listing["expiresAt"] is None


async def test_someone_from_another_community_cannot_post(gql, board: Board):
    # when: a resident of another community posts here
    data = await gql(CREATE, {"input": rental_input(board)}, token=board.outsider.token)
    # then
    assert data["createListing"] == {
        "__typename": "NotCommunityResidentError",
        "message": "Only residents of this community can post here.",
        "field": "communityId",
        "code": "NOT_COMMUNITY_RESIDENT",
    }


async def test_details_are_checked_per_kind(gql, board: Board):
    cases = [
        ({"communityId": board.community_gid, "kind": "RENTAL", "title": "出租"}, "rental"),
        (
            {"communityId": board.community_gid, "kind": "RENTAL", "title": "出租",
             "sale": {"priceCents": 100, "condition": "GOOD"}},
            "rental",
        ),
        (rental_input(board, areaM2=0), "rental.areaM2"),
        (rental_input(board, floor=0), "rental.floor"),
        (rental_input(board, floor=9, totalFloors=6), "rental.floor"),
        (rental_input(board, roomType=" "), "rental.roomType"),
        (rental_input(board, monthlyRentCents=-1), "rental.monthlyRentCents"),
        (
            {"communityId": board.community_gid, "kind": "JOB", "title": "招聘收银员",
             "job": {"employer": "便利店", "salaryMinCents": 500000, "salaryMaxCents": 300000}},
            "job.salaryMaxCents",
        ),
        (
            {"communityId": board.community_gid, "kind": "SALE", "title": "出售",
             "sale": {"priceCents": 1, "condition": "NEW"}, "need": {}},
            "details",
        ),
    ]  # fmt: skip
    for given, field in cases:
        data = await gql(CREATE, {"input": given}, token=board.poster.token)
        result = data["createListing"]
        assert (result["__typename"], result["code"], result["field"]) == (
            "InvalidListingDetailsError",
            "INVALID_LISTING_DETAILS",
            field,
        ), given
    # and an empty title is a plain validation error
    data = await gql(CREATE, {"input": {**rental_input(board), "title": " "}}, token=board.poster.token)
    assert (data["createListing"]["__typename"], data["createListing"]["field"]) == ("ValidationError", "title")


async def test_a_job_ad_and_a_sale_store_their_search_columns(gql, board: Board):
    job = {
        "communityId": board.community_gid, "kind": "JOB", "title": "超市招聘理货员",
        "job": {"employer": "邻里超市", "salaryMinCents": 350000, "salaryMaxCents": 450000, "openings": 2},
    }  # fmt: skip
    data = await gql(CREATE, {"input": job}, token=board.poster.token)
    listing = data["createListing"]["listing"]
    assert (listing["priceCents"], listing["areaM2"]) == (350000, None)
    assert listing["details"]["employer"] == "邻里超市"
    give_away = {
        "communityId": board.community_gid, "kind": "SALE", "title": "免费送旧书",
        "sale": {"priceCents": 0, "condition": "FAIR"},
    }  # fmt: skip
    data = await gql(CREATE, {"input": give_away}, token=board.poster.token)
    assert data["createListing"]["listing"]["details"] == {
        "__typename": "SaleDetails",
        "priceCents": 0,
        "condition": "FAIR",
    }


async def test_staff_posts_are_published_at_once(gql, board: Board, jobs):
    data = await gql(CREATE, {"input": {**rental_input(board), "submit": True}}, token=board.staff.token)
    listing = data["createListing"]["listing"]
    assert listing["status"] == "PUBLISHED"
    assert listing["postedByStaff"] is True
    assert listing["expiresAt"] is not None
    assert jobs.actor_names == ["listings.notify_poster"]


async def test_draft_submit_reject_edit_resubmit_approve(gql, board: Board, jobs):
    # given: a draft
    created = await gql(CREATE, {"input": rental_input(board)}, token=board.poster.token)
    lid = created["createListing"]["listing"]["id"]
    # when: it is submitted
    data = await gql(SUBMIT, {"input": {"listingId": lid}}, token=board.poster.token)
    assert data["submitListing"] == {"__typename": "ListingSuccess", "listing": {"status": "PENDING"}}
    # then: submitting again is refused
    again = await gql(SUBMIT, {"input": {"listingId": lid}}, token=board.poster.token)
    assert status_error(again["submitListing"]) == "PENDING"
    # when: staff reject it without a reason
    no_reason = await gql(MODERATE, {"input": {"listingId": lid, "approve": False}}, token=board.staff.token)
    assert (no_reason["moderateListing"]["__typename"], no_reason["moderateListing"]["field"]) == (
        "ValidationError",
        "reason",
    )
    rejected = await gql(
        MODERATE, {"input": {"listingId": lid, "approve": False, "reason": "请补充租金是否含物业费"}},
        token=board.staff.token,
    )  # fmt: skip
    assert rejected["moderateListing"]["listing"] == {
        "status": "REJECTED",
        "rejectReason": "请补充租金是否含物业费",
        "expiresAt": None,
    }
    # then: deciding again is refused
    twice = await gql(MODERATE, {"input": {"listingId": lid, "approve": True}}, token=board.staff.token)
    assert status_error(twice["moderateListing"]) == "REJECTED"
    # when: the poster corrects it and submits again, and staff approve
    edited = await gql(
        UPDATE, {"input": {"listingId": lid, "title": "两室出租（含物业费）",
                           "rental": {"roomType": "两室一厅", "areaM2": 68.5, "monthlyRentCents": 160000, "floor": 3}}},
        token=board.poster.token,
    )  # fmt: skip
    assert edited["updateListing"]["listing"] == {"title": "两室出租（含物业费）", "priceCents": 160000}
    await gql(SUBMIT, {"input": {"listingId": lid}}, token=board.poster.token)
    approved = await gql(MODERATE, {"input": {"listingId": lid, "approve": True}}, token=board.staff.token)
    # then: published for 30 days; the poster is told of each decision
    listing = approved["moderateListing"]["listing"]
    assert (listing["status"], listing["rejectReason"]) == ("PUBLISHED", None)
    row = await reload_by_gid(gql, board, lid)
    assert row["status"] == "PUBLISHED"
    assert jobs.actor_names == ["listings.notify_poster", "listings.notify_poster"]
    assert [o.job.kwargs["event"] for o in jobs.sent] == ["rejected", "published"]
    # and a published listing cannot be edited
    late = await gql(
        UPDATE, {"input": {"listingId": lid, "title": "改", "rental": {"roomType": "一室", "areaM2": 30, "monthlyRentCents": 1,
                                                                       "floor": 1}}},
        token=board.poster.token,
    )  # fmt: skip
    assert status_error(late["updateListing"]) == "PUBLISHED"


async def reload_by_gid(gql, board: Board, lid: str) -> dict[str, object]:
    data = await gql(NODE, {"id": lid}, token=board.poster.token)
    node: dict[str, object] = data["node"]
    return node


async def test_residents_cannot_moderate_and_others_cannot_touch_a_listing(gql_raw, gql, services, board: Board):
    row = await post(services, board)
    lid = gid("Listing", row.id)
    # a pending listing does not exist for a neighbour, nor for another community's resident
    hidden = await gql(MODERATE, {"input": {"listingId": lid, "approve": True}}, token=board.neighbour.token)
    assert hidden["moderateListing"]["__typename"] == "NotFoundError"
    for login in (board.neighbour, board.outsider):
        data = await gql(WITHDRAW, {"input": {"listingId": lid}}, token=login.token)
        assert data["withdrawListing"]["__typename"] == "NotFoundError"
        assert (await gql(NODE, {"id": lid}, token=login.token))["node"] is None
    assert (await reload(services, row.id)).status == ListingStatus.PENDING.value
    # a published one is seen by the neighbour, who still may not moderate or withdraw it
    shown = await published(services, board, title="旧自行车")
    sid = gid("Listing", shown.id)
    assert (await gql(NODE, {"id": sid}, token=board.neighbour.token))["node"]["title"] == "旧自行车"
    body = await gql_raw(WITHDRAW, {"input": {"listingId": sid}}, token=board.neighbour.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await gql(NODE, {"id": sid}, token=board.outsider.token))["node"] is None


async def test_renewal_only_in_the_last_days_or_after_expiry(gql, services, board: Board, runner):
    row = await published(services, board)
    lid = gid("Listing", row.id)
    # when: renewing a fresh listing
    early = await gql(RENEW, {"input": {"listingId": lid}}, token=board.poster.token)
    # then: not yet
    assert early["renewListing"]["__typename"] == "RenewalNotDueError"
    # when: it has expired (the scan ran)
    await expire_in(services, row.id, -timedelta(minutes=1))
    async with services.db.unit_of_work(services.jobs) as uow:
        from api.listings import service as listings

        await listings.scan(uow)
    assert (await reload(services, row.id)).status == ListingStatus.EXPIRED.value
    renewed = await gql(RENEW, {"input": {"listingId": lid}}, token=board.poster.token)
    # then: published again for another 30 days
    listing = renewed["renewListing"]["listing"]
    assert (listing["status"], listing["renewals"]) == ("PUBLISHED", 1)
    fresh = await reload(services, row.id)
    assert fresh.expires_at is not None
    assert fresh.published_at is not None
    assert fresh.expires_at - fresh.published_at == timedelta(days=30)
    # and a withdrawn listing cannot be renewed
    await gql(WITHDRAW, {"input": {"listingId": lid}}, token=board.poster.token)
    gone = await gql(RENEW, {"input": {"listingId": lid}}, token=board.poster.token)
    assert status_error(gone["renewListing"]) == "WITHDRAWN"
    twice = await gql(WITHDRAW, {"input": {"listingId": lid}}, token=board.poster.token)
    assert status_error(twice["withdrawListing"]) == "WITHDRAWN"
    assert db_id(lid) == row.id
