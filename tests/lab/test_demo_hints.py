"""The demo lab's operator hints: which steps have one, and the templates are looked up once, not
on every step page."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from app.lab import demo, scenarios
from app.lab.store import LabStore

BASE_PORT = 55985


@pytest.fixture
def lab_nodes(tmp_path):
    """A running demo lab's state under `tmp_path`, and the deployment's nodes that are its own."""
    LabStore(tmp_path / "lab" / "state.json").replace(scenarios.default_state(["AMS1", "AMS2"]))
    return [SimpleNamespace(host="127.0.0.1", port=BASE_PORT + i) for i in range(2)]


@pytest.mark.parametrize(
    ("step_key", "hint"),
    [
        ("install_ams", "lab/hints/install_ams.html"),
        ("first_node", "lab/hints/first_node.html"),
        ("farm_test", "lab/hints/farm_test.html"),
        ("quorum", None),
        ("../install_ams", None),
    ],
)
def test_only_steps_with_a_hint_template_get_one(tmp_path, lab_nodes, step_key, hint):
    assert demo.operator_hint(tmp_path, BASE_PORT, lab_nodes, step_key) == hint


def test_the_hint_templates_are_not_looked_up_again_on_each_page(tmp_path, lab_nodes, monkeypatch):
    demo.operator_hint(tmp_path, BASE_PORT, lab_nodes, "install_ams")  # the first page lists them

    def no_lookup(*_args, **_kwargs):
        raise AssertionError("a step page looked the hint templates up on disk again")

    monkeypatch.setattr(Path, "is_file", no_lookup)
    monkeypatch.setattr(Path, "glob", no_lookup)
    for _ in range(3):
        assert demo.operator_hint(tmp_path, BASE_PORT, lab_nodes, "install_ams")
        assert demo.operator_hint(tmp_path, BASE_PORT, lab_nodes, "quorum") is None
