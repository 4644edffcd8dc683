"""The image and task status machines (services/common/states.py)."""

from __future__ import annotations

import pytest

from services.common.errors import Conflict, InvalidTransition
from services.common.states import (
    IMAGE_STATUSES,
    IMAGE_TRANSITIONS,
    TASK_STATUSES,
    TASK_TRANSITIONS,
    check_image_transition,
    check_task_transition,
)

IMAGE_ALLOWED = [
    ("queued", "saving"),
    ("queued", "uploading"),
    ("queued", "importing"),
    ("queued", "active"),
    ("queued", "deleted"),
    ("saving", "active"),
    ("saving", "queued"),
    ("saving", "killed"),
    ("saving", "deleted"),
    ("uploading", "importing"),
    ("uploading", "queued"),
    ("uploading", "deleted"),
    ("importing", "active"),
    ("importing", "queued"),
    ("importing", "deleted"),
    ("active", "deactivated"),
    ("active", "deleted"),
    ("active", "pending_delete"),
    ("deactivated", "active"),
    ("deactivated", "deleted"),
    ("killed", "deleted"),
    ("pending_delete", "deleted"),
    ("pending_delete", "active"),  # restore, as Glance
]
TASK_ALLOWED = [
    ("pending", "processing"),
    ("pending", "failure"),
    ("processing", "success"),
    ("processing", "failure"),
]


def all_pairs(statuses):
    return [(a, b) for a in statuses for b in statuses]


@pytest.mark.parametrize(("current", "target"), IMAGE_ALLOWED)
def test_allowed_image_transitions_pass(current, target):
    check_image_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"), [p for p in all_pairs(IMAGE_STATUSES) if p not in IMAGE_ALLOWED]
)
def test_every_other_image_transition_is_refused(current, target):
    with pytest.raises(InvalidTransition, match=f"from {current} to {target}"):
        check_image_transition(current, target)


@pytest.mark.parametrize(("current", "target"), TASK_ALLOWED)
def test_allowed_task_transitions_pass(current, target):
    check_task_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"), [p for p in all_pairs(TASK_STATUSES) if p not in TASK_ALLOWED]
)
def test_every_other_task_transition_is_refused(current, target):
    with pytest.raises(InvalidTransition):
        check_task_transition(current, target)


@pytest.mark.parametrize(
    ("check", "known"), [(check_image_transition, "active"), (check_task_transition, "pending")]
)
def test_unknown_statuses_are_refused(check, known):
    with pytest.raises(InvalidTransition):
        check("bogus", known)
    with pytest.raises(InvalidTransition):
        check(known, "bogus")


@pytest.mark.parametrize(
    ("statuses", "transitions"),
    [(IMAGE_STATUSES, IMAGE_TRANSITIONS), (TASK_STATUSES, TASK_TRANSITIONS)],
)
def test_every_status_has_an_entry_and_targets_are_known(statuses, transitions):
    assert set(transitions) == set(statuses)
    for targets in transitions.values():
        assert targets <= set(statuses)


def test_deleted_is_terminal_and_reachable_from_every_live_status():
    assert IMAGE_TRANSITIONS["deleted"] == frozenset()
    assert all("deleted" in IMAGE_TRANSITIONS[s] for s in IMAGE_STATUSES if s != "deleted")


def test_invalid_transition_is_a_conflict():
    # The gateway maps Conflict to 409; a refused transition must be one.
    assert issubclass(InvalidTransition, Conflict)
