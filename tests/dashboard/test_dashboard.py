"""`miro-sync dashboard`: rq-dashboard with the JSON serializer, basic auth required, guarded queue changes."""

from __future__ import annotations

import subprocess

import pytest
import requests
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from services.dashboard import create_app
from tests.fixtures.procs import MIRO_SYNC, free_port, wait_for

QUEUE = "miro-sync"
USER, PASSWORD = "ops", "s3cret-dashboard-pw"


def enqueue_json_job(redis_client, path="cat photo.png"):
    queue = Queue(QUEUE, connection=redis_client, serializer=JSONSerializer)
    return queue.enqueue("services.worker.tasks.upload_image", path, 123, 456, meta={"attempt": 1})


@pytest.fixture
def dashboard(spawn, tmp_path, redis_url):
    port = free_port()
    env = {"REDIS_URL": redis_url, "DASHBOARD_USERNAME": USER, "DASHBOARD_PASSWORD": PASSWORD, "LOG_FORMAT": "json"}
    proc = spawn([*MIRO_SYNC, "dashboard", "--bind", f"127.0.0.1:{port}"], "dashboard", env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: requests.get(base, timeout=1).status_code, 15, what="dashboard")
    return proc, base


def test_refuses_to_start_without_credentials(tmp_path, redis_url):
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url, "DASHBOARD_USERNAME": USER}
    done = subprocess.run([*MIRO_SYNC, "dashboard", "--bind", f"127.0.0.1:{free_port()}"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "DASHBOARD_PASSWORD is not set" in done.stderr
    assert "--no-auth" in done.stderr


def test_answers_only_with_the_configured_credentials(dashboard, redis_client):
    proc, base = dashboard
    job = enqueue_json_job(redis_client)

    anonymous = requests.get(base + "/", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    assert requests.get(base + "/0/data/queues.json", timeout=5).status_code == 401
    assert requests.get(base + "/static/css/main.css", timeout=5).status_code == 401
    assert requests.get(base + "/", auth=(USER, "wrong"), timeout=5).status_code == 401
    assert requests.get(base + "/", auth=("someone", PASSWORD), timeout=5).status_code == 401

    page = requests.get(base + "/", auth=(USER, PASSWORD), timeout=5)
    assert page.status_code == 200 and "<title>RQ dashboard</title>" in page.text
    queues = requests.get(base + "/0/data/queues.json", auth=(USER, PASSWORD), timeout=5).json()["queues"]
    assert [q["count"] for q in queues if q["name"] == QUEUE] == [1]
    # The job is readable: with rq-dashboard's default (pickle) serializer its metadata is not, and this is a 500.
    info = requests.get(f"{base}/0/data/job/{job.id}.json", auth=(USER, PASSWORD), timeout=5)
    assert info.status_code == 200, info.text
    assert "cat photo.png" in info.json()["description"]

    assert PASSWORD not in proc.output()
    assert "dashboard.start" in proc.output()


def test_no_auth_only_when_asked(redis_url):
    client = create_app(redis_url, auth=None).test_client()
    assert client.get("/").status_code == 200


def test_queue_changes_only_from_the_dashboard_page(redis_url, redis_client):
    enqueue_json_job(redis_client)
    client = create_app(redis_url, auth=(USER, PASSWORD)).test_client()
    login = {"Authorization": requests.auth._basic_auth_str(USER, PASSWORD)}
    page_request = {**login, "X-Requested-With": "XMLHttpRequest"}

    # What a link, an <img> or a form on another site could make a logged-in browser send:
    assert client.get(f"/requeue/{QUEUE}", headers=login).status_code == 405
    assert client.post(f"/requeue/{QUEUE}", headers=login).status_code == 403
    assert client.post(f"/queue/{QUEUE}/compact", headers=login).status_code == 403
    # What the dashboard's own page sends:
    assert client.post(f"/requeue/{QUEUE}", headers=page_request).get_json()["status"] == "OK"
    assert client.post(f"/queue/{QUEUE}/compact", headers=page_request).get_json()["status"] == "OK"
    # Reads are unaffected.
    assert client.get("/0/data/queues.json", headers=login).status_code == 200


def test_disable_delete(redis_url, redis_client):
    job = enqueue_json_job(redis_client)
    client = create_app(redis_url, auth=None, disable_delete=True).test_client()
    answer = client.post(f"/job/{job.id}/delete", headers={"X-Requested-With": "XMLHttpRequest"})
    assert answer.get_json()["status"] == "DISABLED"
    assert Queue(QUEUE, connection=redis_client, serializer=JSONSerializer).count == 1


def test_lists_a_worker_busy_with_a_json_job(redis_url, redis_client):
    job = enqueue_json_job(redis_client)
    worker = Worker([QUEUE], connection=redis_client, serializer=JSONSerializer, name="busy-worker")
    worker.register_birth()
    worker.set_state("busy")
    worker.set_current_job_id(job.id)
    client = create_app(redis_url, auth=None).test_client()

    answer = client.get("/0/data/workers.json")  # rq-dashboard alone: 500 (reads the job as pickle)
    assert answer.status_code == 200
    (listed,) = answer.get_json()["workers"]
    assert listed["name"] == "busy-worker" and listed["current_job"]["job_id"] == job.id
