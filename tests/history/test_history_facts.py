"""The history list's facts come from what each guide's steps declare (Step.history_facts), not
from step names in the history code: a cluster shows and is found by its cluster name, a farm by
its external host name, and the version filter works for both guides."""

import csv
import io

import pytest

from app.deployments.service import create_deployment
from app.extensions import db
from app.guides import CLUSTER_GUIDE, LOAD_BALANCER_GUIDE
from app.history.search import Filters, facts, query
from app.models import Deployment, User
from tests.handover.helpers import DEPLOYMENT, signed_in, user


@pytest.fixture
def two_guides(app):
    user(app, "alice", "operator")
    with app.app_context():
        owner = db.session.scalar(db.select(User).where(User.username == "alice"))
        cluster = create_deployment(DEPLOYMENT | {"name": "Payroll"}, owner)
        farm = create_deployment(DEPLOYMENT | {"name": "Web farm"}, owner, "ams-load-balancer")
        cluster.step("prerequisites").inputs = {"ams_version": "2.1.1069.0"}
        cluster.step("base_cluster").inputs = {"cluster_name": "AMSCLU01"}
        farm.step("prerequisites").inputs = {"ams_version": "3.0.1638.0"}
        farm.step("host_config").inputs = {"external_host_name": "ams.corp.example.test"}
        db.session.commit()
        return cluster.id, farm.id


def _names(app, filters: Filters) -> list[str]:
    with app.app_context():
        return sorted(d.name for d in db.session.scalars(query(filters)))


def test_every_guide_declares_a_name_and_a_version():
    for guide in (CLUSTER_GUIDE, LOAD_BALANCER_GUIDE):  # other tests may register test guides
        declared = {fact for step in guide.steps for fact in step.history_facts}
        assert declared == {"name", "ams_version"}, guide.key


def test_facts_follow_each_guide(app, two_guides):
    cluster, farm = two_guides
    with app.app_context():
        found = facts([cluster, farm])
    assert found[cluster] == {"name": "AMSCLU01", "ams_version": "2.1.1069.0"}
    assert found[farm] == {"name": "ams.corp.example.test", "ams_version": "3.0.1638.0"}


def test_search_and_version_filter_find_both_guides(app, two_guides):
    assert _names(app, Filters(q="amsclu")) == ["Payroll"]
    assert _names(app, Filters(q="ams.corp.example")) == ["Web farm"]
    assert _names(app, Filters(ams_version="3.0.1638.0")) == ["Web farm"]
    assert _names(app, Filters(ams_version="2.1.1069.0")) == ["Payroll"]
    assert _names(app, Filters(ams_version="9.9")) == []
    # Only the step that declares the fact counts: the same value in another step's inputs is
    # not the farm's name.
    with app.app_context():
        farm = db.session.get(Deployment, two_guides[1])
        farm.step("host_config").inputs = {}
        farm.step("farm_test").inputs = {"external_host_name": "ams.corp.example.test"}
        db.session.commit()
    assert _names(app, Filters(q="ams.corp.example")) == []


def test_the_list_and_its_csv_show_the_name(app, two_guides):
    client = signed_in(app, "lead", "reviewer")
    page = client.get("/history").get_data(as_text=True)
    assert "Cluster or farm" in page
    assert "AMSCLU01" in page and "ams.corp.example.test" in page
    rows = list(csv.DictReader(io.StringIO(client.get("/history.csv").get_data(as_text=True))))
    assert {r["name"]: r["cluster"] for r in rows} == {
        "Payroll": "AMSCLU01",
        "Web farm": "ams.corp.example.test",
    }
