"""Configuration fidelity: one start-up warning for each section or option the config
file(s) set that Tessera does not read, so that nothing an operator wrote is ignored
without a word.

The files are parsed again (oslo.config's own parser) and each option compared with
the options registered on ``conf`` (their deprecated names too: ``[DEFAULT]
sql_connection`` is ``[database] connection``), with keystonemiddleware's and the
keystoneauth plugin's options in ``[keystone_authtoken]``, and with the Glance options
Tessera knows it does not support (services/common/glance_options.py), which are named
with the reason."""

from __future__ import annotations

import glob
import logging
import os

from oslo_config import cfg

from services.common.glance_options import UNSUPPORTED_OPTIONS, UNSUPPORTED_SECTIONS

log = logging.getLogger(__name__)

#: Set by tessera-run for its children: the files were checked (and warned about) once.
CHECKED_ENV = "TESSERA_CONFIG_CHECKED"

#: Options Tessera registers (a Glance config may set them) but does not act on.
REGISTERED_UNUSED = {
    ("paste_deploy", "config_file"): "Tessera builds its WSGI pipeline in code, "
    "from [paste_deploy] flavor (services/api/middleware.py)",
}


def _norm(name: str) -> str:
    return name.replace("-", "_")


def config_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files oslo.config read, in order: ``--config-file`` then ``--config-dir``."""
    files = list(conf.config_file or [])
    directories = conf.config_dir or []
    for directory in [directories] if isinstance(directories, str) else directories:
        files += sorted(glob.glob(os.path.join(directory, "*.conf")))
    return files


def file_options(paths: list[str]) -> dict[str, set[str]]:
    """{section: option names} of the files, as oslo.config parses them."""
    sections: dict[str, set[str]] = {}
    for path in paths:
        parsed: dict = {}
        cfg.ConfigParser(path, parsed).parse()
        for section, options in parsed.items():
            sections.setdefault(section, set()).update(_norm(k) for k in options)
    return sections


def _opt_names(opt, group: str, known: dict[str, set[str]]) -> None:
    known.setdefault(group, set()).update({_norm(opt.name), _norm(opt.dest)})
    for old in opt.deprecated_opts:
        known.setdefault(old.group or group, set()).add(_norm(old.name or opt.name))


def registered_options(conf: cfg.ConfigOpts) -> dict[str, set[str]]:
    """{section: names} of every option registered on ``conf``, deprecated names included.

    Adapter: oslo.config has no public list of registered Opt objects (with their
    deprecated names); ``_opts`` and ``_groups`` have held them since its first release.
    Tripwire: tests/unit/common/test_config_check.py."""
    known: dict[str, set[str]] = {}
    for info in conf._opts.values():
        _opt_names(info["opt"], "DEFAULT", known)
    for name, group in conf._groups.items():
        known.setdefault(name, set())
        for info in group._opts.values():
            _opt_names(info["opt"], name, known)
    return known


def keystone_authtoken_options(auth_type: str | None) -> set[str]:
    """keystonemiddleware's options and those of the keystoneauth plugin ``auth_type``
    (registered by keystonemiddleware only when the gateway builds its pipeline)."""
    from keystonemiddleware import auth_token

    known: dict[str, set[str]] = {}
    for group, opts in auth_token.list_opts():
        for opt in opts:
            _opt_names(opt, group, known)
    return known.get("keystone_authtoken", set()) | auth_plugin_options(auth_type or "password")


def auth_plugin_options(auth_type: str | None) -> set[str]:
    """The options of the keystoneauth plugin ``auth_type`` (registered only when the
    plugin is loaded: by keystonemiddleware, or by oslo.limit for ``[oslo_limit]``)."""
    from keystoneauth1 import loading

    try:
        plugin_opts = loading.get_plugin_options(auth_type) if auth_type else []
    except Exception:  # noqa: BLE001 - an unknown plugin: its loader says so
        plugin_opts = []
    names = set()
    for opt in plugin_opts:
        names.add(_norm(opt.dest))
        names.update(_norm(old.name) for old in opt.deprecated)
    return names


def config_warnings(conf: cfg.ConfigOpts) -> list[str]:
    """One warning for each section or option of the config file(s) Tessera ignores."""
    sections = file_options(config_files(conf))
    known = registered_options(conf)
    keystone = (conf.paste_deploy.flavor or "").strip().lower() == "keystone"
    dynamic = {"keystone_authtoken"}
    reference = getattr(conf.glance_store, "default_swift_reference", None)
    if reference:
        dynamic.add(reference)  # Swift credentials, when kept in this file
    owners: dict[str, list[str]] = {}
    for group, names in known.items():
        for name in names:
            owners.setdefault(name, []).append(group)
    warnings = []
    for section in sorted(sections, key=lambda s: (s != "DEFAULT", s)):
        options = sections[section]
        if section == "keystone_authtoken":
            if not keystone:
                hint = (
                    " (flavor = keystone belongs in [paste_deploy])" if "flavor" in options else ""
                )
                warnings.append(
                    "[keystone_authtoken] is ignored: [paste_deploy] flavor is not keystone, "
                    f"so requests are not authenticated{hint}"
                )
                continue
            group_known = keystone_authtoken_options(_file_auth_type(conf))
        elif section in dynamic:
            continue
        elif section not in known:
            why = UNSUPPORTED_SECTIONS.get(section)
            if why:
                warnings.append(f"[{section}] is a Glance section Tessera ignores: {why}")
            else:
                warnings.append(f"[{section}] is not a section Tessera reads; ignored")
            continue
        elif section == "oslo_limit":  # unified limits: its auth plugin's options too
            group_known = known[section] | auth_plugin_options(conf.oslo_limit.auth_type)
        else:
            group_known = known[section]
        for name in sorted(options):
            if name in group_known:
                why = REGISTERED_UNUSED.get((section, name))
                if why:
                    warnings.append(f"[{section}] {name} is set but not used: {why}")
                continue
            why = UNSUPPORTED_OPTIONS.get(section, {}).get(name)
            if why:
                warnings.append(
                    f"[{section}] {name} is a Glance option Tessera does not support, "
                    f"ignored: {why}"
                )
                continue
            elsewhere = [g for g in owners.get(name, ()) if g != section]
            hint = f" (Tessera reads {name} in [{'], ['.join(elsewhere)}])" if elsewhere else ""
            warnings.append(f"[{section}] {name} is not an option Tessera reads; ignored{hint}")
    warnings += store_warnings(conf)
    warnings += plugin_warnings(conf)
    return warnings


def _file_auth_type(conf: cfg.ConfigOpts) -> str | None:
    """``auth_type`` (or its old name ``auth_plugin``) of [keystone_authtoken] as written."""
    for path in reversed(config_files(conf)):
        parsed: dict = {}
        cfg.ConfigParser(path, parsed).parse()
        values = parsed.get("keystone_authtoken", {})
        for key in ("auth_type", "auth_plugin"):
            if values.get(key):
                return values[key][-1]
    return None


def store_warnings(conf: cfg.ConfigOpts) -> list[str]:
    """Stores of ``[glance_store] stores`` Tessera does not have."""
    from services.common.config import SUPPORTED_STORES, enabled_backends, store_names

    warnings = [
        f"[glance_store] stores: the {name} store is not supported by Tessera; ignored "
        f"(Tessera's stores: {', '.join(SUPPORTED_STORES)})"
        for name in store_names(conf)
        if name not in SUPPORTED_STORES
    ]
    warnings += [
        f"[DEFAULT] enabled_backends: store {store_id} is of type {kind}, which Tessera "
        f"does not support; ignored (Tessera's stores: {', '.join(SUPPORTED_STORES)})"
        for store_id, kind in enabled_backends(conf).items()
        if kind not in SUPPORTED_STORES
    ]
    return warnings


#: The import plugins Tessera runs (of Glance's image_import_plugins).
IMPORT_PLUGINS = ("inject_image_metadata", "image_conversion")


def plugin_warnings(conf: cfg.ConfigOpts) -> list[str]:
    """Import plugins of ``[image_import_opts] image_import_plugins`` Tessera does not have."""
    return [
        f"[image_import_opts] image_import_plugins: {name} is not an import plugin Tessera "
        f"runs; ignored (Tessera's: {', '.join(IMPORT_PLUGINS)})"
        for name in conf.image_import_opts.image_import_plugins
        if name not in IMPORT_PLUGINS
    ]


def log_config_warnings(conf: cfg.ConfigOpts) -> list[str]:
    """Log the warnings, once per machine under tessera-run (its children skip them)."""
    if os.environ.get(CHECKED_ENV):
        return []
    warnings = config_warnings(conf)
    for warning in warnings:
        log.warning("configuration: %s", warning)
    return warnings
