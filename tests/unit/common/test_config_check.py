"""Start-up warnings for what a config file sets that Tessera does not read, and the old
spellings Glance accepted (services/common/config_check.py)."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from services.common.config import build_config, database_url, load_config, store_names
from services.common.config_check import config_warnings, registered_options


def load(tmp_path, text: str):
    path = tmp_path / "glance-api.conf"
    path.write_text(text)
    return load_config(["--config-file", str(path)])


def test_registered_options_adapter_sees_options_and_deprecated_names():
    # tripwire for the adapter over oslo.config's private _opts/_groups
    known = registered_options(build_config())
    assert "bind_port" in known["DEFAULT"]
    assert "connection" in known["database"]
    assert "sql_connection" in known["DEFAULT"]  # [database] connection's old name
    assert "log_dir" in known["DEFAULT"]  # oslo.log's
    assert "policy_file" in known["oslo_policy"]


def test_an_unknown_option_and_section_are_named(tmp_path):
    conf = load(
        tmp_path, "[DEFAULT]\nbind_prot = 9293\n[glance_store]\nstores = file\n[nonsense]\na = 1\n"
    )
    warnings = config_warnings(conf)
    assert "[DEFAULT] bind_prot is not an option Tessera reads; ignored" in warnings
    assert "[nonsense] is not a section Tessera reads; ignored" in warnings
    assert len(warnings) == 2, warnings


def test_glance_options_tessera_does_not_support_are_named_with_why(tmp_path):
    conf = load(
        tmp_path,
        "[DEFAULT]\nsql_idle_timeout = 30\nverbose = True\nwatch_log_file = True\n"
        "[glance_store]\nrbd_store_pool = images\n[profiler]\nenabled = True\n",
    )
    text = "\n".join(config_warnings(conf))
    assert "[DEFAULT] sql_idle_timeout is a Glance option Tessera does not support" in text
    assert "use [database] connection" in text
    assert "[DEFAULT] verbose is a Glance option" in text
    assert "[DEFAULT] watch_log_file is a Glance option" in text
    assert "[glance_store] rbd_store_pool is a Glance option" in text
    assert "[profiler] is a Glance section Tessera ignores: OSProfiler" in text


def test_an_option_registered_at_run_time_is_not_reported(tmp_path):
    conf = load(tmp_path, "[DEFAULT]\nsql_idle_timeout = 30\n")
    conf.register_opt(cfg.StrOpt("sql_idle_timeout"))  # as another part may register it
    assert config_warnings(conf) == []


def test_keystone_authtoken_without_keystone_flavor_is_reported_with_a_hint(tmp_path):
    conf = load(
        tmp_path, "[keystone_authtoken]\nauth_url = http://controller:5000\nflavor = keystone\n"
    )
    (warning,) = config_warnings(conf)
    assert "[keystone_authtoken] is ignored" in warning
    assert "flavor = keystone belongs in [paste_deploy]" in warning


def test_keystone_authtoken_knows_the_middleware_and_plugin_options(tmp_path):
    conf = load(
        tmp_path,
        "[paste_deploy]\nflavor = keystone\n[keystone_authtoken]\n"
        "auth_uri = http://controller:5000\nauth_url = http://controller:35357\n"
        "memcached_servers = controller:11211\nauth_plugin = password\n"
        "project_domain_name = default\nuser_domain_id = default\nproject_name = service\n"
        "username = glance\npassword = x\nidentity_uri = http://controller:35357\n"
        "usernmae = typo\n",
    )
    warnings = config_warnings(conf)
    assert any(
        w.startswith("[keystone_authtoken] identity_uri is a Glance option") for w in warnings
    )
    assert any(w.startswith("[keystone_authtoken] auth_uri is a Glance option") for w in warnings)
    assert "[keystone_authtoken] usernmae is not an option Tessera reads; ignored" in warnings
    assert len(warnings) == 3, warnings


def test_oslo_limit_knows_its_auth_plugin_options(tmp_path):
    conf = load(
        tmp_path,
        "[DEFAULT]\nuse_keystone_limits = true\n[oslo_limit]\n"
        "auth_url = http://controller:5000\nauth_type = password\nuser_domain_id = default\n"
        "username = glance\npassword = x\nsystem_scope = all\nendpoint_id = e1\n"
        "usernmae = typo\n",
    )
    assert config_warnings(conf) == [
        "[oslo_limit] usernmae is not an option Tessera reads; ignored"
    ]


def test_a_misplaced_option_gets_a_hint(tmp_path):
    conf = load(tmp_path, "[DEFAULT]\nfilesystem_store_datadir = /srv/images\n")
    (warning,) = config_warnings(conf)
    assert "(Tessera reads filesystem_store_datadir in [glance_store]" in warning


def test_old_spellings_of_seed_003(tmp_path):
    conf = load(
        tmp_path,
        "[DEFAULT]\nsql_connection = mysql://root:pw@localhost/glance\ndefault_store = swift\n"
        "[glance_store]\nstores = glance.store.filesystem.Store, glance.store.swift.Store\n",
    )
    assert database_url(conf) == "mysql+pymysql://root:pw@localhost/glance"
    assert conf.glance_store.default_store == "swift"
    assert store_names(conf) == ["file", "swift"]
    assert config_warnings(conf) == []


@pytest.mark.parametrize(
    ("stores", "names"),
    [("file,http", ["file", "http"]), ("file, https, http", ["file", "http"])],
)
def test_store_names(tmp_path, stores, names):
    assert store_names(load(tmp_path, f"[glance_store]\nstores = {stores}\n")) == names


def test_an_unsupported_store_is_reported(tmp_path):
    conf = load(tmp_path, "[glance_store]\nstores = file,glance.store.rbd.Store\n")
    (warning,) = config_warnings(conf)
    assert warning.startswith("[glance_store] stores: the rbd store is not supported")


def test_files_of_a_config_dir_are_checked(tmp_path):
    (tmp_path / "glance-api.conf").write_text("[DEFAULT]\nbind_prot = 9293\n")
    conf = load_config(["--config-dir", str(tmp_path)])
    assert config_warnings(conf) == ["[DEFAULT] bind_prot is not an option Tessera reads; ignored"]
