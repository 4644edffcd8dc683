"""Where property protections (services/common/property_protections.py) are enforced:
here, in the registry.

Every way to read or change an image's extra properties ends in one of the registry's
RPCs — ``create_image``, ``get_image``, ``list_images`` and ``update_image`` — whether the
request came through the v2 API, the legacy v1 API (which reuses the same calls), or
another service. The registry also has what a decision needs: the caller's context
(roles, project) and the deployment's oslo.policy enforcer (for the ``policies``
format), and it alone knows which properties an image already has (an ``add`` of an
existing property is an ``update``, of a new one a ``create``). Enforcing in the gateway
would have to be repeated in every API version and would see the stored properties only
through a second read. So the checks sit in images.py beside the other checks of a
create and a change, and the service filters every record it returns (``shown``): one
place, which every path crosses.

The rules come from ``PropertyProtections``, a nameko dependency: the file is read at
start (a file that cannot be used stops the service, as services/launch.py checks
before) and again when it changes."""

from __future__ import annotations

from nameko.extensions import DependencyProvider

from services.common.property_protections import PropertyRules, ProtectionsFile


class PropertyProtections(DependencyProvider):
    """Injects the deployment's PropertyRules (disabled without a file)."""

    def setup(self):
        self.file = ProtectionsFile(self.container.config["TESSERA_CONF"])

    def get_dependency(self, worker_ctx) -> PropertyRules:
        return self.file.current()


def check_new_properties(rules: PropertyRules, ctx, properties: dict) -> None:
    """A create: every extra property needs ``create`` (Glance's
    ProtectedImageFactoryProxy; the first refused one, in body order, is reported)."""
    for name in properties:
        rules.check(name, "create", ctx)


def sees(rules: PropertyRules, ctx, props: dict, name: str) -> bool:
    """Whether the caller sees the extra property ``name`` among the image's ``props``:
    one it may not read does not exist for it (a ``replace`` or ``remove`` of it is
    Glance's 409, an ``add`` of it needs ``create``)."""
    return name in props and rules.allows(name, "read", ctx)
