"""The fake fal keeps fal's contract: real images, validation, queueing, cancel, fault control."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.fal.client import FalClient
from bot.fal.fake import MAX_SIDE, FakeFal
from bot.pricing import quote
from tests.integration.conftest import FAKE_FAL_KEY, wait_for_status

pytestmark = pytest.mark.usefixtures("instant_retries")

AUTH = {"Authorization": f"Key {FAKE_FAL_KEY}"}


def image_bytes(
    size: tuple[int, int] = (32, 24), colour: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG"
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
async def http(fake_fal: FakeFal) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_fal.url, timeout=5.0) as client:
        yield client


@pytest.fixture
async def input_url(fal_client: FalClient) -> str:
    return await fal_client.upload(image_bytes(), "image/png", "in.png")


async def run_edit(client: FalClient, arguments: dict[str, Any]) -> tuple[bytes, int, Image.Image]:
    """Submit, wait, download: the output bytes, the seed and the decoded image."""
    request_id = await client.submit(arguments)
    result = await client.wait(request_id, poll_interval=0.01)
    data = await client.download(result.images[0].url, max_bytes=50_000_000)
    image = Image.open(io.BytesIO(data))
    assert (image.width, image.height) == (result.images[0].width, result.images[0].height)
    return data, result.seed, image


def edit(url: str | list[str], **overrides: Any) -> dict[str, Any]:
    urls = url if isinstance(url, list) else [url]
    return {
        "prompt": "a red fox",
        "image_urls": urls,
        "image_size": "square",
        "seed": 1,
    } | overrides


async def test_same_seed_prompt_and_inputs_give_identical_bytes(
    fal_client: FalClient, input_url: str
) -> None:
    small = {"image_size": {"width": 48, "height": 40}}
    first, seed, _ = await run_edit(fal_client, edit(input_url, **small))
    again, _, _ = await run_edit(fal_client, edit(input_url, **small))
    other_seed, _, _ = await run_edit(fal_client, edit(input_url, seed=2, **small))
    other_prompt, _, _ = await run_edit(fal_client, edit(input_url, prompt="a blue fox", **small))
    other_url = await fal_client.upload(image_bytes(colour=(0, 90, 0)), "image/png", "b.png")
    other_input, _, _ = await run_edit(fal_client, edit(other_url, **small))

    assert seed == 1
    assert first == again
    assert len({first, other_seed, other_prompt, other_input}) == 4


async def test_output_names_what_was_used(fal_client: FalClient, input_url: str) -> None:
    _, _, image = await run_edit(
        fal_client, edit(input_url, output_format="png", image_size={"width": 20, "height": 20})
    )
    facts = json.loads(str(image.info["fake-fal"]))
    assert image.format == "PNG"
    assert facts["seed"] == 1
    assert len(facts["inputs"]) == 1


async def test_no_seed_picks_one_that_reproduces_the_output(
    fal_client: FalClient, input_url: str
) -> None:
    small = {"image_size": {"width": 16, "height": 16}}
    arguments = edit(input_url, **small)
    del arguments["seed"]
    data, seed, _ = await run_edit(fal_client, arguments)
    again, _, _ = await run_edit(fal_client, edit(input_url, seed=seed, **small))
    assert data == again


@pytest.mark.parametrize(
    ("image_size", "input_size", "expected"),
    [
        ("square", (32, 24), (512, 512)),
        ("landscape_16_9", (32, 24), (1024, 576)),
        ({"width": 40, "height": 30}, (32, 24), (40, 30)),
        ("auto", (64, 48), (64, 48)),
        ("auto", (2400, 1800), (2364, 1773)),  # 4.32 MP capped to <= 4 MP, same aspect
    ],
)
async def test_output_size_follows_preset_custom_and_auto(
    fal_client: FalClient,
    image_size: str | dict[str, int],
    input_size: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    url = await fal_client.upload(image_bytes(input_size, fmt="JPEG"), "image/jpeg", "in.jpg")
    _, _, image = await run_edit(fal_client, edit(url, image_size=image_size))
    assert image.size == expected
    assert image.format == "JPEG"
    assert image.width * image.height <= 4 * 1024 * 1024


async def test_extra_inputs_change_the_output(fal_client: FalClient, input_url: str) -> None:
    second = await fal_client.upload(image_bytes(colour=(0, 0, 250)), "image/png", "2.png")
    small = {"image_size": {"width": 32, "height": 32}}
    one, _, _ = await run_edit(fal_client, edit(input_url, **small))
    two, _, image = await run_edit(fal_client, edit([input_url, second], **small))
    assert one != two
    assert len(json.loads(image.info["comment"])["inputs"]) == 2


async def test_sync_mode_returns_a_data_uri(fal_client: FalClient, input_url: str) -> None:
    request_id = await fal_client.submit(edit(input_url, sync_mode=True, image_size="square"))
    result = await fal_client.wait(request_id, poll_interval=0.01)
    url = result.images[0].url
    assert url.startswith("data:image/jpeg;base64,")
    assert await fal_client.download(url, 10_000_000) == base64.b64decode(url.split(",", 1)[1])


async def test_second_request_waits_in_queue_while_first_runs(
    fake_fal: FakeFal, fal_client: FalClient, input_url: str
) -> None:
    fake_fal.configure(concurrency=1, processing_time=1.2)
    ids = [await fal_client.submit(edit(input_url, num_inference_steps=4)) for _ in range(3)]

    first = await wait_for_status(fal_client, ids[0], lambda s: bool(s.logs))
    second = await fal_client.status(ids[1])
    third = await fal_client.status(ids[2])

    assert first.status == "IN_PROGRESS"
    assert first.logs[0].message == "step 1/4"
    assert first.logs[0].timestamp
    assert (second.status, second.queue_position) == ("IN_QUEUE", 0)
    assert (third.status, third.queue_position) == ("IN_QUEUE", 1)
    for request_id in ids:
        await fal_client.cancel(request_id)


async def test_cancel_queued_and_in_progress_requests(
    fake_fal: FakeFal, fal_client: FalClient, http: httpx.AsyncClient, input_url: str
) -> None:
    fake_fal.configure(concurrency=1, processing_time=2.0)
    running = await fal_client.submit(edit(input_url, num_inference_steps=5))
    queued = await fal_client.submit(edit(input_url, num_inference_steps=5))
    await wait_for_status(fal_client, running, lambda s: s.status == "IN_PROGRESS")

    assert await fal_client.cancel(queued) == "CANCELLATION_REQUESTED"
    status = await fal_client.status(queued)
    assert (status.status, status.error_type) == ("COMPLETED", "client_cancelled")
    assert await fal_client.cancel(running) == "CANCELLATION_REQUESTED"
    await wait_for_status(fal_client, running)

    for request_id in (queued, running):
        response = await http.get(f"/fal-ai/flux-2-flex/requests/{request_id}", headers=AUTH)
        assert response.status_code == 499
        assert response.json()["error_type"] == "client_cancelled"
        assert fake_fal.jobs[request_id].output_urls == []
    again = await http.put(f"/fal-ai/flux-2-flex/requests/{running}/cancel", headers=AUTH)
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    assert fake_fal.cancels == 3


async def test_wrong_paths_fail_like_the_real_queue(
    http: httpx.AsyncClient, fal_client: FalClient, input_url: str
) -> None:
    request_id = await fal_client.submit(edit(input_url))
    with_sub_path = f"/fal-ai/flux-2-flex/edit/requests/{request_id}"
    assert (await http.get(f"{with_sub_path}/status", headers=AUTH)).status_code in (404, 405)
    assert (await http.get(with_sub_path, headers=AUTH)).status_code in (404, 405)
    assert (await http.put(f"{with_sub_path}/cancel", headers=AUTH)).status_code in (404, 405)
    assert (await http.post("/fal-ai/flux-2-flex", json={}, headers=AUTH)).status_code in (404, 405)
    assert (await http.post("/fal-ai/flux-2-pro/edit", json={}, headers=AUTH)).status_code in (
        404,
        405,
    )
    ok = await http.get(f"/fal-ai/flux-2-flex/requests/{request_id}/status", headers=AUTH)
    assert ok.status_code in (200, 202)


async def test_submit_response_has_the_documented_shape(
    fake_fal: FakeFal, http: httpx.AsyncClient, input_url: str
) -> None:
    response = await http.post("/fal-ai/flux-2-flex/edit", json=edit(input_url), headers=AUTH)
    body = response.json()
    request_id = body["request_id"]
    base = f"{fake_fal.url}/fal-ai/flux-2-flex/requests/{request_id}"
    assert body["status"] == "IN_QUEUE"
    assert isinstance(body["queue_position"], int)
    assert (body["response_url"], body["status_url"], body["cancel_url"]) == (
        base,
        f"{base}/status",
        f"{base}/cancel",
    )


async def test_queue_and_storage_need_a_key(http: httpx.AsyncClient) -> None:
    submit = await http.post("/fal-ai/flux-2-flex/edit", json={"prompt": "x"})
    token = await http.post("/storage/auth/token", params={"storage_type": "fal-cdn-v3"})
    upload = await http.post("/files/upload", content=b"x", headers={"Authorization": "Bearer no"})
    assert [r.status_code for r in (submit, token, upload)] == [401, 401, 401]
    assert isinstance(submit.json()["detail"], str)


INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"prompt": None}, "prompt", "value_error.missing"),
    ({"image_urls": []}, "image_urls", "value_error.list.min_items"),
    ({"image_urls": None}, "image_urls", "value_error.missing"),
    ({"guidance_scale": 1.0}, "guidance_scale", "value_error.number.not_ge"),
    ({"guidance_scale": 10.5}, "guidance_scale", "value_error.number.not_le"),
    ({"num_inference_steps": 1}, "num_inference_steps", "value_error.number.not_ge"),
    ({"num_inference_steps": 51}, "num_inference_steps", "value_error.number.not_le"),
    ({"num_inference_steps": 4.5}, "num_inference_steps", "type_error.integer"),
    ({"safety_tolerance": 2}, "safety_tolerance", "type_error.enum"),
    ({"safety_tolerance": "6"}, "safety_tolerance", "type_error.enum"),
    ({"output_format": "webp"}, "output_format", "type_error.enum"),
    ({"image_size": "huge"}, "image_size", "type_error.enum"),
    ({"image_size": {"width": 0, "height": 64}}, "image_size.width", "value_error.number.not_gt"),
    (
        {"image_size": {"width": 64, "height": MAX_SIDE + 1}},
        "image_size.height",
        "value_error.number.not_le",
    ),
]


@pytest.mark.parametrize(("change", "field", "error_type"), INVALID)
async def test_invalid_input_is_a_422_naming_the_field(
    fake_fal: FakeFal,
    http: httpx.AsyncClient,
    input_url: str,
    change: dict[str, Any],
    field: str,
    error_type: str,
) -> None:
    fake_fal.configure(validate_on_submit=True)
    arguments = edit(input_url) | change
    arguments = {k: v for k, v in arguments.items() if v is not None}

    response = await http.post("/fal-ai/flux-2-flex/edit", json=arguments, headers=AUTH)

    assert response.status_code == 422
    [entry] = response.json()["detail"]
    assert entry["loc"] == ["body", *field.split(".")]
    assert entry["type"] == error_type
    assert entry["msg"]
    assert entry["url"].endswith(f"#{error_type}")
    assert fake_fal.submits == 0


async def test_more_than_eight_images_is_refused(
    fake_fal: FakeFal, http: httpx.AsyncClient, input_url: str
) -> None:
    fake_fal.configure(validate_on_submit=True)
    response = await http.post("/fal-ai/flux-2-flex/edit", json=edit([input_url] * 9), headers=AUTH)
    assert response.json()["detail"][0]["type"] == "value_error.list.max_items"
    accepted = await http.post("/fal-ai/flux-2-flex/edit", json=edit([input_url] * 8), headers=AUTH)
    assert accepted.status_code == 200


async def test_by_default_invalid_input_completes_and_fails_on_result(
    fake_fal: FakeFal, http: httpx.AsyncClient, fal_client: FalClient, input_url: str
) -> None:
    submitted = await http.post(
        "/fal-ai/flux-2-flex/edit",
        json=edit(["https://example.com/cat.png", input_url]),
        headers=AUTH,
    )
    assert submitted.status_code == 200
    request_id = submitted.json()["request_id"]
    await wait_for_status(fal_client, request_id)

    result = await http.get(f"/fal-ai/flux-2-flex/requests/{request_id}", headers=AUTH)

    assert result.status_code == 422
    [entry] = result.json()["detail"]
    assert (entry["loc"], entry["type"]) == (["body", "image_urls", 0], "file_download_error")


async def test_blocked_word_trips_the_content_checker(
    http: httpx.AsyncClient, fal_client: FalClient, input_url: str
) -> None:
    request_id = await fal_client.submit(edit(input_url, prompt="FAKE_NSFW please"))
    await wait_for_status(fal_client, request_id)
    result = await http.get(f"/fal-ai/flux-2-flex/requests/{request_id}", headers=AUTH)
    assert result.status_code == 422
    assert result.json()["detail"][0]["type"] == "content_policy_violation"


async def test_faults_and_settings_are_controlled_over_http(
    fake_fal: FakeFal, http: httpx.AsyncClient, fal_client: FalClient, input_url: str
) -> None:
    added = await http.post("/_fake/faults", json={"route": "status", "fault": "503", "times": 1})
    assert added.json()["pending"][0]["kind"] == "503"
    bad = await http.post("/_fake/faults", json={"route": "status", "fault": "explode"})
    assert bad.status_code == 400
    await http.post("/_fake/faults", json={"route": "submit", "fault": "429", "retry_after": 0})

    request_id = await fal_client.submit(edit(input_url))
    await fal_client.status(request_id)

    log = (await http.get("/_fake/requests")).json()["requests"]
    statuses = [(r["route"], r["status"]) for r in log if r["route"] in {"submit", "status"}]
    assert statuses[:3] == [("submit", 429), ("submit", 200), ("status", 503)]
    assert statuses[3] in {("status", 200), ("status", 202)}
    assert all("Authorization" not in r["headers"] for r in log)
    assert (await http.get("/_fake/faults")).json()["pending"] == []

    config = await http.post("/_fake/config", json={"processing_time": 0.25, "concurrency": 3})
    assert (config.json()["processing_time"], config.json()["concurrency"]) == (0.25, 3)
    assert fake_fal.processing_time == 0.25
    assert (await http.post("/_fake/config", json={"nope": 1})).status_code == 400

    jobs = (await http.get("/_fake/jobs")).json()
    assert jobs["submits"] == 1
    assert jobs["jobs"][0]["request_id"] == request_id

    await http.post("/_fake/faults", json={"route": "*", "fault": "500", "times": -1})
    assert (await http.delete("/_fake/faults")).json()["pending"] == []
    await http.delete("/_fake/requests")
    assert fake_fal.requests == []
    assert (await http.post("/_fake/reset")).json() == {"ok": True}


async def test_latency_slows_every_answer(fake_fal: FakeFal, http: httpx.AsyncClient) -> None:
    fake_fal.configure(latency=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await http.get("/files/none.jpg")
    assert loop.time() - started >= 0.2


async def test_files_can_redirect_or_trickle(fake_fal: FakeFal, http: httpx.AsyncClient) -> None:
    await http.post(
        "/_fake/faults",
        json={"route": "files", "fault": "redirect", "location": "http://10.0.0.1/x"},
    )
    moved = await http.get("/files/any.jpg")
    assert (moved.status_code, moved.headers["location"]) == (302, "http://10.0.0.1/x")

    fake_fal.inject("files", "trickle", interval=0.01, seconds=0.2)
    async with http.stream("GET", "/files/any.jpg") as slow:
        body = b"".join([chunk async for chunk in slow.aiter_bytes()])
    assert slow.status_code == 200
    assert 5 <= len(body) <= 25  # one byte per interval until it gives up

    assert (await http.post("/_fake/faults", json={"fault": "trickle"})).status_code == 400
    assert (
        await http.post("/_fake/faults", json={"route": "files", "fault": "redirect"})
    ).status_code == 400


# -- fal's request list, retention, keep-alives, lost answers and billing ------------------------

LIST = "/v1/models/requests/by-endpoint"


async def finished(client: FalClient, arguments: dict[str, Any]) -> str:
    request_id = await client.submit(arguments)
    await wait_for_status(client, request_id)
    return request_id


async def test_request_list_has_fal_shape_filters_and_pages(
    fake_fal: FakeFal, fal_client: FalClient, input_url: str, http: httpx.AsyncClient
) -> None:
    ids = [await finished(fal_client, edit(input_url, prompt=f"fox {n}")) for n in range(3)]
    query = {"endpoint_id": "fal-ai/flux-2-flex/edit", "limit": "2", "expand": "payloads"}

    first = (await http.get(LIST, params=query, headers=AUTH)).json()
    second = (await http.get(LIST, params=query | {"cursor": "Mg=="}, headers=AUTH)).json()

    assert (first["has_more"], first["next_cursor"]) == (True, "Mg==")
    assert (second["has_more"], second["next_cursor"]) == (False, None)
    items = first["items"] + second["items"]
    assert sorted(i["request_id"] for i in items) == sorted(ids)
    assert set(items[0]) == {
        "request_id",
        "endpoint_id",
        "sent_at",
        "started_at",
        "ended_at",
        "status_code",
        "duration",
        "json_input",
        "json_output",
    }
    assert {i["json_input"]["prompt"] for i in items} == {"fox 0", "fox 1", "fox 2"}
    assert all(i["status_code"] == 200 and i["ended_at"].endswith("Z") for i in items)
    plain = await http.get(LIST, params={"endpoint_id": "fal-ai/flux-2-flex/edit"}, headers=AUTH)
    assert "json_input" not in plain.json()["items"][0]
    one = await http.get(
        LIST, params={"endpoint_id": "fal-ai/flux-2-flex/edit", "request_id": ids[1]}, headers=AUTH
    )
    assert [i["request_id"] for i in one.json()["items"]] == [ids[1]]
    later = await http.get(
        LIST,
        params={"endpoint_id": "fal-ai/flux-2-flex/edit", "start": "2999-01-01"},
        headers=AUTH,
    )
    assert later.json()["items"] == []
    other_app = await http.get(LIST, params={"endpoint_id": "fal-ai/flux/dev"}, headers=AUTH)
    assert other_app.json()["items"] == []


@pytest.mark.parametrize(
    "params",
    [{}, {"limit": "101"}, {"status": "failed"}, {"cursor": "not a cursor"}, {"start": "soon"}],
)
async def test_request_list_refuses_bad_parameters(
    http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    query = ({"endpoint_id": "fal-ai/flux-2-flex/edit"} if params else {}) | params
    response = await http.get(LIST, params=query, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "validation_error"


async def test_request_list_needs_a_key_and_answers_in_the_platform_shape(
    fake_fal: FakeFal, http: httpx.AsyncClient
) -> None:
    query = {"endpoint_id": "fal-ai/flux-2-flex/edit"}
    anonymous = await http.get(LIST, params=query)
    fake_fal.inject("requests", "403")
    forbidden = await http.get(LIST, params=query, headers=AUTH)

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authorization_error"
    assert forbidden.status_code == 403
    assert "message" in forbidden.json()["error"]


async def test_submit_accepted_then_dropped_or_503_still_runs_is_listed_and_billed(
    fake_fal: FakeFal, input_url: str, http: httpx.AsyncClient, fal_client: FalClient
) -> None:
    fake_fal.inject("submit", "drop", after=True)
    fake_fal.inject("submit", "503", after=True)
    submit = "/fal-ai/flux-2-flex/edit"

    with pytest.raises(httpx.RemoteProtocolError):
        await http.post(submit, json=edit(input_url, prompt="dropped"), headers=AUTH)
    refused = await http.post(submit, json=edit(input_url, prompt="503"), headers=AUTH)

    assert refused.status_code == 503
    dropped_id, refused_id = fake_fal.jobs
    assert refused.headers["x-fal-request-id"] == refused_id
    for request_id in (dropped_id, refused_id):
        await wait_for_status(fal_client, request_id)
    listed = await http.get(
        LIST, params={"endpoint_id": "fal-ai/flux-2-flex/edit", "expand": "payloads"}, headers=AUTH
    )
    prompts = {i["request_id"]: i["json_input"]["prompt"] for i in listed.json()["items"]}
    assert prompts == {dropped_id: "dropped", refused_id: "503"}
    assert {entry.request_id for entry in fake_fal.billing} == {dropped_id, refused_id}


async def test_after_only_applies_to_submit_faults(fake_fal: FakeFal) -> None:
    with pytest.raises(ValueError, match="after=True"):
        fake_fal.inject("status", "503", after=True)
    with pytest.raises(ValueError, match="after=True"):
        fake_fal.inject("submit", "429", after=True)


async def test_results_expire_by_size_on_the_fake_clock(
    fake_fal: FakeFal, fal_client: FalClient, input_url: str, http: httpx.AsyncClient
) -> None:
    small = await finished(fal_client, edit(input_url))
    # An inline image makes the result JSON far over 10 KB: fal keeps those 6 minutes.
    large = await finished(fal_client, edit(input_url, sync_mode=True, image_size="square_hd"))
    assert fake_fal.jobs[large].result_bytes >= 10 * 1024 > fake_fal.jobs[small].result_bytes

    fake_fal.advance(359)
    assert (await http.get(f"/fal-ai/flux-2-flex/requests/{large}", headers=AUTH)).is_success
    fake_fal.advance(2)
    gone = await http.get(f"/fal-ai/flux-2-flex/requests/{large}", headers=AUTH)
    kept = await http.get(f"/fal-ai/flux-2-flex/requests/{small}", headers=AUTH)
    assert (gone.status_code, kept.status_code) == (404, 200)
    await http.post("/_fake/clock", json={"advance": 3600 - 361})
    gone_too = await http.get(f"/fal-ai/flux-2-flex/requests/{small}", headers=AUTH)
    assert gone_too.status_code == 404


async def test_result_lifetimes_are_set_over_the_control_api(
    fal_client: FalClient, input_url: str, http: httpx.AsyncClient
) -> None:
    config = await http.post("/_fake/config", json={"result_ttl_small": 10})
    assert config.json()["result_ttl_small"] == 10
    request_id = await finished(fal_client, edit(input_url))

    clock = await http.post("/_fake/clock", json={"advance": 11})

    assert clock.status_code == 200
    gone = await http.get(f"/fal-ai/flux-2-flex/requests/{request_id}", headers=AUTH)
    assert gone.status_code == 404


async def test_status_stream_sends_keepalive_comments_between_events(
    fake_fal: FakeFal, fal_client: FalClient, input_url: str, http: httpx.AsyncClient
) -> None:
    fake_fal.configure(stream_keepalive=0.05, processing_time=0.5)
    request_id = await fal_client.submit(edit(input_url, num_inference_steps=2))

    url = f"/fal-ai/flux-2-flex/requests/{request_id}/status/stream"
    async with http.stream("GET", url, params={"logs": "0"}, headers=AUTH) as response:
        lines = [line async for line in response.aiter_lines()]

    assert ": keep-alive" in lines
    events = [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    assert events[-1]["status"] == "COMPLETED"


async def test_billing_log_prices_every_input_and_the_output_per_started_megapixel(
    fake_fal: FakeFal, fal_client: FalClient, http: httpx.AsyncClient
) -> None:
    big = await fal_client.upload(image_bytes((1500, 1000)), "image/png", "big.png")  # 1.43 MP
    small = await fal_client.upload(image_bytes((32, 24)), "image/png", "small.png")
    output = {"width": 1024, "height": 1025}  # one pixel row over 1 MP
    billed = await finished(fal_client, edit([big, small], image_size=output))
    fake_fal.inject("submit", "content_policy")
    await finished(fal_client, edit(small))  # refused: not billed

    [entry] = fake_fal.billing
    assert entry.request_id == billed
    assert (entry.input_megapixels, entry.output_megapixels) == ((2, 1), 2)
    assert entry.micros == 5 * 50_000
    expected = quote(
        [(1500, 1000), (32, 24)], (1024, 1025), price_per_megapixel=50_000, unit=1024 * 1024
    )
    assert entry.micros == expected.micros  # bot.pricing agrees with fal's rule
    log = (await http.get("/_fake/billing")).json()
    assert log["total_micros"] == fake_fal.billed_micros == 250_000
    assert [e["request_id"] for e in log["entries"]] == [billed]
