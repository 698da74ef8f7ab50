"""The OpenAPI document at /openapi.json: valid, served without credentials, and
complete: a route the app serves but the document lacks fails here (so the table in
backend/api/openapi.py cannot drift from the code)."""
import schemathesis

from ovos_skill_personal_backend.backend.api import openapi


def _served(app) -> set:
    return {(path, method) for path, method, _, _ in openapi.routes(app)}


def _documented(document: dict) -> set:
    return {(path, method) for path, methods in document["paths"].items() for method in methods}


def test_every_route_is_documented(app):
    missing = _served(app) - _documented(openapi.build(app))
    assert not missing, f"routes without an entry in openapi.OPERATIONS: {sorted(missing)}"


def test_the_table_names_only_existing_views(app):
    keys = {openapi.operation_key(app, rule.endpoint) for rule in app.url_map.iter_rules()}
    assert set(openapi.OPERATIONS) - keys == set()


def test_document_is_valid_openapi_and_served_without_credentials(client, app):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.json
    schemathesis.openapi.from_dict(document).validate()  # raises on an invalid document
    assert _documented(document) == _served(app)
    operation_ids = [op["operationId"] for methods in document["paths"].values()
                     for op in methods.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_security_follows_the_route_guards(app):
    paths = openapi.build(app)["paths"]
    assert paths["/v1/device/{uuid}/setting"]["get"]["security"] == [{"device": []}]
    assert paths["/v1/admin/devices/list"]["get"]["security"] == [{"admin": []}]
    assert paths["/v1/device/code"]["get"]["security"] == []
    assert paths["/admin/devices"]["get"]["security"] == [{"session": []}]
    # the two shapes Flask tells apart by method share one OpenAPI path
    assert set(paths["/v1/admin/metrics/{metric_id}"]) == {"get", "put", "delete", "post"}
