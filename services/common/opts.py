"""Tessera's option lists for ``oslo-config-generator`` (entry point ``oslo.config.opts``:
``tessera``) and its policy rules for ``oslopolicy-sample-generator`` (entry point
``oslo.policy.policies``: ``tessera``), as Glance publishes its own.

The options are those ``build_config`` registers, so the sample can never miss one:

    make sample-config     # deploy/tessera.conf.sample, from deploy/tessera-config-generator.conf
    oslopolicy-sample-generator --config-file deploy/tessera-policy-generator.conf
"""

from __future__ import annotations


def list_opts() -> list[tuple[str, list]]:
    """[(group, [Opt, ...])] of every option Tessera registers, [DEFAULT] first."""
    from oslo_config import cfg

    from services.common.config import build_config

    conf = build_config()
    own = set(cfg.ConfigOpts()._opts)  # oslo.config's own (config_source, ...)
    groups = [("DEFAULT", [info["opt"] for name, info in conf._opts.items() if name not in own])]
    for name in sorted(conf._groups):  # adapter: see config_check.registered_options
        groups.append((name, [info["opt"] for info in conf._groups[name]._opts.values()]))
    return groups


def list_rules() -> list:
    """Glance's policy rules as Tessera registers them."""
    from services.common.policy import defaults

    return defaults()
