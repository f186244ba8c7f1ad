"""What an operator does by hand on the simulated nodes: run the installer, use the config tool."""

from app.lab import scenarios
from app.lab.handlers.ams import apply_configuration_tool

LAB_LICENSE = "LAB-LICENSE"


def _targets(state: dict, nodes: list[str] | None) -> list[str]:
    names = list(state["nodes"])
    return [n for n in names if nodes is None or n in {x.upper() for x in nodes}]


def install_by_hand(state: dict, nodes: list[str] | None = None) -> list[str]:
    """Install AMS with the lab's suggested version, account and database; returns the nodes."""
    hints = state["suggested_inputs"]
    done = _targets(state, nodes)
    for name in done:
        scenarios.install_ams(
            state["nodes"][name],
            hints["ams_version"],
            hints["gmsa"],
            hints["sql_connection_string"],
            state=state,
        )
    return done


def configure_by_hand(
    state: dict, nodes: list[str] | None = None, port: int = 443, with_license: bool = True
) -> list[str]:
    """Bind the suggested certificate and save the configuration; license the first node only."""
    thumbprint = state["suggested_inputs"]["certificate_thumbprint"]
    first = next(iter(state["nodes"]))
    installed = [n for n in _targets(state, nodes) if "lithnetams" in state["nodes"][n]["services"]]
    for name in installed:
        license_data = LAB_LICENSE if with_license and name == first else None
        apply_configuration_tool(state["nodes"][name], thumbprint, port, license_data)
    return installed
