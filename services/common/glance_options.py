"""Glance options and sections Tessera knows it does not support: those of Glance 33's
``glance-api.conf`` (glance, glance_store, oslo.db, oslo.messaging, oslo.log ...) and the
older ones the install guides still write, each with why. A config file that sets one
gets a start-up warning naming it (services/common/config_check.py), unless Tessera
registers the option after all (the check skips any option registered at run time).

Made from ``oslo-config-generator --format json`` over Glance 33's namespaces, minus the
options Tessera registers; the older names from the Juno to Ocata guides."""

from __future__ import annotations

#: Whole sections Tessera never reads.
UNSUPPORTED_SECTIONS = {
    "profiler": "OSProfiler tracing is not implemented",
    "task": "tasks (image import and conversion) are not implemented",
    "taskflow_executor": "tasks (image import and conversion) are not implemented",
    "import_filtering_opts": "interoperable image import is not implemented",
    "wsgi": "tasks (image import and conversion) are not implemented",
    "oslo_messaging_kafka": "notifications and RPC use RabbitMQ only",
    "oslo_messaging_amqp": "notifications and RPC use RabbitMQ only",
    "oslo_concurrency": "Tessera takes no external (file) locks",
    "os_glance_staging_store": "interoperable image import is not implemented",
    "os_glance_tasks_store": "tasks (image import and conversion) are not implemented",
    "key_manager": "image signature verification is not implemented",
    "barbican": "image signature verification is not implemented",
    "store_type_location_strategy": "location_strategy is not implemented",
    "matchmaker_redis": "RPC uses RabbitMQ only",
}


def _names(text: str) -> list[str]:
    return text.split()


