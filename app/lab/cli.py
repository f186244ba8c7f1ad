"""`flask lab ...`: serve the simulated nodes, inspect and reset their state, inject faults."""

import json
import secrets
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.lab import operator, scenarios
from app.lab.server import LabServer
from app.lab.store import LabStore

lab_cli = AppGroup("lab", help="The simulated Windows lab (WSMan/PSRP on 127.0.0.1).")


def lab_store() -> LabStore:
    """The state file under the app's instance folder."""
    return LabStore(Path(current_app.config["INSTANCE_DIR"]) / "lab" / "state.json")


def _node_names(store: LabStore, count: int | None) -> list[str]:
    existing = list((store.peek("nodes", default={}) or {}).keys())
    if count is None and existing:
        return existing
    return scenarios.default_node_names(count or 2)


@lab_cli.command("serve")
@click.option("--nodes", "count", type=int, default=None, help="Number of nodes (default 2).")
@click.option("--port", type=int, default=None, help="Port of the first node (LAB_BASE_PORT).")
@click.option("--username", default="labadmin", show_default=True)
@click.option("--password", default=None, help="Default: a random one, printed at start.")
@click.option("--https", is_flag=True, help="TLS with a self-signed certificate.")
@click.option("--scenario", default=None, help="Built-in scenario name or JSON file.")
@click.option("--fault", "faults", multiple=True, help="Fault spec, e.g. unreachable:AMS2.")
def serve(count, port, username, password, https, scenario, faults) -> None:
    """Serve every node until Ctrl-C."""
    store = lab_store()
    names = _node_names(store, count)
    if scenario or set(names) - set(store.peek("nodes", default={}) or {}):
        store.replace(scenarios.load_scenario(scenario or "default", names))
    with store.transaction() as state:
        for spec in faults:
            scenarios.apply_fault(state, spec)
    password = password or secrets.token_urlsafe(12)
    base_port = port or current_app.config.get("LAB_BASE_PORT", 55985)
    server = LabServer(store, names, base_port, username, password, https=https).start()
    _print_endpoints(server, username, password)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("Stopping the lab.")
    finally:
        server.stop()


def _print_endpoints(server: LabServer, username: str, password: str) -> None:
    for node in server.node_names:
        click.echo(f"{node:<12} {server.url(node)}  (port {server.ports[node]})")
    click.echo(f"username: {username}")
    click.echo(f"password: {password}")
    auth = "basic (encryption='never'), ntlm, negotiate"
    click.echo(f"auth: {auth}{'; https: cert_validation=False' if server.https else ''}")
    click.echo(f"state: {server.store.path}  (Ctrl-C to stop)")


@lab_cli.command("show")
@click.option("--json", "as_json", is_flag=True, help="The whole state as JSON.")
def show(as_json: bool) -> None:
    """Print the simulated state."""
    state = lab_store().read()
    if as_json or not state:
        click.echo(json.dumps(state, indent=2, sort_keys=True) if state else "(no lab state yet)")
        return
    click.echo(f"scenario: {state.get('scenario', '?')}")
    for name, node in (state.get("nodes") or {}).items():
        click.echo(_node_line(name, node))
    click.echo(f"cluster: {json.dumps(state.get('cluster'))[:200]}")
    if balancer := state.get("balancer"):
        drained = ", ".join(balancer["drained"]) or "none"
        click.echo(f"load balancer: {balancer['fqdn']} ({balancer['address']}); drained: {drained}")
    for line in fault_lines(state.get("faults") or {}):
        click.echo(line)


def _node_line(name: str, node: dict) -> str:
    features = ", ".join(k for k, v in (node.get("features") or {}).items() if v) or "-"
    return (
        f"{name:<10} features: {features}; pending_reboot: {node.get('pending_reboot', False)}; "
        f"files: {len(node.get('files') or {})}; products: "
        f"{', '.join(p.get('name', '?') for p in node.get('products') or []) or '-'}"
    )


def _active_faults(faults: dict) -> dict:
    return {k: v for k, v in faults.items() if v and k not in ("applied", "undo")}


