"""Lab models of the Access Manager scripts, and the InstallAms step driven against them."""

import pytest

from app.guides.cluster.install_ams import STEP
from app.lab.context import ScriptFailure
from app.lab.handlers import ams
from tests.lab.cluster_world import all_inputs, configure_by_hand, copy_installer, ctx, drive, world

INSTALLER = "C:\\Windows\\Temp\\LithnetAccessManagerService-2.1.1069.0-x64.exe"
PROPERTIES = {
    "USER_NAME": "CORP\\svc-ams$",
    "SQLSERVER": "sql1.corp.example.test",
    "INSTALL_SQL_EXPRESS": "0",
}
START = {
    "InstallerPath": INSTALLER,
    "LogPath": "C:\\Windows\\Temp\\ams.log",
    "Properties": PROPERTIES,
}
HOST_CONFIG = {
    "WebAppEnabled": True,
    "ApiEnabled": True,
    "HostName": "amsweb.corp.example.test",
    "ConnectionString": "Server=sql1;Database=AccessManager;Integrated Security=true",
}


def test_installer_must_be_copied_first():
    with pytest.raises(ScriptFailure, match="must be copied"):
        ams.ams_install_start(ctx(world(), **START))


def test_install_start_status_then_detect():
    store = world()
    copy_installer(store, "AMS1", INSTALLER)
    started = ams.ams_install_start(ctx(store, **START))
    again = ams.ams_install_start(ctx(store, **START))
    assert again == {**started, "already_running": True}
    status = {"ProcessId": started["process_id"], "LogPath": START["LogPath"]}
    assert ams.ams_install_status(ctx(store, **status))["running"] is True
    done = ams.ams_install_status(ctx(store, **status))
    assert done["running"] is False and done["exit_code"] == 0 and done["succeeded"]
    seen = ams.ams_detect(
        ctx(
            store,
            Thumbprint=store.state["suggested_inputs"]["certificate_thumbprint"],
            HostName=["AMSWEB"],
        )
    )
    assert seen["installed"] and seen["version"] == "2.1.1069.0"
    assert seen["service"] == {
        "status": "Running",
        "start_type": "Automatic",
        "account": "CORP\\svc-ams$",
        "display_name": "Lithnet Access Manager Service",
    }
    # The installer writes SQLServer; the connection string comes from Set-AmsHostConfig later.
    assert seen["sql_server"] == PROPERTIES["SQLSERVER"] and seen["connection_string"] is None
    assert seen["configured"] == 0 and seen["binding"]["present"] is False
    assert seen["certificate"]["present"] and seen["certificate"]["covers"] == {"AMSWEB": True}
    assert seen["license"]["present"] is None  # not readable: the operator is asked to confirm


def test_version_mismatch_fault_gives_that_node_another_version():
    store = world()
    store.state["faults"]["applied"].append("version_mismatch:AMS2")
    copy_installer(store, "AMS2", INSTALLER)
    started = ams.ams_install_start(ctx(store, node="AMS2", **START))
    for _ in range(2):
        ams.ams_install_status(
            ctx(store, node="AMS2", ProcessId=started["process_id"], LogPath=START["LogPath"])
        )
    assert ams.ams_detect(ctx(store, node="AMS2"))["version"] == "3.0.1638.0"


def test_set_host_config_and_the_configuration_tool():
    store = world(scenario="existing_cluster")
    with pytest.raises(ScriptFailure, match="LithnetAccessManager"):
        ams.ams_set_host_config(ctx(world(), script="ams_set_host_config", **HOST_CONFIG))
    result = ams.ams_set_host_config(ctx(store, script="ams_set_host_config", **HOST_CONFIG))
    assert result["web_app_enabled"] and result["api_enabled"] and result["restarted"]
    configure_by_hand(store)
    seen = ams.ams_detect(
        ctx(store, Thumbprint=store.state["suggested_inputs"]["certificate_thumbprint"])
    )
    assert seen["host_config"]["api_enabled"] is True and seen["configured"] == 1
    assert seen["connection_string"] == HOST_CONFIG["ConnectionString"]
    assert (
        seen["binding"]["thumbprint"] == store.state["suggested_inputs"]["certificate_thumbprint"]
    )


def test_step_unattended_install_then_manual_configuration_then_done():
    store = world()
    inputs = all_inputs(store)
    finish, ran = drive(STEP, store, inputs)
    assert ran[:4] == ["detect", "install_start", "poll_1", "poll_2"]
    assert finish.status == "needs_attention"  # the configuration tool work is still to do
    keys = {c.key for c in finish.checks if c.status == "fail"}
    assert {"configured:AMS1", "binding:AMS2", "license:AMS1"} <= keys
    configure_by_hand(store)
    finish, ran = drive(STEP, store, inputs)
    # From 2.1 the license lives in the database, which no node can read: the operator confirms.
    assert [c.key for c in finish.checks if c.status == "fail"] == ["license:AMS1"]
    inputs["install_ams"]["license_confirmed"] = True
    finish, ran = drive(STEP, store, inputs)
    assert "install_start" not in ran and finish.status == "done", finish.checks
    assert next(c for c in finish.checks if c.key == "license:AMS1").status == "info"


def test_step_reports_the_version_mismatch_node():
    store = world("version_mismatch:AMS2")
    finish, _ = drive(STEP, store, all_inputs(store, install_ams={"install_mode": "manual"}))
    assert "version:AMS2" in {c.key for c in finish.checks if c.status == "fail"}
    assert "install:AMS1" in {c.key for c in finish.checks}