#: (section, reason, option names)
_UNSUPPORTED = [
    (
        "DEFAULT",
        "interoperable image import and tasks are not implemented",
        _names(
            "enabled_import_methods node_staging_uri worker_self_reference_url "
            "allow_additional_image_properties"
        ),
    ),
    (
        "DEFAULT",
        "the v1 API and glance-registry are gone (Tessera's registry speaks RPC only)",
        _names(
            "enable_v1_registry enable_v2_registry registry_host registry_port "
            "registry_client_protocol registry_client_key_file registry_client_cert_file "
            "registry_client_ca_file registry_client_insecure registry_client_timeout "
            "use_user_token send_identity_headers data_api admin_user admin_password "
            "admin_tenant_name auth_url auth_strategy auth_region enable_v2_api enable_v1_api"
        ),
    ),
    (
        "DEFAULT",
        "use [database] connection (and the SQLAlchemy URL's own parameters)",
        _names("sql_idle_timeout sql_max_retries sql_retry_interval"),
    ),
    (
        "DEFAULT",
        "old oslo.messaging spellings: use transport_url and [oslo_messaging_notifications]",
        _names(
            "notification_driver notification_topics notifier_strategy rabbit_host "
            "rabbit_port rabbit_hosts rabbit_userid rabbit_password rabbit_virtual_host "
            "rabbit_use_ssl rpc_backend control_exchange executor_thread_pool_size "
            "rpc_response_timeout rpc_ping_enabled"
        ),
    ),
    (
        "DEFAULT",
        "the gateway runs under gunicorn with its own limits (bind_host, bind_port, "
        "workers, worker_connections); TLS belongs to a proxy in front of it",
        _names(
            "backlog tcp_keepidle cert_file key_file ca_file "
            "http_keepalive max_header_line max_request_id_length secure_proxy_ssl_header"
        ),
    ),
    (
        "DEFAULT",
        "not implemented by Tessera",
        _names(
            "digest_algorithm http_retries location_strategy lock_path "
            "metadata_encryption_key owner_is_tenant admin_role allow_anonymous_access "
            "image_cache_sqlite_db use_keystone_quotas pydev_worker_debug_host "
            "pydev_worker_debug_port fatal_deprecations daemon restore wakeup_time "
            "cleanup_scrubber cleanup_scrubber_time"
        ),
    ),
    (
        "DEFAULT",
        "removed from oslo.log; log files are reopened after rotation anyway (WatchedFileHandler)",
        _names("watch_log_file"),
    ),
    (
        "DEFAULT",
        "removed from oslo.log long ago: INFO is the default level, debug = True for more",
        _names("verbose"),
    ),
    # Options the other parts of the work may register (then they are not reported):
    (
        "DEFAULT",
        "not implemented by this Tessera",
        _names(
            "property_protection_file property_protection_rule_format delayed_delete "
            "scrub_time scrub_pool_size scrubber_datadir image_cache_driver "
            "image_member_quota image_location_quota image_size_cap user_storage_quota "
            "use_keystone_limits public_endpoint"
        ),
    ),
    (
        "database",
        "oslo.db's engine options are not implemented (Tessera's database options: "
        "connection, max_pool_size, max_overflow, connection_recycle_time, pool_timeout, "
        "connection_parameters, socket_timeout)",
        _names(
            "asyncio_connection asyncio_slave_connection backend connection_debug "
            "connection_trace db_inc_retry_interval db_max_retries "
            "db_max_retry_interval db_retry_interval max_retries mysql_sql_mode "
            "mysql_wsrep_sync_wait retry_interval slave_connection "
            "sqlite_synchronous synchronous_reader use_db_reconnect idle_timeout "
            "min_pool_size"
        ),
    ),
    (
        "glance_store",
        "the rbd, s3, cinder and vmware stores are not implemented",
        _names(
            "rados_connect_timeout rbd_store_ceph_conf rbd_store_chunk_size rbd_store_pool "
            "rbd_store_user rbd_thin_provisioning s3_store_access_key s3_store_bucket "
            "s3_store_bucket_url_format s3_store_cacert s3_store_create_bucket_on_put "
            "s3_store_enable_data_integrity_protection s3_store_host "
            "s3_store_large_object_chunk_size s3_store_large_object_size "
            "s3_store_region_name s3_store_request_checksum_calculation "
            "s3_store_response_checksum_validation s3_store_secret_key s3_store_thread_pools "
            "vmware_api_retry_count vmware_ca_file vmware_datastores vmware_insecure "
            "vmware_server_host vmware_server_password vmware_server_username "
            "vmware_store_image_dir vmware_task_poll_interval cinder_catalog_info "
            "cinder_endpoint_template cinder_os_region_name cinder_ca_certificates_file "
            "cinder_http_retries cinder_state_transition_timeout cinder_api_insecure "
            "cinder_store_auth_address cinder_store_user_name cinder_store_password "
            "cinder_store_project_name cinder_volume_type sheepdog_store_address "
            "sheepdog_store_port sheepdog_store_chunk_size"
        ),
    ),
    (
        "glance_store",
        "the file store keeps one directory (filesystem_store_datadir) with the "
        "service's default permissions",
        _names(
            "filesystem_store_chunk_size filesystem_store_datadirs filesystem_store_file_perm "
            "filesystem_store_metadata_file filesystem_store_thread_pool_size "
            "filesystem_store_threadpool_threshold filesystem_store_timeout "
            "filesystem_thin_provisioning"
        ),
    ),
    (
        "glance_store",
        "the http store's proxy and TLS options are not implemented",
        _names("http_proxy_information https_ca_certificates_file https_insecure"),
    ),
    (
        "glance_store",
        "this Swift option is not implemented (single-tenant Swift with one container "
        "or a container per image prefix only)",
        _names(
            "swift_buffer_on_upload swift_store_admin_tenants "
            "swift_store_application_credential_id swift_store_application_credential_secret "
            "swift_store_endpoint swift_store_expire_soon_interval swift_store_multi_tenant "
            "swift_store_multiple_containers_seed swift_store_project_id "
            "swift_store_project_name swift_store_ssl_compression swift_store_use_trusts "
            "swift_upload_buffer_dir"
        ),
    ),
    (
        "image_format",
        "VMDK subformat checks are not implemented",
        _names("vmdk_allowed_types"),
    ),
    (
        "oslo_messaging_rabbit",
        "Tessera's broker clients keep their own connections (no oslo.messaging pool)",
        _names(
            "conn_pool_min_size conn_pool_ttl hostname kombu_reconnect_splay processname "
            "rpc_conn_pool_size ssl_enforce_hostname_verification"
        ),
    ),
    (
        "keystone_authtoken",
        "renamed www_authenticate_uri in keystonemiddleware (only the URL announced to "
        "clients in WWW-Authenticate; tokens are validated at auth_url)",
        _names("auth_uri"),
    ),
    (
        "keystone_authtoken",
        "removed from keystonemiddleware: use auth_type = password with auth_url, "
        "username, password, project_name and the domain options",
        _names(
            "identity_uri auth_host auth_port auth_protocol auth_admin_prefix admin_user "
            "admin_password admin_tenant_name admin_token signing_dir hash_algorithms"
        ),
    ),
]

#: {section: {option: why Tessera does not support it}}
UNSUPPORTED_OPTIONS: dict[str, dict[str, str]] = {}
for _section, _reason, _options in _UNSUPPORTED:
    for _option in _options:
        UNSUPPORTED_OPTIONS.setdefault(_section, {})[_option] = _reason
