"""Authorisation with Glance 33's rule names and default check strings (project-scoped
``admin``, ``member`` and ``reader`` roles, Glance's ``enforce_new_defaults``), through
oslo.policy, so an operator's policy file for Glance overrides the same rules here
(``[oslo_policy] policy_file``).

Every rule Glance 33 registers is registered here with the same check string, those for
features Tessera does not have yet (tasks, metadefs, cache, stores, import) included, so
that they are in place when the features land and an operator's file names nothing
unknown. tests/unit/common/test_policy_parity.py compares them with the rules of the
Glance wheel from PyPI; ``DIFFERENCES_FROM_GLANCE`` lists what knowingly differs.

The targets use Glance's keys: for an image, ``project_id`` and ``owner`` are its owner,
``visibility`` its visibility, and ``member_id`` the caller's project when the image is
shared with it (services/registry/access.py). Glance's targets carry more (every image
attribute and property), and a few differ in what they hold; README.md's table says where,
none of it changing an answer of the default rules. Visibility itself (who may see which
image at all) is enforced by the registry's queries, as in Glance; these rules decide what
a caller may do with what it sees."""

from __future__ import annotations

import time

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from services.common.errors import Forbidden

# The building blocks, as glance/policies/base.py names them.
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
IMAGE_MEMBER = "project_id:%(member_id)s"
COMMUNITY = "'community':%(visibility)s"
PUBLIC = "'public':%(visibility)s"
SHARED = "'shared':%(visibility)s"
VISIBLE_TO_ALL = f"{COMMUNITY} or {PUBLIC} or {SHARED}"
ADMIN = "rule:context_is_admin"
DEFAULT = "rule:default"
SERVICE = "rule:service_api"
METADEF_ADMIN = "rule:metadef_admin"
ADMIN_OR_PROJECT_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"{ADMIN} or ({PROJECT_READER})"
ADMIN_OR_READER_GET_IMAGE = (
    f"{ADMIN} or (role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER} or "
    f"{VISIBLE_TO_ALL}))"
)
ADMIN_OR_MEMBER_DOWNLOAD_IMAGE = (
    f"{ADMIN} or (role:member and (project_id:%(project_id)s or {IMAGE_MEMBER} or "
    f"{VISIBLE_TO_ALL}))"
)
ADMIN_OR_MEMBER_CREATE_IMAGE = f"{ADMIN} or ({PROJECT_MEMBER} and project_id:%(owner)s)"
ADMIN_OR_SHARED_MEMBER = f"{ADMIN} or (role:member and {IMAGE_MEMBER})"
ADMIN_OR_READER_OR_SHARED_MEMBER = (
    f"{ADMIN} or role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER})"
)
ADMIN_OR_READER_GET_NAMESPACE = (
    f"{ADMIN} or (role:reader and (project_id:%(project_id)s or {PUBLIC}))"
)
SERVICE_OR_PROJECT_MEMBER = f"{SERVICE} or ({PROJECT_MEMBER} and project_id:%(owner)s)"
ADMIN_OR_SERVICE = f"{ADMIN} or {SERVICE}"

#: Rules that hold whatever the token's scope (the rest are project-scoped, as Glance's).
UNSCOPED = frozenset(
    {"default", "context_is_admin", "service_api", "metadef_default", "metadef_admin"}
)

