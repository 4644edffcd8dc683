"""Image and task status machines: pure data, enforced by the registry with
compare-and-set updates."""

from __future__ import annotations

from services.common.errors import InvalidTransition

IMAGE_STATUSES = (
    "queued",
    "saving",
    "uploading",
    "importing",
    "active",
    "deactivated",
    "killed",
    "deleted",
    "pending_delete",
)

IMAGE_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"saving", "uploading", "importing", "active", "deleted"}),
    "saving": frozenset({"active", "queued", "killed", "deleted"}),
    "uploading": frozenset({"importing", "queued", "deleted"}),
    "importing": frozenset({"active", "queued", "deleted"}),
    "active": frozenset({"deactivated", "deleted", "pending_delete"}),
    "deactivated": frozenset({"active", "deleted"}),
    "killed": frozenset({"deleted"}),
    # back to active: tessera-manage scrubber restore (glance-scrubber --restore)
    "pending_delete": frozenset({"deleted", "active"}),
    "deleted": frozenset(),
}

TASK_STATUSES = ("pending", "processing", "success", "failure")

TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"processing", "failure"}),
    "processing": frozenset({"success", "failure"}),
    "success": frozenset(),
    "failure": frozenset(),
}


def check_image_transition(current: str, target: str) -> None:
    if target not in IMAGE_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(
            f"Image status transition from {current} to {target} is not allowed"
        )


def check_task_transition(current: str, target: str) -> None:
    if target not in TASK_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"Task status transition from {current} to {target} is not allowed")
