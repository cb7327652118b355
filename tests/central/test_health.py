"""GET /healthz: 200 when central can serve, 503 JSON when its database cannot."""
from __future__ import annotations

from sync import create_app
from sync.db import close_pool
from tests.pg import with_database


def test_healthz_answers_ok_with_the_database_round_trip(central_client):
    response = central_client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["database"] == "ok"
    assert response.json["database_ms"] >= 0
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_needs_no_login_and_sets_no_cookie(central_client):
    response = central_client.get("/healthz")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers


def test_healthz_without_its_database_is_503_json_not_500(pg_server_url):
    app = create_app({"TESTING": True, "DATABASE_URL": with_database(pg_server_url, "no_such_db"),
                      "DB_POOL_TIMEOUT": 0.5})
    try:
        response = app.test_client().get("/healthz")
    finally:
        close_pool(app)
    assert response.status_code == 503
    assert response.json["error"] == "unavailable" and response.json["message"]
    assert response.headers["Retry-After"]


def test_healthz_refuses_writes_with_405_json(central_client):
    response = central_client.post("/healthz", json={}, headers={"Accept": "application/json"})
    assert response.status_code == 405 and response.json["error"]
