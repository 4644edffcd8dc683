"""Who may see and change an image (Glance's default rules for the image record)."""

from __future__ import annotations

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from services.common.context import RequestContext
from services.common.errors import Forbidden
from services.registry.models import Image, ImageMember


def member_condition(project_id: str | None, member_status: str):
    """Images shared with ``project_id`` whose membership has ``member_status``."""
    cond = and_(ImageMember.image_id == Image.id, ImageMember.member == project_id)
    if member_status != "all":
        cond = and_(cond, ImageMember.status == member_status)
    return exists(select(ImageMember.id).where(cond))


def visible_condition(ctx: RequestContext, visibility: str | None, member_status: str):
    """The SQL condition for the images ``ctx`` may list, as Glance lists them."""
    if ctx.is_admin:
        if visibility is None:  # community images are listed only when asked for
            return or_(Image.owner == ctx.project_id, Image.visibility != "community")
        return None if visibility == "all" else Image.visibility == visibility
    owned = Image.owner == ctx.project_id
    shared_with_me = and_(
        Image.visibility == "shared", member_condition(ctx.project_id, member_status)
    )
    if visibility is None:
        return or_(owned, Image.visibility == "public", shared_with_me)
    if visibility == "all":
        return or_(owned, Image.visibility.in_(("public", "community")), shared_with_me)
    if visibility in ("public", "community"):
        return Image.visibility == visibility
    if visibility == "private":
        return and_(Image.visibility == "private", owned)
    # shared: my own shared images and those shared with me
    return and_(
        Image.visibility == "shared", or_(owned, member_condition(ctx.project_id, member_status))
    )


def is_member(session: Session, ctx: RequestContext, image_id: str) -> bool:
    """Whether the image is shared with the caller's project (any member status)."""
    return (
        session.scalar(
            select(ImageMember.id)
            .where(ImageMember.image_id == image_id, ImageMember.member == ctx.project_id)
            .limit(1)
        )
        is not None
    )


def shares_with_caller(session: Session, ctx: RequestContext, image) -> bool:
    """Whether ``image`` is shared with the caller's project; asks the database only
    when the answer matters (a shared image the caller neither owns nor administers)."""
    return (
        image.visibility == "shared"
        and not ctx.is_admin
        and image.owner != ctx.project_id
        and is_member(session, ctx, image.id)
    )


def can_see(ctx: RequestContext, image, member: bool) -> bool:
    """Whether ``ctx`` may see ``image`` (an ORM image or a row) at all."""
    if ctx.is_admin or image.owner == ctx.project_id:
        return True
    if image.visibility in ("public", "community"):
        return True
    return image.visibility == "shared" and member


def image_target(ctx: RequestContext, image, member: bool = False) -> dict:
    """The policy target of an image (Glance's names): ``member_id`` is the caller's
    project when the image is shared with it."""
    return {
        "project_id": image.owner,
        "owner": image.owner,
        "visibility": image.visibility,
        "member_id": ctx.project_id if member else None,
    }


def authorize(session: Session, ctx: RequestContext, action: str, image) -> None:
    """Policy check of ``action`` on ``image``; membership is looked up only when the
    image is shared and the caller does not own it."""
    ctx.can(action, image_target(ctx, image, shares_with_caller(session, ctx, image)))


def check_new_attribute(ctx: RequestContext, image, name: str, value) -> None:
    """Setting visibility or owner needs more than modify_image."""
    if name == "visibility" and value == "public":
        ctx.can("publicize_image", image_target(ctx, image))
    elif name == "visibility" and value == "community":
        ctx.can("communitize_image", image_target(ctx, image))
    elif name == "owner" and value != image.owner and not ctx.is_admin:
        raise Forbidden("Only an admin may change the owner of an image.")
