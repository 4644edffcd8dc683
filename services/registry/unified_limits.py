"""Quotas from Keystone's unified limits: ``[DEFAULT] use_keystone_limits = True`` with
``[oslo_limit]``, enforced through oslo.limit where and as Glance 33 enforces them
(glance/quota/keystone.py and its callers):

- ``image_count_total``: images the project owns that are not killed or (pending) deleted;
  checked with a delta of 1 when an image is created.
- ``image_size_total`` (MiB): image data the project stores, an image's size once per live
  location; checked with the declared size before an upload (and an import) begins.
- ``image_stage_total`` (MiB): data in the staging area (images ``uploading`` or
  ``importing``); checked with the declared size before data is staged.
- ``image_count_uploading``: images the project is uploading, staging or importing; checked
  once the image counts itself (delta 0) when an upload or a stage begins. Its limit is
  read from Keystone before the claim writes (``uploading_limits``) and compared after
  it (``enforce_uploading``): a transaction holding SQLite's write lock must not wait on
  Keystone, or every other writer's wait for the lock (in SQLite's C code, which eventlet
  cannot switch out of) stalls the whole registry, the lock holder included.

Over a limit is a 413 with Glance's message. Keystone unreachable or ``[oslo_limit]``
misconfigured is a 503 that names the cause (Glance answers 500 to the second).

The usage is counted in the registry's own transaction, so a refused request changes
nothing. Like Glance, every check asks Keystone for the current limits (oslo.limit keeps one
connection per process), so a limit changed in Keystone applies to the next request.
"""

from __future__ import annotations

import logging

from keystoneauth1 import exceptions as ksa_exceptions
from oslo_limit import exception as limit_exceptions
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.errors import QuotaExceeded, ServiceUnavailable
from services.registry.models import Image, ImageLocation, ImageProperty

log = logging.getLogger(__name__)

IMAGE_SIZE_TOTAL = "image_size_total"
IMAGE_STAGE_TOTAL = "image_stage_total"
IMAGE_COUNT_TOTAL = "image_count_total"
IMAGE_COUNT_UPLOADING = "image_count_uploading"
RESOURCES = (IMAGE_SIZE_TOTAL, IMAGE_STAGE_TOTAL, IMAGE_COUNT_TOTAL, IMAGE_COUNT_UPLOADING)

MIB = 1 << 20
UPLOADING = ("saving", "uploading", "importing")
GONE = ("killed", "deleted", "pending_delete")
# an image being copied to more stores counts as uploading and staging (Glance)
COPYING = "os_glance_importing_to_stores"

OVER_LIMIT = (
    "The request returned a 413 Request Entity Too Large. This generally means that rate "
    "limiting or a quota threshold was breached.\n\nThe response body:\n{}"
)


def _copying(owner: str, excluded: tuple[str, ...]):
    return (
        select(Image)
        .join(ImageProperty, ImageProperty.image_id == Image.id)
        .where(
            Image.owner == owner,
            ImageProperty.name == COPYING,
            ImageProperty.value != "",
            Image.status.not_in(excluded),
        )
    )


def _size_total(session: Session, owner: str) -> int:
    live_locations = (
        select(func.count(ImageLocation.id))
        .where(ImageLocation.image_id == Image.id, ImageLocation.status != "deleted")
        .scalar_subquery()
    )
    total = session.scalar(
        select(func.coalesce(func.sum(Image.size * live_locations), 0)).where(
            Image.owner == owner, Image.size > 0, Image.status.not_in(GONE)
        )
    )
    return int(total or 0) // MIB


def _stage_total(session: Session, owner: str) -> int:
    staging = session.scalar(
        select(func.coalesce(func.sum(Image.size), 0)).where(
            Image.owner == owner, Image.size > 0, Image.status.in_(("uploading", "importing"))
        )
    )
    copying = _copying(owner, ("uploading", "importing", *GONE)).where(Image.size > 0)
    copied = sum(image.size for image in session.scalars(copying))
    return (int(staging or 0) + copied) // MIB


def _count_total(session: Session, owner: str) -> int:
    return session.scalar(
        select(func.count(Image.id)).where(Image.owner == owner, Image.status.not_in(GONE))
    )


