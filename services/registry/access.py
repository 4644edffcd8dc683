"""Who may see and change an image (Glance's default rules for the image record)."""

from __future__ import annotations

from collections.abc import Callable

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
    shared_with_me = and_(Image.visibility == "shared",
                          member_condition(ctx.project_id, member_status))
    if visibility is None:
        return or_(owned, Image.visibility == "public", shared_with_me)
    if visibility == "all":
        return or_(owned, Image.visibility.in_(("public", "community")), shared_with_me)
    if visibility in ("public", "community"):
        return Image.visibility == visibility
    if visibility == "private":
        return and_(Image.visibility == "private", owned)
    # shared: my own shared images and those shared with me
    return and_(Image.visibility == "shared",
                or_(owned, member_condition(ctx.project_id, member_status)))


def is_member(session: Session, ctx: RequestContext, image_id: str) -> bool:
    """Whether the image is shared with the caller's project (any member status)."""
    return session.scalar(select(ImageMember.id).where(
        ImageMember.image_id == image_id, ImageMember.member == ctx.project_id).limit(1)) \
        is not None


def can_see(ctx: RequestContext, image, is_member: Callable[[], bool]) -> bool:
    """Whether ``ctx`` may see ``image`` (an ORM image or a row); ``is_member`` is only
    asked (a query) when the answer depends on it."""
    if ctx.is_admin or image.owner == ctx.project_id:
        return True
    if image.visibility in ("public", "community"):
        return True
    return image.visibility == "shared" and is_member()


def require_can_modify(ctx: RequestContext, image: Image) -> None:
    if not (ctx.is_admin or image.owner == ctx.project_id):
        raise Forbidden("You are not permitted to modify this image.")


def require_can_set_visibility(ctx: RequestContext, visibility: str) -> None:
    if visibility == "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to complete publicize_image action.")


def require_can_set_owner(ctx: RequestContext, owner: str | None) -> None:
    if not ctx.is_admin and owner != ctx.project_id:
        raise Forbidden(f"You are not permitted to create images owned by '{owner}'.")
