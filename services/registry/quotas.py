"""Limits on what a project stores: counts of properties, tags, locations and members,
and bytes (image_size_cap, user_storage_quota)."""

from __future__ import annotations

import re

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from services.common.errors import QuotaExceeded
from services.registry.models import Image


def check_quota(what: str, attempted: int, maximum: int) -> None:
    """A negative maximum means unlimited."""
    if 0 <= maximum < attempted:
        raise QuotaExceeded(
            f"The limit has been exceeded on the number of allowed image "
            f"{what}. Attempted: {attempted}, Maximum: {maximum}"
        )


_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_quota(text: str) -> int:
    """Glance's ``user_storage_quota`` form: ``0`` (unlimited), ``1073741824``, ``500GB``."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?B)?\s*", text or "0", re.IGNORECASE)
    if not match:
        raise ValueError(f"invalid user_storage_quota {text!r}")
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


def space_left(session: Session, owner: str | None, conf) -> int:
    """Bytes the owner may still upload: image_size_cap, and what the storage quota
    leaves."""
    limit = conf.image_size_cap
    # with unified limits, Keystone's limits replace user_storage_quota (as in Glance)
    quota = 0 if conf.use_keystone_limits else parse_quota(conf.user_storage_quota)
    if quota:
        used = (
            session.scalar(
                select(func.coalesce(func.sum(Image.size), 0)).where(
                    Image.owner == owner, Image.deleted.is_(False)
                )
            )
            or 0
        )
        limit = min(limit, max(0, quota - used))
    return limit


def usage(session: Session, owner: str | None, conf) -> dict:
    """What ``GET /v2/info/usage`` reports: the project's image bytes and counts against
    its limits (-1: unlimited)."""
    size, count, uploading = session.execute(
        select(
            func.coalesce(func.sum(Image.size), 0),
            func.count(Image.id),
            func.coalesce(
                func.sum(
                    case((Image.status.in_(("saving", "uploading", "importing")), 1), else_=0)
                ),
                0,
            ),
        ).where(Image.owner == owner, Image.deleted.is_(False))
    ).one()
    quota = parse_quota(conf.user_storage_quota)
    return {
        "image_size_total": {"limit": quota or -1, "usage": int(size)},
        "image_count_total": {"limit": -1, "usage": count},
        "image_stage_total": {"limit": -1, "usage": 0},
        "image_count_uploading": {"limit": -1, "usage": int(uploading)},
    }