RULES = {
    # glance/policies/base.py
    "default": "",
    "context_is_admin": "role:admin",
    "service_api": "role:service or role:admin",
    # glance/policies/image.py
    "add_image": ADMIN_OR_MEMBER_CREATE_IMAGE,
    "delete_image": ADMIN_OR_PROJECT_MEMBER,
    "get_image": ADMIN_OR_READER_GET_IMAGE,
    "get_images": ADMIN_OR_PROJECT_READER,
    "modify_image": ADMIN_OR_PROJECT_MEMBER,
    "publicize_image": ADMIN,
    "communitize_image": ADMIN_OR_PROJECT_MEMBER,
    "download_image": ADMIN_OR_MEMBER_DOWNLOAD_IMAGE,
    "download_from_store": ADMIN_OR_MEMBER_DOWNLOAD_IMAGE,
    "upload_image": ADMIN_OR_PROJECT_MEMBER,
    "delete_image_location": ADMIN,
    "get_image_location": ADMIN_OR_PROJECT_READER,
    "set_image_location": ADMIN_OR_PROJECT_MEMBER,
    "add_image_location": SERVICE_OR_PROJECT_MEMBER,
    "fetch_image_location": SERVICE,
    "add_member": ADMIN_OR_PROJECT_MEMBER,
    "delete_member": ADMIN_OR_PROJECT_MEMBER,
    "get_member": ADMIN_OR_READER_OR_SHARED_MEMBER,
    "get_members": ADMIN_OR_READER_OR_SHARED_MEMBER,
    "modify_member": ADMIN_OR_SHARED_MEMBER,
    "manage_image_cache": ADMIN,
    "deactivate": ADMIN_OR_PROJECT_MEMBER,
    "reactivate": ADMIN_OR_PROJECT_MEMBER,
    "copy_image": ADMIN,
    # glance/policies/cache.py
    "list_cached_nodes": ADMIN,
    "cache_image": ADMIN,
    "cache_list": ADMIN,
    "cache_delete": ADMIN,
    "cache_clean": ADMIN,
    "cache_prune": ADMIN,
    # glance/policies/tasks.py
    "get_task": DEFAULT,
    "get_tasks": DEFAULT,
    "add_task": DEFAULT,
    "modify_task": DEFAULT,
    "tasks_api_access": ADMIN,
    # glance/policies/discovery.py
    "stores_info_detail": ADMIN_OR_SERVICE,
    # glance/policies/metadef.py
    "metadef_default": "",
    "metadef_admin": ADMIN,
    **{
        name: ADMIN_OR_READER_GET_NAMESPACE
        for name in (
            "get_metadef_namespace",
            "get_metadef_object",
            "get_metadef_objects",
            "list_metadef_resource_types",
            "get_metadef_resource_type",
            "get_metadef_property",
            "get_metadef_properties",
            "get_metadef_tag",
            "get_metadef_tags",
        )
    },
    "get_metadef_namespaces": ADMIN_OR_PROJECT_READER,
    **{
        name: METADEF_ADMIN
        for name in (
            "add_metadef_namespace",
            "modify_metadef_namespace",
            "delete_metadef_namespace",
            "add_metadef_object",
            "modify_metadef_object",
            "delete_metadef_object",
            "add_metadef_resource_type_association",
            "remove_metadef_resource_type_association",
            "add_metadef_property",
            "modify_metadef_property",
            "remove_metadef_property",
            "add_metadef_tag",
            "add_metadef_tags",
            "modify_metadef_tag",
            "delete_metadef_tag",
            "delete_metadef_tags",
        )
    },
}

#: Where these defaults knowingly differ from Glance 33's: rule name -> why. The parity
#: test fails on any difference in a rule's name, check string or scope that is not
#: listed here, and on a listed one that is gone; README.md ("Authorisation, sharing and
#: quotas") shows the same list. Empty: every rule is Glance's.
DIFFERENCES_FROM_GLANCE: dict[str, str] = {}

# Glance also registers, for most rules, its pre-Wallaby check string as a deprecated
# rule, which oslo.policy ORs in when an operator sets ``enforce_new_defaults = False``;
# Glance then relies on legacy owner checks in its code that Tessera does not have, so
# registering those (mostly ``rule:default``, i.e. anyone) here would let any caller
# change any image it can see. Tessera registers none (the parity test checks it).


def defaults() -> list[oslo_policy.RuleDefault]:
    """The rules to register: Glance's names, check strings and scopes."""
    return [
        oslo_policy.RuleDefault(name, check, scope_types=None if name in UNSCOPED else ["project"])
        for name, check in RULES.items()
    ]


class Policy:
    """The rules of one deployment: Glance's defaults, overridden by the policy file.

    oslo.policy evaluates a rule in about a millisecond (it stats the policy file and
    inspects every check's signature on every call), which would be a large share of a
    metadata request. The decisions are pure functions of the action, the caller and the
    target, so they are remembered, and forgotten every few seconds: oslo.policy reloads
    a changed policy file at its next evaluation, so a change applies within that time."""

    REMEMBER_SECONDS = 5.0
    MAX_DECISIONS = 10_000

    def __init__(self, conf: cfg.ConfigOpts | None = None):
        if conf is None:
            conf = cfg.ConfigOpts()
            conf([], project="tessera", default_config_files=[], default_config_dirs=[])
        self.enforcer = oslo_policy.Enforcer(conf, use_conf=True)
        self.enforcer.register_defaults(defaults())
        self._decisions: dict[tuple, bool] = {}
        self._since = time.monotonic()

    def allows(self, action: str, target: dict, ctx, check=None) -> bool:
        """Whether ``ctx`` may do ``action`` to ``target``; ``check`` (an oslo.policy
        check) is evaluated instead of the rule named ``action`` when given."""
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
            decision = self._decisions[key] = bool(
                self.enforcer.enforce(action if check is None else check, target, creds)
            )
        return decision

    def allows_rule(self, rule: str, ctx) -> bool:
        """Whether the rule named ``rule`` (one the policy file defines, or one of
        Glance's) holds for ``ctx`` with an empty target, as ``rule:<rule>``: how Glance
        evaluates a property protection in the policies format. An undefined rule is
        judged by oslo.policy's default rule (``[oslo_policy] policy_default_rule``)."""
        return self.allows(f"rule:{rule}", {}, ctx, oslo_policy.RuleCheck("rule", rule))

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
