"""Property protections: Glance's ``[DEFAULT] property_protection_file`` and
``property_protection_rule_format = roles | policies`` (glance/common/property_utils.py,
glance/api/property_protections.py in Glance 33), the rules engine.

The file is an INI file (read with configparser, as Glance reads it) whose sections are
regular expressions over property names and whose keys ``create``, ``read``, ``update``
and ``delete`` each list who may do that to a matching property:

- ``roles``: a comma-separated list of roles (compared in lower case with the caller's
  roles, which are lower case already);
- ``policies``: one policy rule name, evaluated with the deployment's oslo.policy enforcer
  (services/common/policy.py: Glance's rules overridden by ``[oslo_policy] policy_file``,
  where the operator defines it) and an empty target, as ``rule:<name>``; a name the
  policy file does not define is judged by oslo.policy's default rule (``[oslo_policy]
  policy_default_rule``: Glance's ``default``, which allows everyone), as in Glance.

``@`` allows everyone, ``!`` nobody, an empty value nobody (with a warning at load). The
first section, in file order, whose expression is *found* in the name (``re.search``, not a
whole-name match, as Glance) decides; a property that no section matches is denied every
operation, as in Glance. An ``[os_glance.*]`` section allowing everything is put first, as
Glance 33 does (its own sections starting with ``os_glance`` are dropped): the service's
bookkeeping properties stay usable. Only extra properties are protected, never an image's
own attributes. With no file, nothing is protected.

What a caller meets (as Glance): properties it may not read are left out of every image
it is shown; creating or setting (``add``/``replace`` of one it can read needs ``update``,
an ``add`` of one it cannot read needs ``create``) or removing one it may not is a 403
``Attribute '<name>' is reserved.``; ``replace`` or ``remove`` of one it cannot read is the
409 ``Property <name> does not exist.`` The registry applies these rules
(services/registry/protections.py says why there).

A file that cannot be used (missing, unreadable, not INI, a bad expression, a missing
key, ``@`` with ``!``, several policies for one operation) raises ``InvalidProtections``
with a one-line reason; every service checks it at start and refuses to run
(``check_at_start``). Glance answers every request with a 400 instead; Tessera says so
once, at start. A changed file is read again within ``RELOAD_SECONDS`` (Glance reads it
once); a change that breaks it is logged and the previous rules stay."""

from __future__ import annotations

import configparser
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

from oslo_config import cfg

from services.common.errors import Forbidden

log = logging.getLogger(__name__)

OPERATIONS = ("create", "read", "update", "delete")
FORMATS = ("roles", "policies")
ALLOW_ALL, DENY_ALL = "@", "!"
#: Glance 33 puts this section first in every file (bug #2085321).
RESERVED_SECTION = "os_glance.*"
RELOAD_SECONDS = 5.0


class InvalidProtections(Exception):
    """The property protection file cannot be used; the message is one line."""


@dataclass(frozen=True)
class Section:
    """One section of the file: its expression and who may do each operation (roles in
    lower case, or one policy rule name; ``()`` is nobody)."""

    expression: str
    pattern: re.Pattern
    permissions: dict


