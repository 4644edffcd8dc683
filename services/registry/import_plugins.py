"""Glance's import plugins as the registry runs them (``[image_import_opts]
image_import_plugins``): ``inject_image_metadata`` sets ``[inject_metadata_properties]
inject`` on the image being imported, unless the caller has one of ``ignore_user_roles``.
(``image_conversion`` runs on the store replica: services/store/conversion.py.)"""

from __future__ import annotations

from services.common.context import RequestContext
from services.registry.imports import _set_property


def enabled(conf, name: str) -> bool:
    return name in conf.image_import_opts.image_import_plugins


def inject_image_metadata(conf, ctx: RequestContext, image) -> None:
    """As Glance's plugin: the properties go in for users without the ignored roles."""
    if not enabled(conf, "inject_image_metadata"):
        return
    options = conf.inject_metadata_properties
    if set(ctx.roles) & set(options.ignore_user_roles):
        return
    for name, value in options.inject.items():
        _set_property(image, name, value)
