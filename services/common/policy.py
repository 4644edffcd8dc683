"""Authorisation with Glance's rule names and current defaults (project-scoped
``admin``, ``member`` and ``reader`` roles), through oslo.policy, so an operator's
policy file for Glance overrides the same rules here (``[oslo_policy] policy_file``).

Visibility itself (who may see which image at all) is enforced by the registry's
queries, as in Glance; these rules decide what a caller may do with what it sees."""

from __future__ import annotations

import time

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from services.common.errors import Forbidden

PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
IMAGE_MEMBER = "project_id:%(member_id)s"
VISIBLE_TO_ALL = "'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s"
ADMIN = "rule:context_is_admin"
ADMIN_OR_PROJECT_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"{ADMIN} or ({PROJECT_READER})"
ADMIN_OR_READER_GET_IMAGE = (
    f"{ADMIN} or (role:reader and (project_id:%(project_id)s or "
    f"{IMAGE_MEMBER} or {VISIBLE_TO_ALL}))"
)
ADMIN_OR_MEMBER_DOWNLOAD_IMAGE = (
    f"{ADMIN} or (role:member and (project_id:%(project_id)s "
    f"or {IMAGE_MEMBER} or {VISIBLE_TO_ALL}))"
)
ADMIN_OR_MEMBER_CREATE_IMAGE = f"{ADMIN} or ({PROJECT_MEMBER} and project_id:%(owner)s)"
ADMIN_OR_SHARED_MEMBER = f"{ADMIN} or (role:member and {IMAGE_MEMBER})"
ADMIN_OR_READER_OR_SHARED_MEMBER = (
    f"{ADMIN} or role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER})"
)

RULES = {
    "context_is_admin": "role:admin",
    "default": "",
    "add_image": ADMIN_OR_MEMBER_CREATE_IMAGE,
    "get_image": ADMIN_OR_READER_GET_IMAGE,
    "get_images": ADMIN_OR_PROJECT_READER,
    "modify_image": ADMIN_OR_PROJECT_MEMBER,
    "delete_image": ADMIN_OR_PROJECT_MEMBER,
    "publicize_image": ADMIN,
    "communitize_image": ADMIN_OR_PROJECT_MEMBER,
    "upload_image": ADMIN_OR_PROJECT_MEMBER,
    "download_image": ADMIN_OR_MEMBER_DOWNLOAD_IMAGE,
    "deactivate": ADMIN,
    "reactivate": ADMIN,
    "get_image_location": ADMIN_OR_PROJECT_READER,
    "set_image_location": ADMIN_OR_PROJECT_MEMBER,
    "delete_image_location": ADMIN,
    "add_member": ADMIN_OR_PROJECT_MEMBER,
    "delete_member": ADMIN_OR_PROJECT_MEMBER,
    "get_member": ADMIN_OR_READER_OR_SHARED_MEMBER,
    "get_members": ADMIN_OR_READER_OR_SHARED_MEMBER,
    "modify_member": ADMIN_OR_SHARED_MEMBER,
}


class Policy:
    """The rules of one deployment: Glance's defaults, overridden by the policy file.

    oslo.policy evaluates a rule in about a millisecond (it inspects every check's
    signature on every call), which would be a large share of a metadata request. The
    decisions are pure functions of the action, the caller and the target, so they are
    remembered, and forgotten every few seconds so that a changed policy file applies
    within that time (oslo.policy itself reloads the file only when asked)."""

    REMEMBER_SECONDS = 5.0
    MAX_DECISIONS = 10_000

    def __init__(self, conf: cfg.ConfigOpts | None = None):
        if conf is None:
            conf = cfg.ConfigOpts()
            conf([], project="tessera", default_config_files=[], default_config_dirs=[])
        self.enforcer = oslo_policy.Enforcer(conf, use_conf=True)
        self.enforcer.register_defaults(
            [oslo_policy.RuleDefault(name, check) for name, check in RULES.items()]
        )
        self._decisions: dict[tuple, bool] = {}
        self._since = time.monotonic()

    def allows(self, action: str, target: dict, ctx) -> bool:
        key = (
            action,
            ctx.roles,
            ctx.project_id,
            ctx.user_id,
            ctx.is_admin,
            tuple(sorted(target.items())),
        )
        now = time.monotonic()
        if now - self._since > self.REMEMBER_SECONDS or len(self._decisions) > self.MAX_DECISIONS:
            self._decisions.clear()
            self._since = now
        decision = self._decisions.get(key)
        if decision is None:
            creds = {
                "roles": list(ctx.roles),
                "project_id": ctx.project_id,
                "user_id": ctx.user_id,
                "is_admin": ctx.is_admin,
            }
            decision = self._decisions[key] = bool(self.enforcer.enforce(action, target, creds))
        return decision

    def authorize(self, action: str, target: dict, ctx) -> None:
        if not self.allows(action, target, ctx):
            raise Forbidden(f"You are not authorized to complete {action} action.")


_default: Policy | None = None


def default_policy() -> Policy:
    """Glance's default rules, for code run without a deployment's configuration
    (unit tests of the domain)."""
    global _default
    if _default is None:
        _default = Policy()
    return _default