class PropertyRules:
    """The rules of one file, or none (``PropertyRules.disabled()``: all allowed)."""

    def __init__(self, sections: list[Section], rule_format: str = "roles", source: str = ""):
        self.sections = sections
        self.rule_format = rule_format
        self.source = source
        self.enabled = bool(sections)
        self._section_of = lru_cache(maxsize=4096)(self._first_match)

    @classmethod
    def disabled(cls) -> PropertyRules:
        return cls([])

    @classmethod
    def parse(cls, text: str, rule_format: str = "roles", source: str = "<string>"):
        """The rules of a file's text; ``InvalidProtections`` if they cannot be used."""
        if rule_format not in FORMATS:
            raise InvalidProtections(
                f"invalid property_protection_rule_format {rule_format!r}: the permitted "
                f"values are 'roles' and 'policies'"
            )
        parser = configparser.ConfigParser()
        try:
            parser.read_string(text, source=source)
        except configparser.Error as exc:
            raise InvalidProtections(
                f"property protection file {source} is not a valid INI file: {_one_line(exc)}"
            ) from None
        names = [s for s in parser.sections() if not s.startswith("os_glance")]
        sections = [Section(RESERVED_SECTION, re.compile(RESERVED_SECTION), _everyone())]
        for name in names:
            sections.append(_section(parser, name, rule_format, source))
        return cls(sections, rule_format, source)

    @classmethod
    def load(cls, path: str, rule_format: str = "roles") -> PropertyRules:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidProtections(
                f"cannot read the property protection file {path}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
        return cls.parse(text, rule_format, path)

    def _first_match(self, name: str) -> Section | None:
        for section in self.sections:
            if section.pattern.search(name):
                return section
        return None

    def allows(self, name: str, operation: str, ctx) -> bool:
        """Whether ``ctx`` may do ``operation`` to the extra property ``name``."""
        if not self.enabled:
            return True
        section = self._section_of(str(name))
        if section is None or operation not in OPERATIONS:
            return False
        permitted = section.permissions[operation]
        if DENY_ALL in permitted:
            return False
        if ALLOW_ALL in permitted:
            return True
        if self.rule_format == "policies":
            if not permitted:
                return False
            from services.common.policy import default_policy

            return (ctx.policy or default_policy()).allows_rule(permitted[0], ctx)
        return any(role in permitted for role in ctx.roles)

    def check(self, name: str, operation: str, ctx) -> None:
        """403 as Glance's ReservedProperty unless ``ctx`` may do ``operation``."""
        if not self.allows(name, operation, ctx):
            raise Forbidden(f"Attribute '{name}' is reserved.")

    def readable(self, properties: dict, ctx) -> dict:
        """The properties ``ctx`` may read."""
        if not self.enabled:
            return properties
        return {k: v for k, v in properties.items() if self.allows(k, "read", ctx)}

    def shown(self, record: dict, ctx) -> dict:
        """An image record as ``ctx`` may see it (unreadable properties left out)."""
        if not self.enabled:
            return record
        return {**record, "properties": self.readable(record["properties"], ctx)}


#: No file: everything allowed (the default of the registry's domain functions).
NO_PROTECTIONS = PropertyRules.disabled()


def _everyone() -> dict:
    return {op: (ALLOW_ALL,) for op in OPERATIONS}


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _section(parser, name: str, rule_format: str, source: str) -> Section:
    try:
        pattern = re.compile(name)
    except re.error as exc:
        raise InvalidProtections(
            f"property protection file {source}: section [{name}] is not a valid regular "
            f"expression: {exc}"
        ) from None
    permissions = {}
    for op in OPERATIONS:
        try:
            value = parser.get(name, op)
        except configparser.NoOptionError:
            raise InvalidProtections(
                f"property protection file {source}: section [{name}] has no '{op}' "
                f"(every section needs {', '.join(OPERATIONS)})"
            ) from None
        except configparser.Error as exc:
            raise InvalidProtections(
                f"property protection file {source}: section [{name}]: {_one_line(exc)}"
            ) from None
        value = value.strip()
        if not value:
            log.warning(
                "property protection file %s: [%s] %s is empty: nobody may %s a matching property",
                source,
                name,
                op,
                op,
            )
            permissions[op] = ()
        elif rule_format == "policies":
            if "," in value:
                raise InvalidProtections(
                    f"property protection file {source}: [{name}] {op} = {value}: one policy "
                    f"rule per operation in the policies format (combine rules in the "
                    f"policy file)"
                )
            permissions[op] = (value,)
        else:
            roles = tuple(role.strip().lower() for role in value.split(","))
            if ALLOW_ALL in roles and DENY_ALL in roles:
                raise InvalidProtections(
                    f"property protection file {source}: [{name}] {op} = {value}: '@' and "
                    f"'!' are mutually exclusive"
                )
            permissions[op] = roles
    return Section(name, pattern, permissions)


# --- options and start-up


def from_config(conf: cfg.ConfigOpts) -> PropertyRules:
    """The deployment's rules (disabled when no file is set); ``InvalidProtections`` if the
    file or the format cannot be used. A relative path is looked for as oslo.config's
    ``find_file`` (beside the config file first), as Glance."""
    path = conf.property_protection_file
    try:
        rule_format = conf.property_protection_rule_format
    except (cfg.ConfigFileValueError, ValueError) as exc:
        raise InvalidProtections(f"invalid property_protection_rule_format: {exc}") from None
    if not path:
        return PropertyRules.disabled()
    found = path if os.path.isabs(path) else (conf.find_file(path) or path)
    return PropertyRules.load(found, rule_format)


def check_at_start(conf: cfg.ConfigOpts, prog: str) -> None:
    """Exit with a one-line message (no traceback) if the rules cannot be used."""
    try:
        from_config(conf)
    except InvalidProtections as exc:
        sys.exit(f"{prog}: {exc}")


class ProtectionsFile:
    """The rules of a deployment, read again when the file changes (checked at most every
    RELOAD_SECONDS); a broken change is logged and the previous rules stay."""

    def __init__(self, conf: cfg.ConfigOpts):
        self.conf = conf
        self.rules = from_config(conf)
        self._stamp = self._stat()
        self._checked = time.monotonic()

    def _stat(self):
        if not self.rules.enabled:
            return None
        try:
            st = os.stat(self.rules.source)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> PropertyRules:
        if not self.rules.enabled:
            return self.rules
        now = time.monotonic()
        if now - self._checked < RELOAD_SECONDS:
            return self.rules
        self._checked = now
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return self.rules
        self._stamp = stamp
        try:
            self.rules = PropertyRules.load(self.rules.source, self.rules.rule_format)
            log.info("property protection file %s read again", self.rules.source)
        except InvalidProtections as exc:
            log.error("%s; keeping the previous property protections", exc)
        return self.rules
