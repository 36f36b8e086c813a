"""The JSON API of `metalearn serve`: the happy path against the library, and every refusal."""

from __future__ import annotations

import io
import re
import struct
import zlib

import anyio
import numpy as np
import pytest
import torch
from starlette.requests import Request
from starlette.testclient import TestClient

from applications.serve_fixtures import draw_symbol
from metalearn.applications import personalize
from metalearn.applications.serve import ApiError, Limits, create_app
from metalearn.applications.serve.http import read_body
from metalearn.data.transforms import decode_image, to_float

PNG = {"Content-Type": "image/png"}
SHAPES = ("circle", "cross", "bar")


@pytest.fixture
def client(served):
    with TestClient(create_app(served, Limits(max_image_bytes=50_000))) as client:
        yield client


def _teach(client, shapes=SHAPES, shots=2):
    for shape in shapes:
        assert client.post("/api/classes", json={"name": shape}).status_code == 201
        for shot in range(shots):
            response = client.post(
                f"/api/classes/{shape}/examples", content=draw_symbol(shape, 3 * shot), headers=PNG
            )
            assert response.status_code == 201, response.text
    response = client.post("/api/adapt")
    assert response.status_code == 200, response.text
    return response.json()


def _predict(client, image: bytes) -> dict:
    response = client.post("/api/predict", content=image, headers=PNG)
    assert response.status_code == 200, response.text
    return response.json()


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


def _pixels(image: bytes) -> torch.Tensor:
    return to_float(torch.from_numpy(decode_image(image, (28, 28), invert_values=True)))


def test_predictions_equal_the_library_on_the_same_examples(client, served):
    state = _teach(client)
    assert state["taught"] == {"classes": list(SHAPES), "stale": False}
    support_x = torch.stack([_pixels(draw_symbol(s, 3 * k)) for s in SHAPES for k in range(2)])
    support_y = torch.tensor([0, 0, 1, 1, 2, 2])
    reference = personalize(served.learner, support_x, support_y, list(SHAPES))
    query = draw_symbol("cross", 1)
    expected = reference.predict_proba(_pixels(query)[None])[0]
    result = _predict(client, query)
    probabilities = [row["probability"] for row in result["probabilities"]]
    assert [row["class"] for row in result["probabilities"]] == list(SHAPES)
    torch.testing.assert_close(torch.tensor(probabilities), expected, rtol=0, atol=1e-6)
    assert result["class"] == SHAPES[int(expected.argmax())]
    assert result["probability"] == max(probabilities)


def test_a_prediction_depends_only_on_its_image(client):
    _teach(client)
    first = _predict(client, draw_symbol("bar", 2))
    for shape in SHAPES:
        _predict(client, draw_symbol(shape, -4))
    assert _predict(client, draw_symbol("bar", 2)) == first


def test_examples_are_removed_and_cleared_and_the_model_becomes_stale(client):
    _teach(client)
    state = client.get("/api/state").json()
    ids = state["classes"][0]["examples"]
    thumbnail = client.get(f"/api/classes/circle/examples/{ids[0]}")
    assert thumbnail.headers["content-type"] == "image/png"
    # The thumbnail is the learner's 28 x 28 view, drawn dark on light as it was sent.
    pixels = decode_image(thumbnail.content, (28, 28), invert_values=True)
    np.testing.assert_array_equal(
        pixels, decode_image(draw_symbol("circle"), (28, 28), invert_values=True)
    )
    assert client.delete(f"/api/classes/circle/examples/{ids[0]}").status_code == 204
    state = client.get("/api/state").json()
    assert state["classes"][0]["examples"] == ids[1:]
    assert state["taught"]["stale"] is True
    assert client.delete("/api/classes/cross/examples").status_code == 204
    assert client.delete("/api/classes/bar").status_code == 204
    state = client.get("/api/state").json()
    assert [(c["name"], len(c["examples"])) for c in state["classes"]] == [
        ("circle", 1),
        ("cross", 0),
    ]


def test_each_browser_session_has_its_own_examples(served):
    app = create_app(served)
    with TestClient(app) as alice, TestClient(app) as bob:
        _teach(alice)
        assert bob.get("/api/state").json()["classes"] == []
        _error(bob.post("/api/predict", content=draw_symbol("bar"), headers=PNG), 409)
        assert alice.cookies["metalearn_session"] != bob.cookies["metalearn_session"]


