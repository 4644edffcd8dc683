"""Image members: how an owner shares an image with other projects (Image API 2.5
rules: only ``shared`` images have members; the owner adds and removes them, each member
accepts or rejects for itself)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.common.context import RequestContext
from services.common.errors import Duplicate, Forbidden, NotFound
from services.registry import access
from services.registry.images import get_visible
from services.registry.models import Image, ImageMember, utcnow
from services.registry.quotas import check_quota
from services.registry.views import isotime

MEMBER_STATUSES = ("pending", "accepted", "rejected")


def member_record(member: ImageMember) -> dict:
    return {
        "image_id": member.image_id,
        "member_id": member.member,
        "status": member.status,
        "created_at": isotime(member.created_at),
        "updated_at": isotime(member.updated_at or member.created_at),
        "schema": "/v2/schemas/member",
    }


def _target(ctx: RequestContext, image: Image, member_id: str | None) -> dict:
    return {**access.image_target(ctx, image), "member_id": member_id}


def _members(session: Session, image_id: str) -> list[ImageMember]:
    return list(
        session.scalars(
            select(ImageMember)
            .where(ImageMember.image_id == image_id)
            .order_by(ImageMember.created_at, ImageMember.id)
        )
    )


def _member(session: Session, image_id: str, member_id: str) -> ImageMember | None:
    return session.scalar(
        select(ImageMember).where(ImageMember.image_id == image_id, ImageMember.member == member_id)
    )


def list_members(session: Session, ctx: RequestContext, image_id: str) -> list[ImageMember]:
    """The owner (and an admin) sees every member; a member sees only itself."""
    image = get_visible(session, ctx, image_id)
    members = _members(session, image_id)
    mine = [m for m in members if m.member == ctx.project_id]
    ctx.can("get_members", _target(ctx, image, ctx.project_id if mine else None))
    if ctx.is_admin or image.owner == ctx.project_id:
        return members
    return mine


def get_member(session: Session, ctx: RequestContext, image_id: str, member_id: str) -> ImageMember:
    image = get_visible(session, ctx, image_id)
    member = _member(session, image_id, member_id)
    may_see = ctx.is_admin or image.owner == ctx.project_id or member_id == ctx.project_id
    if member is None or not may_see:
        raise NotFound(f"{member_id} is not a member of image {image_id}")
    ctx.can("get_member", _target(ctx, image, member_id))
    return member


def add_member(
    session: Session, ctx: RequestContext, conf, image_id: str, member_id: str
) -> ImageMember:
    image = get_visible(session, ctx, image_id)
    ctx.can("add_member", _target(ctx, image, None))
    if image.owner != ctx.project_id and not ctx.is_admin:
        raise Forbidden("Only the owner of an image may share it.")
    if image.visibility != "shared":
        raise Forbidden(f"Only shared images have members; image {image_id} is {image.visibility}.")
    if _member(session, image_id, member_id) is not None:
        raise Duplicate(f"The member {member_id} of image {image_id} already exists.")
    check_quota("image members", len(_members(session, image_id)) + 1, conf.image_member_quota)
    now = utcnow()
    member = ImageMember(
        image_id=image_id, member=member_id, status="pending", created_at=now, updated_at=now
    )
    session.add(member)
    session.flush()
    return member


def set_member_status(
    session: Session, ctx: RequestContext, image_id: str, member_id: str, status: str
) -> ImageMember:
    member = get_member(session, ctx, image_id, member_id)
    image = session.get(Image, image_id)
    if not ctx.may("modify_member", _target(ctx, image, member_id)):
        raise Forbidden("Only the member itself may accept or reject a shared image.")
    member.status = status
    member.updated_at = utcnow()
    session.flush()
    return member


def remove_member(
    session: Session, ctx: RequestContext, image_id: str, member_id: str
) -> ImageMember:
    image = get_visible(session, ctx, image_id)
    member = _member(session, image_id, member_id)
    if image.owner != ctx.project_id and not ctx.is_admin:
        if member is not None and member_id == ctx.project_id:
            raise Forbidden("A member may not remove itself; it can reject the image.")
        raise NotFound(f"{member_id} is not a member of image {image_id}")
    ctx.can("delete_member", _target(ctx, image, member_id))
    if member is None:
        raise NotFound(f"{member_id} is not a member of image {image_id}")
    session.delete(member)
    return member


def shared_with(session: Session, ctx: RequestContext, member_id: str) -> list[ImageMember]:
    """The memberships of ``member_id`` (any status) the caller may see, as the v1 API's
    ``/v1/shared-images/{member}`` lists them: an admin sees them all, anyone else only
    its own memberships and those of images it owns."""
    query = (
        select(ImageMember)
        .join(Image, Image.id == ImageMember.image_id)
        .where(ImageMember.member == member_id, Image.deleted.is_(False))
    )
    if not ctx.is_admin:
        mine = or_(ImageMember.member == ctx.project_id, Image.owner == ctx.project_id)
        query = query.where(mine)
    return list(session.scalars(query.order_by(ImageMember.created_at, ImageMember.id)))