def _count_uploading(session: Session, owner: str) -> int:
    uploading = session.scalar(
        select(func.count(Image.id)).where(Image.owner == owner, Image.status.in_(UPLOADING))
    )
    copying = _copying(owner, (*UPLOADING, *GONE)).with_only_columns(func.count(Image.id))
    return uploading + session.scalar(copying)


USAGE = {
    IMAGE_SIZE_TOTAL: _size_total,
    IMAGE_STAGE_TOTAL: _stage_total,
    IMAGE_COUNT_TOTAL: _count_total,
    IMAGE_COUNT_UPLOADING: _count_uploading,
}


def _enforcer(session: Session, conf):
    # imported on first use: oslo.limit brings openstacksdk (~0.7 s of imports), which a
    # registry without unified limits never needs
    from oslo_limit import limit

    # oslo.limit reads the process-global cfg.CONF; Tessera passes its own ConfigOpts
    # around instead (services/common/config.py registers [oslo_limit] on it)
    limit.CONF = conf

    def usage_of(project_id, resource_names):
        return {name: USAGE[name](session, project_id) for name in resource_names}

    return limit.Enforcer(usage_of)


def _keystone_failure(exc: Exception) -> ServiceUnavailable:
    log.error("unified limits: Keystone's limits could not be read: %s", exc)
    return ServiceUnavailable(
        f"The project's limits could not be read from Keystone ([oslo_limit]): {exc}"
    )


KEYSTONE_FAILURES = (
    limit_exceptions.SessionInitError,
    ksa_exceptions.ClientException,
    ValueError,  # oslo.limit: endpoint, service or region not found
)


def enforce(session: Session, conf, project_id: str | None, deltas: dict[str, int]) -> None:
    """Raise QuotaExceeded when ``deltas`` would take the project over a limit; nothing
    when unified limits are off."""
    if not conf.use_keystone_limits or not project_id:
        return
    try:
        _enforcer(session, conf).enforce(project_id, deltas)
    except limit_exceptions.ProjectOverLimit as exc:
        raise QuotaExceeded(OVER_LIMIT.format(exc)) from None
    except KEYSTONE_FAILURES as exc:
        raise _keystone_failure(exc) from None


def enforce_upload(session: Session, conf, project_id: str | None, size: int | None) -> None:
    """Before an upload's data is accepted: the declared size against image_size_total."""
    enforce(session, conf, project_id, {IMAGE_SIZE_TOTAL: (size or 0) // MIB})


def enforce_stage(session: Session, conf, project_id: str | None, size: int | None) -> None:
    """Before data is staged: the declared size against image_stage_total."""
    enforce(session, conf, project_id, {IMAGE_STAGE_TOTAL: (size or 0) // MIB})


def uploading_limits(conf, project_id: str | None) -> list[tuple[str, int]] | None:
    """Keystone's ``image_count_uploading`` limit of the project, read before the claim
    writes; None when unified limits are off."""
    if not conf.use_keystone_limits or not project_id:
        return None
    try:
        return _enforcer(None, conf).get_project_limits(project_id, [IMAGE_COUNT_UPLOADING])
    except KEYSTONE_FAILURES as exc:
        raise _keystone_failure(exc) from None


def enforce_uploading(session: Session, project_id: str | None, limits) -> None:
    """Once the image counts as uploading (delta 0: it is already in the count), against
    ``limits`` from ``uploading_limits`` (-1: unlimited, as Keystone means it)."""
    if limits is None:
        return
    over = [
        limit_exceptions.OverLimitInfo(name, value, used, 0)
        for name, value in limits
        if value >= 0 and (used := USAGE[name](session, project_id)) > value
    ]
    if over:
        raise QuotaExceeded(OVER_LIMIT.format(limit_exceptions.ProjectOverLimit(project_id, over)))


def usage(session: Session, conf, project_id: str) -> dict:
    """``GET /v2/info/usage`` with unified limits: each resource's limit and usage."""
    try:
        found = _enforcer(session, conf).calculate_usage(project_id, list(RESOURCES))
    except KEYSTONE_FAILURES as exc:
        raise _keystone_failure(exc) from None
    return {name: {"limit": found[name].limit, "usage": found[name].usage} for name in RESOURCES}