def test_export_then_import_restores_the_examples_and_the_predictions(served, tmp_path):
    from metalearn.personal_model import load_personal

    app = create_app(served)
    with TestClient(app) as alice, TestClient(app) as bob:
        _teach(alice)
        query = draw_symbol("circle", 4)
        expected = _predict(alice, query)
        exported = alice.get("/api/export")
        assert exported.headers["content-disposition"] == 'attachment; filename="personal.pt"'
        (tmp_path / "me.pt").write_bytes(exported.content)
        personal, _ = load_personal(tmp_path / "me.pt")
        probabilities = personal.predict_proba(_pixels(query)[None])[0].tolist()
        assert probabilities == pytest.approx([r["probability"] for r in expected["probabilities"]])
        state = bob.post("/api/import", content=exported.content).json()
        assert [(c["name"], len(c["examples"])) for c in state["classes"]] == [
            (s, 2) for s in SHAPES
        ]
        assert state["taught"]["stale"] is False
        again = _predict(bob, query)["probabilities"]
        assert [r["class"] for r in again] == list(SHAPES)
        assert [r["probability"] for r in again] == pytest.approx(probabilities)


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` one-bit pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("content", "headers", "status", "says"),
    [
        (b"x" * 60_000, PNG, 413, "limit is 50,000"),
        (b"GIF89a not really", {"Content-Type": "text/plain"}, 415, "text/plain"),
        (b"\x89PNG", {}, 415, "missing"),
        (b"not an image at all", PNG, 400, "cannot decode"),
        (b"", PNG, 400, "empty"),
        (_png_declaring(5000, 5000), PNG, 413, "25,000,000 pixels"),  # over our limit
        (_png_declaring(10_000, 10_000), PNG, 413, "too many pixels"),  # Pillow warns
        (_png_declaring(100_000, 100_000), PNG, 413, "too many pixels"),  # Pillow refuses
    ],
    ids=["big", "text", "no-type", "garbage", "empty", "pixels", "bomb", "huge-bomb"],
)
def test_an_upload_that_is_not_a_small_image_is_refused(client, content, headers, status, says):
    assert client.post("/api/classes", json={"name": "circle"}).status_code == 201
    response = client.post("/api/classes/circle/examples", content=content, headers=headers)
    assert says in _error(response, status)
    assert client.get("/api/state").json()["classes"] == [{"name": "circle", "examples": []}]
    assert client.delete("/api/classes/circle").status_code == 204
    _teach(client)  # and it keeps serving
    response = client.post("/api/predict", content=content, headers=headers)
    assert says in _error(response, status)


def test_a_body_without_content_length_is_cut_off_at_the_limit():
    received = []

    async def receive():
        received.append(1000)
        return {"type": "http.request", "body": b"\x00" * 1000, "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(ApiError) as refused:
        anyio.run(read_body, request, 50_000)
    assert refused.value.status == 413
    assert sum(received) == 51_000  # it stopped reading at the limit


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"title": "circle"}', 400, '{"name"'),
        (b'{"name": "a/b"}', 422, "no '/'"),
        (b'{"name": "   "}', 422, "1 to 40"),
        (b'{"name": "' + b"x" * 41 + b'"}', 422, "1 to 40"),
        (b'{"name": "bar"}', 409, "already"),
        (b'{"name": "' + b"x" * 5000 + b'"}', 413, "limit is 4,096"),
    ],
)
def test_a_bad_class_name_is_refused(client, body, status, says):
    assert client.post("/api/classes", json={"name": "bar"}).status_code == 201
    response = client.post(
        "/api/classes", content=body, headers={"Content-Type": "application/json"}
    )
    assert says in _error(response, status)
    assert [c["name"] for c in client.get("/api/state").json()["classes"]] == ["bar"]


def test_teaching_too_few_examples_is_refused(client):
    assert "at least 2 classes" in _error(client.post("/api/adapt"), 422)
    _teach(client, shapes=("circle", "cross"))
    assert client.post("/api/classes", json={"name": "bar"}).status_code == 201
    assert "'bar' has no examples" in _error(client.post("/api/adapt"), 422)
    # The model taught before stays usable.
    assert _predict(client, draw_symbol("circle"))["class"] in ("circle", "cross")


def test_a_gradient_learner_says_how_many_classes_it_needs():
    from metalearn.build import build_learner
    from metalearn.cli.serve import served_model
    from metalearn.presets import get_preset

    config = get_preset("fomaml-omniglot-5w1s")
    model = served_model(config, build_learner(config).eval(), invert=True)
    with TestClient(create_app(model)) as client:
        assert client.get("/api/state").json()["model"]["n_way"] == 5
        for shape in SHAPES:
            client.post("/api/classes", json={"name": shape})
            client.post(f"/api/classes/{shape}/examples", content=draw_symbol(shape), headers=PNG)
        assert "exactly 5 classes (there are 3)" in _error(client.post("/api/adapt"), 422)
        for name in ("square", "wave"):
            client.post("/api/classes", json={"name": name})
            client.post(f"/api/classes/{name}/examples", content=draw_symbol("bar", 9), headers=PNG)
        assert client.post("/api/adapt").status_code == 200
        probabilities = _predict(client, draw_symbol("circle", 2))["probabilities"]
        assert [row["class"] for row in probabilities] == [*SHAPES, "square", "wave"]
        assert sum(row["probability"] for row in probabilities) == pytest.approx(1.0)


def test_unknown_classes_examples_and_routes_are_404(client):
    response = client.post("/api/classes/nope/examples", content=draw_symbol("bar"), headers=PNG)
    assert "no class 'nope'" in _error(response, 404)
    assert "no class" in _error(client.delete("/api/classes/nope"), 404)
    assert "no class" in _error(client.delete("/api/classes/nope/examples"), 404)
    client.post("/api/classes", json={"name": "bar"})
    assert "no example 7" in _error(client.get("/api/classes/bar/examples/7"), 404)
    assert "no example 7" in _error(client.delete("/api/classes/bar/examples/7"), 404)
    _error(client.get("/api/nothing"), 404)
    _error(client.get("/api/adapt"), 405)
    # A path is never read as a file: only the packaged page and its assets are served.
    assert client.get("/static/../../../../etc/passwd").status_code == 404
    assert client.get("/static/app.js").status_code == 200


def test_nothing_taught_means_nothing_to_predict_or_export(client):
    assert "nothing is taught" in _error(
        client.post("/api/predict", content=draw_symbol("bar"), headers=PNG), 409
    )
    assert "nothing is taught" in _error(client.get("/api/export"), 409)


def test_a_file_that_is_not_a_personal_model_of_this_run_is_refused(client, served):
    assert "cannot read" in _error(client.post("/api/import", content=b"junk"), 400)
    buffer = io.BytesIO()
    torch.save({"format": "something else"}, buffer)
    assert "not a personal model" in _error(
        client.post("/api/import", content=buffer.getvalue()), 400
    )
    _teach(client)
    exported = client.get("/api/export").content
    with torch.no_grad():
        next(served.learner.parameters()).add_(1.0)  # now serving other weights
    assert "another run" in _error(client.post("/api/import", content=exported), 409)
    assert client.get("/api/state").json()["taught"]["classes"] == list(SHAPES)


def test_a_session_holds_a_bounded_number_of_classes_and_examples(served):
    limits = Limits(max_classes=2, max_examples_per_class=1)
    with TestClient(create_app(served, limits)) as client:
        for shape in SHAPES[:2]:
            client.post("/api/classes", json={"name": shape})
        assert "at most 2 classes" in _error(client.post("/api/classes", json={"name": "bar"}), 422)
        client.post("/api/classes/circle/examples", content=draw_symbol("circle"), headers=PNG)
        response = client.post(
            "/api/classes/circle/examples", content=draw_symbol("circle"), headers=PNG
        )
        assert "at most 1 examples" in _error(response, 422)


def test_the_page_loads_nothing_from_elsewhere(client):
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/", "/static/app.js", "/static/style.css"):
        text = client.get(path).text
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path
    assert 'src="/static/app.js"' in page.text
