"""Registry queries."""

from __future__ import annotations

from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry import relay

from api.core.viewer import Permission
from api.graphql.context import Info
from api.graphql.pagination import Connection, decode_id, page_args, paged
from api.graphql.registry.survey import AgeingSurvey
from api.graphql.registry.types import AfterArg, Community, FirstArg, Resident, ResidentFilterInput
from api.registry import repository, survey
from api.registry.models import Community as CommunityModel
from api.registry.models import Resident as ResidentModel


def _forbidden(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


@strawberry.type
class RegistryQuery:
    @strawberry.field(description="Communities the viewer has a role in.")
    async def communities(self, info: Info, first: FirstArg = None, after: AfterArg = None) -> Connection[Community]:
        stmt = repository.scoped(CommunityModel, info.context.viewer.community_ids)
        return await paged(info.context.db, stmt, CommunityModel.id, page_args(first, after), Community.from_model)

    @strawberry.field(description="Residents across the communities where the viewer may see the registry.")
    async def residents(
        self,
        info: Info,
        community_id: Annotated[relay.GlobalID | None, strawberry.argument(description="Only this community.")] = None,
        filter: Annotated[
            ResidentFilterInput | None, strawberry.argument(description="Conditions residents must meet.")
        ] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[Resident]:
        viewer = info.context.viewer
        scope = set(viewer.communities_where(Permission.VIEW_REGISTRY))
        if not scope:
            raise _forbidden("Only community staff can list residents.")
        if community_id is not None:
            scope &= {decode_id(community_id, "Community")}
        args = page_args(first, after)
        filt = filter.to_filter() if filter else repository.ResidentFilter()
        stmt = repository.residents_query(scope, filt, today=info.context.today)
        return await paged(
            info.context.db, stmt, ResidentModel.id, args, Resident.from_model, prefetch_for=(info, "Resident")
        )

    @strawberry.field(description="The ageing survey (老龄化调查) of a community, computed now.")
    async def ageing_survey(
        self,
        info: Info,
        community_id: Annotated[relay.GlobalID, strawberry.argument(description="The community.")],
    ) -> AgeingSurvey:
        cid = decode_id(community_id, "Community")
        if cid not in info.context.viewer.community_ids:
            raise GraphQLError("No such community.", extensions={"code": "NOT_FOUND"})
        if not info.context.viewer.can(Permission.VIEW_SURVEY, cid):
            raise _forbidden("Only community staff can see the ageing survey.")
        async with info.context.db.read_session() as session:
            result = await survey.ageing_survey(session, community_id=cid, today=info.context.today)
        return AgeingSurvey.from_survey(result)
