"""`flask lab ...` commands change the simulated state the way an operator would."""

from app.lab.store import LabStore


def _state(app) -> dict:
    return LabStore(app.config["INSTANCE_DIR"] / "lab" / "state.json").read()


def test_reset_install_configure_and_installer(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["lab", "reset", "--nodes", "3"]).exit_code == 0
    assert list(_state(app)["nodes"]) == ["AMS1", "AMS2", "AMS3"]

    result = runner.invoke(args=["lab", "configure-ams"])
    assert "install AMS first" in result.output

    assert runner.invoke(args=["lab", "install-ams", "--node", "ams2"]).exit_code == 0
    nodes = _state(app)["nodes"]
    assert "lithnetams" in nodes["AMS2"]["services"]
    assert "lithnetams" not in nodes["AMS1"]["services"]

    runner.invoke(args=["lab", "install-ams"])
    assert runner.invoke(args=["lab", "configure-ams"]).exit_code == 0
    nodes = _state(app)["nodes"]
    key = "HKLM\\SOFTWARE\\Lithnet\\Access Manager Service"
    # 2.1 keeps the license in the database (entered once, on the first node).
    assert nodes["AMS1"].get("license_in_database") is True
    assert not nodes["AMS2"].get("license_in_database")
    assert not nodes["AMS1"]["registry"].get(key + "\\Parameters", {}).get("LicenseData")
    assert "0.0.0.0:443" in nodes["AMS3"]["http_bindings"]

    result = runner.invoke(args=["lab", "installer", "--version", "2.1.1069.0"])
    assert result.exit_code == 0
    written = list((app.config["INSTANCE_DIR"] / "installers").glob("*2.1.1069.0-x64.exe"))
    assert len(written) == 1 and written[0].stat().st_size > 1000


def test_faults_add_and_clear(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["lab", "reset"])
    assert (
        runner.invoke(args=["lab", "fault", "add", "unreachable:AMS2", "sql_express"]).exit_code
        == 0
    )
    faults = _state(app)["faults"]
    assert "AMS2" in faults["unreachable"]
    assert "unreachable" in runner.invoke(args=["lab", "show"]).output
    runner.invoke(args=["lab", "fault", "clear"])
    assert not _state(app)["faults"].get("unreachable")
    assert "Express" not in _state(app)["sql"]["edition"]


def test_lab_drain_takes_nodes_out_of_the_balancer_and_back(app):
    """The demo operator at the load balancer: `flask lab drain AMS2` leaves AMS1 in service,
    `flask lab drain` puts every node back; an unknown node is refused and changes nothing."""
    runner = app.test_cli_runner()
    assert runner.invoke(args=["lab", "reset", "--nodes", "2"]).exit_code == 0
    store = LabStore(app.config["INSTANCE_DIR"] / "lab" / "state.json")
    drained = runner.invoke(args=["lab", "drain", "ams2"])
    assert drained.exit_code == 0, drained.output
    assert "In service at amsweb.corp.example.test: AMS1." in drained.output
    assert store.read()["balancer"]["drained"] == ["AMS2"]
    assert "drained: AMS2" in runner.invoke(args=["lab", "show"]).output
    refused = runner.invoke(args=["lab", "drain", "AMS9"])
    assert refused.exit_code != 0 and "Not behind the balancer: AMS9" in refused.output
    assert store.read()["balancer"]["drained"] == ["AMS2"]
    back = runner.invoke(args=["lab", "drain"])
    assert back.exit_code == 0 and "AMS1, AMS2." in back.output
    assert store.read()["balancer"]["drained"] == []
