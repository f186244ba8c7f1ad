"""The API takes the CA certificates as PEM text and answers with what it stored."""

from app.lab import certs
from tests.api.conftest import DEPLOYMENT


def https(validate: bool) -> list[dict]:
    return [
        n | {"transport": "https", "port": 5986, "cert_validation": validate}
        for n in DEPLOYMENT["nodes"]
    ]


def test_ca_bundle_in_summary_out(api):
    ca = certs.make_ca("API Issuing CA")
    body = DEPLOYMENT | {"nodes": https(True), "ca_bundle": ca.cert_pem}
    response = api.post("/api/v1/deployments", json=body)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert [c["subject"] for c in data["ca_certificates"]] == ["CN=API Issuing CA"]
    assert data["unvalidated_nodes"] == []
    assert "ca_bundle" not in data  # the summary, not the PEM


def test_bad_ca_bundle_is_422_and_creates_nothing(api):
    body = DEPLOYMENT | {
        "ca_bundle": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
    }
    response = api.post("/api/v1/deployments", json=body)
    assert response.status_code == 422
    assert "cannot be read" in response.get_json()["errors"]["ca_bundle"][0]
    assert api.get("/api/v1/deployments").get_json()["total"] == 0


def test_validation_off_is_reported(api):
    response = api.post("/api/v1/deployments", json=DEPLOYMENT | {"nodes": https(False)})
    assert response.get_json()["unvalidated_nodes"] == ["NODE1", "NODE2", "NODE3"]