def fault_lines(faults: dict) -> list[str]:
    """The active faults, one per line with what each does: every spec applied since the last
    clear (domain faults such as kds_too_new live only there), and what the protocol lists hold."""
    applied = list(dict.fromkeys(faults.get("applied") or []))
    help_by_kind = {key.split(":", 1)[0]: text for key, text in scenarios.FAULT_HELP.items()}
    lines = [
        f"  {spec:<32} {help_by_kind.get(spec.split(':', 1)[0], '')}".rstrip() for spec in applied
    ]
    listed = _active_faults(faults)
    if listed and not applied:  # set by hand in the state file
        lines += [f"  {kind}: {json.dumps(value)}" for kind, value in listed.items()]
    if not lines:
        return ["faults: none (add some with `flask lab fault add SPEC`)"]
    return [f"faults ({len(lines)} active; `flask lab fault clear` removes them):", *lines]


@lab_cli.command("reset")
@click.option("--scenario", default="default", show_default=True)
@click.option("--nodes", "count", type=int, default=None)
def reset(scenario: str, count: int | None) -> None:
    """Rebuild the state from a scenario (running servers see it at once)."""
    store = lab_store()
    names = _node_names(store, count)
    store.replace(scenarios.load_scenario(scenario, names))
    click.echo(f"Lab reset to '{scenario}' with nodes {', '.join(names)}.")


@lab_cli.group("fault")
def fault() -> None:
    """Inject or clear faults (they take effect on the next request)."""


@fault.command("add")
@click.argument("specs", nargs=-1, required=True)
def fault_add(specs: tuple[str, ...]) -> None:
    """Add faults, e.g. `unreachable:AMS2` `slow:AMS1:10` `crash:AMS1:prereq_install_feature`."""
    with lab_store().transaction() as state:
        for spec in specs:
            scenarios.apply_fault(state, spec)
    click.echo(f"Added: {', '.join(specs)}")


@fault.command("clear")
def fault_clear() -> None:
    """Remove every fault."""
    with lab_store().transaction() as state:
        scenarios.clear_faults(state)
    click.echo("Faults cleared.")


@lab_cli.command("drain")
@click.argument("nodes", nargs=-1)
def drain(nodes: tuple[str, ...]) -> None:
    """Play the operator at the load balancer: take NODES out of service (none: every node back)."""
    with lab_store().transaction() as state:
        balancer = state.get("balancer")
        if balancer is None:
            raise click.ClickException("This lab has no load balancer (reset it to a scenario).")
        unknown = sorted({n.upper() for n in nodes} - set(balancer["members"]))
        if unknown:
            raise click.ClickException(f"Not behind the balancer: {', '.join(unknown)}.")
        balancer["drained"] = [n for n in balancer["members"] if n in {x.upper() for x in nodes}]
        in_service = [n for n in balancer["members"] if n not in balancer["drained"]]
    click.echo(f"In service at {balancer['fqdn']}: {', '.join(in_service) or 'no node'}.")


@lab_cli.command("install-ams")
@click.option("--node", "nodes", multiple=True, help="Node name (default: every node).")
def install_ams(nodes: tuple[str, ...]) -> None:
    """Play the operator running the AMS installer by hand (lab's suggested account and database)."""
    with lab_store().transaction() as state:
        done = operator.install_by_hand(state, list(nodes) or None)
    click.echo(f"Access Manager installed by hand on {', '.join(done) or 'no node'}.")


@lab_cli.command("configure-ams")
@click.option("--node", "nodes", multiple=True, help="Node name (default: every node with AMS).")
@click.option("--port", type=int, default=443, show_default=True)
@click.option("--license/--no-license", "with_license", default=True, show_default=True)
def configure_ams(nodes: tuple[str, ...], port: int, with_license: bool) -> None:
    """Play the operator in the AMS configuration tool: bind the certificate, save, license node 1."""
    with lab_store().transaction() as state:
        done = operator.configure_by_hand(state, list(nodes) or None, port, with_license)
    click.echo(f"Configuration tool done on {', '.join(done) or 'no node (install AMS first)'}.")


@lab_cli.command("installer")
@click.option("--version", "version", default="2.1.1069.0", show_default=True)
def installer(version: str) -> None:
    """Write a demo installer into instance/installers/ for the unattended install path."""
    info = scenarios.load_scenario("default", ["X1", "X2"])["installers"].get(version)
    if info is None:
        raise click.ClickException(f"The lab knows no installer for version {version}.")
    folder = Path(current_app.config["INSTANCE_DIR"]) / "installers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / info["file_name"]
    path.write_bytes(b"MZ demo installer for the lab, version " + version.encode() + b"\n" * 4096)
    click.echo(f"Wrote {path} ({path.stat().st_size} bytes).")
