"""FalClient against the fake fal over real HTTP: URLs, retries, typed errors, no key leaks."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image

from bot.fal.client import MAX_REDIRECTS, AppId, FalClient, QueueStatus
from bot.fal.errors import (
    FalAuthError,
    FalCancelledError,
    FalContentPolicyError,
    FalDownloadError,
    FalDownloadRefusedError,
    FalDownloadTimeoutError,
    FalError,
    FalRequestListForbidden,
    FalResultGoneError,
    FalStreamError,
    FalSubmitAmbiguous,
    FalTimeoutError,
    FalUnavailableError,
    FalValidationError,
)
from bot.fal.fake import FakeFal
from bot.model import EditParams, ImageSize
from bot.secret import Secret
from bot.settings import load_settings
from tests.integration.conftest import FAKE_FAL_KEY, wait_for_status

pytestmark = pytest.mark.usefixtures("instant_retries")


def png(width: int = 32, height: int = 24, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


async def drain(stream: AsyncIterator[QueueStatus], seen: list[str]) -> None:
    """Read a status stream to its end, noting each state (kept when it raises)."""
    async for state in stream:
        seen.append(state.status)


async def upload_input(client: FalClient) -> str:
    return await client.upload(png(), "image/png", "input.png")


def small_edit(url: str, **overrides: Any) -> dict[str, Any]:
    params = EditParams(prompt="make it blue", image_size=ImageSize(None, 32, 24), seed=7)
    return params.to_fal_input([url]) | overrides


def make_client(fake: FakeFal, **kwargs: Any) -> FalClient:
    options: dict[str, Any] = {
        "queue_url": fake.url,
        "rest_url": fake.url,
        "api_url": fake.url,
        "timeout": 5.0,
        "max_attempts": 3,
        "insecure_local_origin": fake.url,
    }
    options.update(kwargs)
    key = options.pop("key", Secret(FAKE_FAL_KEY))
    return FalClient(key, **options)


async def test_edit_round_trip_uses_owner_alias_urls(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    request_id = await fal_client.submit(small_edit(url))
    seen: list[QueueStatus] = []
    result = await fal_client.wait(request_id, poll_interval=0.01, on_status=seen.append)

    assert seen[-1].status == "COMPLETED"
    assert "inference_time" in seen[-1].metrics
    assert result.request_id == request_id
    assert result.seed == 7
    [image] = result.images
    assert (image.width, image.height, image.content_type) == (32, 24, "image/jpeg")
    data = await fal_client.download(image.url, max_bytes=1_000_000)
    assert Image.open(io.BytesIO(data)).size == (32, 24)

    assert [r.path for r in fake_fal.calls("submit")] == ["/fal-ai/flux-2-flex/edit"]
    base = f"/fal-ai/flux-2-flex/requests/{request_id}"
    assert {r.path for r in fake_fal.calls("status")} == {f"{base}/status"}
    assert all(r.query == {"logs": "1"} for r in fake_fal.calls("status"))
    assert [r.path for r in fake_fal.calls("result")] == [base]
    assert not [r for r in fake_fal.requests if "/edit/requests" in r.path]
    queue_calls = [r for r in fake_fal.requests if r.route in {"submit", "status", "result"}]
    assert all(r.auth_key == FAKE_FAL_KEY for r in queue_calls)
    assert all(r.headers.get("User-Agent") == "flexbot/0.1" for r in fake_fal.requests)


async def test_upload_uses_a_cached_storage_token_and_never_the_key(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    first = await fal_client.upload(png(colour=(1, 2, 3)), "image/png", "a.png")
    second = await fal_client.upload(png(colour=(4, 5, 6)), "image/png", "b.png")

    assert first != second
    assert first.startswith(f"{fake_fal.url}/files/")
    [token_call] = fake_fal.calls("token")
    assert token_call.query == {"storage_type": "fal-cdn-v3"}
    assert token_call.auth_key == FAKE_FAL_KEY
    uploads = fake_fal.calls("upload")
    assert [u.auth_scheme for u in uploads] == ["Bearer", "Bearer"]
    assert all(u.auth_key is None for u in uploads)
    assert uploads[0].headers["X-Fal-File-Name"] == "a.png"


async def test_status_reports_queue_position_and_logs(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    fake_fal.configure(concurrency=1, processing_time=2.0)
    url = await upload_input(fal_client)
    first = await fal_client.submit(small_edit(url, num_inference_steps=4))
    second = await fal_client.submit(small_edit(url, num_inference_steps=4))

    await wait_for_status(fal_client, first, lambda s: s.status == "IN_PROGRESS")
    queued = await fal_client.status(second)
    assert (queued.status, queued.queue_position) == ("IN_QUEUE", 0)

    assert await fal_client.cancel(second) == "CANCELLATION_REQUESTED"
    assert await fal_client.cancel(first) == "CANCELLATION_REQUESTED"
    with pytest.raises(FalCancelledError) as caught:
        await fal_client.wait(second, poll_interval=0.01)
    assert caught.value.error_type == "client_cancelled"
    assert "cancelled" in caught.value.user_message


async def test_cancel_reports_already_completed_and_not_found(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    request_id = await fal_client.submit(small_edit(url))
    await fal_client.wait(request_id, poll_interval=0.01)

    assert await fal_client.cancel(request_id) == "ALREADY_COMPLETED"
    assert await fal_client.cancel("no-such-request") == "NOT_FOUND"
    assert {r.path for r in fake_fal.calls("cancel")} == {
        f"/fal-ai/flux-2-flex/requests/{request_id}/cancel",
        "/fal-ai/flux-2-flex/requests/no-such-request/cancel",
    }


async def test_stream_status_ends_with_completed(fal_client: FalClient) -> None:
    url = await upload_input(fal_client)
    request_id = await fal_client.submit(small_edit(url))
    states = [s.status async for s in fal_client.stream_status(request_id)]
    assert states[-1] == "COMPLETED"


async def test_stream_asks_for_events_and_outlives_its_idle_timeout_on_keepalives(
    fake_fal: FakeFal,
) -> None:
    # 1.5 s of work with no new event for much longer than the 0.3 s idle timeout; only
    # the keep-alive comments (every 0.05 s) keep the stream open.
    fake_fal.configure(stream_keepalive=0.05, processing_time=1.5)
    async with make_client(fake_fal, stream_idle_timeout=0.3) as client:
        url = await upload_input(client)
        request_id = await client.submit(small_edit(url, num_inference_steps=2))
        states = [s.status async for s in client.stream_status(request_id, logs=False)]

    assert states[-1] == "COMPLETED"
    [call] = fake_fal.calls("stream")
    assert call.headers["Accept"] == "text/event-stream"


async def test_silent_stream_is_a_stream_error_after_its_idle_timeout(fake_fal: FakeFal) -> None:
    fake_fal.configure(stream_keepalive=60, processing_time=3.0)
    async with make_client(fake_fal, stream_idle_timeout=0.3) as client:
        url = await upload_input(client)
        request_id = await client.submit(small_edit(url, num_inference_steps=2))
        seen: list[str] = []
        with pytest.raises(FalStreamError) as caught:
            await drain(client.stream_status(request_id, logs=False), seen)

    assert seen
    assert "COMPLETED" not in seen
    assert caught.value.request_id == request_id


async def test_stream_ending_before_completed_is_a_stream_error(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    fake_fal.configure(processing_time=1.0)
    url = await upload_input(fal_client)
    request_id = await fal_client.submit(small_edit(url, num_inference_steps=2))
    fake_fal.inject("stream", "drop", events=1)

    seen: list[str] = []
    with pytest.raises(FalStreamError, match="ended before COMPLETED"):
        await drain(fal_client.stream_status(request_id), seen)

    assert len(seen) == 1
    assert seen[0] != "COMPLETED"
    # Polling, the fallback, still sees the request through.
    assert (await fal_client.wait(request_id, poll_interval=0.01)).request_id == request_id


async def test_stream_dropped_without_an_answer_is_a_stream_error(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    fake_fal.inject("stream", "drop")
    with pytest.raises(FalStreamError, match="broke"):
        await drain(fal_client.stream_status("some-request"), [])


async def test_submit_retries_429_then_succeeds_with_one_job(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    fake_fal.inject("submit", "429", times=2, retry_after=0)

    request_id = await fal_client.submit(small_edit(url))

    assert [r.status for r in fake_fal.calls("submit")] == [429, 429, 200]
    assert fake_fal.submits == 1
    assert request_id in fake_fal.jobs


async def test_status_retries_5xx_then_succeeds(fake_fal: FakeFal, fal_client: FalClient) -> None:
    url = await upload_input(fal_client)
    request_id = await fal_client.submit(small_edit(url))
    fake_fal.inject("status", "502")
    fake_fal.inject("status", "503")

    await fal_client.status(request_id)

    assert [r.status for r in fake_fal.calls("status")][:2] == [502, 503]
    assert len(fake_fal.calls("status")) == 3


async def test_5xx_until_attempts_run_out_is_unavailable(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    fake_fal.inject("status", "500", times=-1)

    with pytest.raises(FalUnavailableError) as caught:
        await fal_client.status("some-request")

    assert len(fake_fal.calls("status")) == 3
    assert caught.value.status == 500
    assert caught.value.retryable
    assert "busy or unreachable" in caught.value.user_message


@pytest.mark.parametrize("code", ["500", "502", "504"])
async def test_submit_5xx_without_request_id_is_ambiguous_and_not_retried(
    fake_fal: FakeFal, fal_client: FalClient, code: str
) -> None:
    fake_fal.inject("submit", code, times=-1)

    with pytest.raises(FalSubmitAmbiguous) as caught:
        await fal_client.submit({"prompt": "x", "image_urls": ["u"]})

    assert len(fake_fal.calls("submit")) == 1
    assert (caught.value.cause, caught.value.status) == ("http_5xx", int(code))
    assert caught.value.request_id is None
    assert "checking" in caught.value.user_message


async def test_submit_5xx_naming_a_request_is_never_retried(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    fake_fal.inject("submit", "503", after=True)

    with pytest.raises(FalSubmitAmbiguous) as caught:
        await fal_client.submit(small_edit(url))

    [job_id] = fake_fal.jobs
    assert caught.value.request_id == job_id
    assert len(fake_fal.calls("submit")) == 1
    assert fake_fal.submits == 1  # no second job, no second bill


async def test_gateway_503_without_request_id_is_retried_into_one_job(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    fake_fal.inject("submit", "503", times=2)

    request_id = await fal_client.submit(small_edit(url))

    assert [r.status for r in fake_fal.calls("submit")] == [503, 503, 200]
    assert list(fake_fal.jobs) == [request_id]


async def test_submit_read_timeout_after_sending_is_ambiguous_and_not_retried(
    fake_fal: FakeFal,
) -> None:
    fake_fal.inject("submit", "timeout", seconds=5, after=True)
    async with make_client(fake_fal, timeout=0.3) as client:
        with pytest.raises(FalSubmitAmbiguous) as caught:
            await client.submit({"prompt": "x", "image_urls": ["u"]})

    assert len(fake_fal.calls("submit")) == 1
    assert fake_fal.submits == 1  # the job exists although the client never heard of it
    assert caught.value.cause == "read_timeout"


async def test_submit_dropped_after_accept_is_ambiguous_and_the_list_shows_the_job(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    fake_fal.inject("submit", "drop", after=True)
    before = datetime.now(UTC)

    with pytest.raises(FalSubmitAmbiguous) as caught:
        await fal_client.submit(small_edit(url, prompt="lost answer"))

    assert caught.value.cause == "connection_lost"
    assert caught.value.request_id is None
    assert [r.status for r in fake_fal.calls("submit")] == [None]  # no answer was sent
    [found] = await fal_client.list_requests(start=before, payloads=True)
    assert found.request_id in fake_fal.jobs
    assert (found.json_input or {}).get("prompt") == "lost answer"


async def test_status_timeouts_are_retried_then_raise_timeout(fake_fal: FakeFal) -> None:
    fake_fal.inject("status", "timeout", times=-1, seconds=5)
    async with make_client(fake_fal, timeout=0.2, max_attempts=2) as client:
        with pytest.raises(FalTimeoutError):
            await client.status("some-request")

    assert len(fake_fal.calls("status")) == 2


async def test_connection_refused_is_retried_then_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = f"http://127.0.0.1:{port}"
    async with FalClient(Secret(FAKE_FAL_KEY), queue_url=dead, max_attempts=2) as client:
        with pytest.raises(FalUnavailableError) as caught:
            await client.submit({"prompt": "x", "image_urls": ["u"]})
    assert caught.value.retryable


async def test_wrong_key_is_an_auth_error_without_retry(fake_fal: FakeFal) -> None:
    fake_fal.key = "the-right-key"
    async with make_client(fake_fal) as client:
        with pytest.raises(FalAuthError) as caught:
            await client.submit({"prompt": "x", "image_urls": ["u"]})

    assert len(fake_fal.calls("submit")) == 1
    assert caught.value.status == 401
    assert "key" in caught.value.user_message


async def test_missing_key_fails_before_sending(fake_fal: FakeFal) -> None:
    async with make_client(fake_fal, key=None) as client:
        with pytest.raises(FalAuthError):
            await client.submit({"prompt": "x", "image_urls": ["u"]})
    assert fake_fal.requests == []


async def test_submit_422_is_a_validation_error_without_retry(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    fake_fal.configure(validate_on_submit=True)
    url = await upload_input(fal_client)

    with pytest.raises(FalValidationError) as caught:
        await fal_client.submit(small_edit(url, guidance_scale=20))

    assert len(fake_fal.calls("submit")) == 1
    error = caught.value
    assert error.status == 422
    assert isinstance(error.detail, list)
    assert error.detail[0]["loc"] == ["body", "guidance_scale"]
    assert [e.field for e in error.errors] == ["guidance_scale"]
    assert error.summary.startswith("guidance_scale: ensure this value is less than")
    assert "(value_error.number.not_le)" in error.summary
    assert "guidance_scale" in error.user_message


async def test_validation_error_surfaces_on_result_of_a_completed_job(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    request_id = await fal_client.submit(
        small_edit(url, safety_tolerance=2, image_size={"width": 0, "height": 24})
    )

    with pytest.raises(FalValidationError) as caught:
        await fal_client.wait(request_id, poll_interval=0.01)

    assert (await fal_client.status(request_id)).error is None
    assert len(fake_fal.calls("result")) == 1
    assert {e.field for e in caught.value.errors} == {"safety_tolerance", "image_size.width"}
    assert caught.value.request_id == request_id


async def test_content_policy_violation_is_its_own_error(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    fake_fal.inject("submit", "content_policy")
    request_id = await fal_client.submit(small_edit(url))

    with pytest.raises(FalContentPolicyError) as caught:
        await fal_client.wait(request_id, poll_interval=0.01)

    assert caught.value.error_type == "content_policy_violation"
    assert caught.value.user_message == (
        "The image was blocked by fal's content filter; try a different prompt or image."
    )
    assert len(fake_fal.calls("result")) == 1


async def test_completed_with_error_is_an_error(fake_fal: FakeFal, fal_client: FalClient) -> None:
    url = await upload_input(fal_client)
    fake_fal.inject("submit", "completed_with_error")
    request_id = await fal_client.submit(small_edit(url))

    with pytest.raises(FalTimeoutError) as caught:
        await fal_client.wait(request_id, poll_interval=0.01)
    assert caught.value.error_type == "request_timeout"

    status = await fal_client.status(request_id)
    assert (status.status, status.error_type) == ("COMPLETED", "request_timeout")
    assert isinstance(status.as_error(request_id), FalTimeoutError)
    assert len(fake_fal.calls("result")) == 1  # the request's own outcome: not retried


async def test_download_refuses_more_than_max_bytes(fal_client: FalClient) -> None:
    url = await upload_input(fal_client)
    request_id = await fal_client.submit(small_edit(url, output_format="png"))
    result = await fal_client.wait(request_id, poll_interval=0.01)

    with pytest.raises(FalDownloadError) as caught:
        await fal_client.download(result.images[0].url, max_bytes=100)
    assert caught.value.error_type == "output_too_large"


async def test_download_sends_no_authorization_and_retries_5xx(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    url = await upload_input(fal_client)
    fake_fal.inject("files", "503")

    data = await fal_client.download(url, max_bytes=1_000_000)

    assert data == png()
    assert [r.status for r in fake_fal.calls("files")] == [503, 200]
    assert all(r.auth_scheme is None for r in fake_fal.calls("files"))


async def test_download_of_a_missing_file_is_not_retried(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    with pytest.raises(FalDownloadError):
        await fal_client.download(f"{fake_fal.url}/files/gone.jpg", max_bytes=1000)
    assert len(fake_fal.calls("files")) == 1


async def test_key_never_appears_in_repr_errors_or_logs(
    fake_fal: FakeFal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[FalError] = []
    async with make_client(fake_fal, timeout=0.3) as client:
        assert FAKE_FAL_KEY not in repr(client)
        url = await upload_input(client)
        # fal echoing the key back in an error body must not carry it into our errors
        fake_fal.inject("status", "500", times=-1, detail=f"bad key {FAKE_FAL_KEY}")
        fake_fal.inject("submit", "timeout", seconds=5)
        for attempt in (
            client.status("x"),
            client.submit(small_edit(url)),
            client.download(f"{fake_fal.url}/files/gone.jpg", 10),
        ):
            with pytest.raises(FalError) as caught:
                await attempt
            errors.append(caught.value)
        fake_fal.faults.clear()
        fake_fal.inject("submit", "content_policy")
        request_id = await client.submit(small_edit(url))
        with pytest.raises(FalContentPolicyError) as policy:
            await client.wait(request_id, poll_interval=0.01)
        errors.append(policy.value)
    fake_fal.key = "another-key"
    async with make_client(fake_fal) as client:
        with pytest.raises(FalAuthError) as auth:
            await client.submit(small_edit(url))
        errors.append(auth.value)

    assert len(errors) == 5
    for error in errors:
        for text in (str(error), repr(error), error.message, error.user_message, str(error.detail)):
            assert FAKE_FAL_KEY not in text
    assert "***" in errors[0].message
    assert FAKE_FAL_KEY not in caplog.text
    assert "fake-key-secret" not in caplog.text


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("fal-ai/flux-2-flex/edit", ("fal-ai/flux-2-flex", "fal-ai/flux-2-flex/edit")),
        ("fal-ai/flux-2-flex", ("fal-ai/flux-2-flex", "fal-ai/flux-2-flex")),
        ("workflows/me/flow/run/x", ("workflows/me/flow", "workflows/me/flow/run/x")),
        ("comfy/me/graph", ("comfy/me/graph", "comfy/me/graph")),
    ],
)
def test_app_id_drops_the_sub_path_for_queue_urls(endpoint: str, expected: tuple[str, str]) -> None:
    app = AppId.from_endpoint_id(endpoint)
    assert (app.queue_base, app.submit_path) == expected


def test_app_id_needs_owner_and_alias() -> None:
    with pytest.raises(ValueError, match="owner/alias"):
        AppId.from_endpoint_id("workflows/flux")


# -- where outputs may come from ----------------------------------------------------------------

SIGNATURE = "X-Amz-Signature=s3cr3t-signature"


async def stored_file(client: FalClient) -> str:
    """The fake's URL of an uploaded file: a download that would succeed if allowed."""
    return await upload_input(client)


async def test_output_on_a_host_off_the_list_is_refused_without_a_request(
    fake_fal: FakeFal,
) -> None:
    async with make_client(fake_fal, insecure_local_origin=None) as client:
        url = await stored_file(client)  # http://127.0.0.1:PORT/files/...
        with pytest.raises(FalDownloadRefusedError) as caught:
            await client.download(f"{url}?{SIGNATURE}", max_bytes=1_000_000)
    assert fake_fal.calls("files") == []
    assert "fal_result_hosts" in caught.value.user_message
    assert "s3cr3t" not in str(caught.value)


async def test_plain_http_is_refused_even_on_an_allowed_host(fake_fal: FakeFal) -> None:
    async with make_client(
        fake_fal, insecure_local_origin=None, result_hosts=("localhost", "fal.media")
    ) as client:
        url = (await stored_file(client)).replace("127.0.0.1", "localhost")
        with pytest.raises(FalDownloadRefusedError, match="not an https URL"):
            await client.download(url, max_bytes=1_000_000)
    assert fake_fal.calls("files") == []


@pytest.mark.parametrize(
    "host", ["fal.media.example.invalid", "evilfal.media", "v3.fal.media@10.0.0.1"]
)
async def test_only_result_hosts_and_their_subdomains_are_trusted(
    fake_fal: FakeFal, host: str
) -> None:
    async with make_client(fake_fal) as client:
        with pytest.raises(FalDownloadRefusedError, match="not one of fal_result_hosts"):
            await client.download(f"https://{host}/files/x.jpg", max_bytes=1000)


@pytest.mark.parametrize(
    ("location", "extra_hosts"),
    [
        ("internal", ()),  # another server on 127.0.0.1, as a redirect target
        (f"http://10.0.0.1/x.jpg?{SIGNATURE}", ()),
        (f"http://169.254.169.254/latest/meta-data/?{SIGNATURE}", ()),
        # allowed host names, so only the address check can refuse them:
        (f"https://169.254.169.254/latest/meta-data/?{SIGNATURE}", ("169.254.169.254",)),
        (f"https://10.1.2.3/x.jpg?{SIGNATURE}", ("10.1.2.3",)),
        (f"https://localhost:1/x.jpg?{SIGNATURE}", ("localhost",)),
    ],
)
async def test_redirect_to_a_private_address_is_refused(
    fake_fal: FakeFal, location: str, extra_hosts: tuple[str, ...]
) -> None:
    async with FakeFal() as internal:
        target = f"{internal.url}/files/secret.jpg" if location == "internal" else location
        hosts = ("fal.media", *extra_hosts)
        async with make_client(fake_fal, result_hosts=hosts) as client:
            url = await stored_file(client)
            fake_fal.inject("files", "redirect", location=target)
            with pytest.raises(FalDownloadRefusedError) as caught:
                await client.download(url, max_bytes=1_000_000)
        assert internal.requests == []
    assert [r.status for r in fake_fal.calls("files")] == [302]
    error = caught.value
    for text in (str(error), repr(error), error.user_message):
        assert "s3cr3t" not in text
        assert "meta-data" not in text


async def test_redirects_are_followed_on_the_same_origin_up_to_a_limit(
    fake_fal: FakeFal,
) -> None:
    async with make_client(fake_fal) as client:
        url = await stored_file(client)
        fake_fal.inject("files", "redirect", times=MAX_REDIRECTS, location=url, status=307)
        assert await client.download(url, max_bytes=1_000_000) == png()
        assert len(fake_fal.calls("files")) == MAX_REDIRECTS + 1

        fake_fal.requests.clear()
        fake_fal.inject("files", "redirect", times=-1, location=url)
        with pytest.raises(FalDownloadRefusedError, match="redirected more than"):
            await client.download(url, max_bytes=1_000_000)
    assert len(fake_fal.calls("files")) == MAX_REDIRECTS + 1  # not retried


async def test_trickling_download_fails_at_the_deadline(fake_fal: FakeFal) -> None:
    deadline = 0.5
    # The per-read timeout never fires: a byte arrives every 20 ms.
    async with make_client(fake_fal, timeout=5.0, download_deadline=deadline) as client:
        url = await stored_file(client)
        fake_fal.inject("files", "trickle", interval=0.02)
        started = time.monotonic()
        with pytest.raises(FalDownloadTimeoutError) as caught:
            await asyncio.wait_for(client.download(url, max_bytes=1_000_000), deadline + 2.0)
        elapsed = time.monotonic() - started
    assert deadline - 0.05 <= elapsed < deadline + 0.5
    assert "took too long" in caught.value.user_message


def test_local_origin_must_be_a_loopback_address() -> None:
    for origin in ("http://fal.example:8000", "http://10.0.0.1:8000", "https://v3.fal.media"):
        with pytest.raises(ValueError, match="loopback"):
            FalClient(None, insecure_local_origin=origin)


async def test_shipped_settings_download_only_from_fal_and_a_fake_only_when_wired(
    fake_fal: FakeFal,
) -> None:
    settings = load_settings(config_path=None, environ={})
    async with FalClient.from_settings(settings, Secret(FAKE_FAL_KEY)) as production:
        with pytest.raises(FalDownloadRefusedError):
            await production.download(f"{fake_fal.url}/files/x.jpg", max_bytes=1000)
    assert fake_fal.calls("files") == []
    async with FalClient.from_settings(
        settings, Secret(FAKE_FAL_KEY), fake_url=fake_fal.url
    ) as dry_run:
        url = await stored_file(dry_run)
        assert await dry_run.download(url, max_bytes=1_000_000) == png()


# -- the Platform API's request list ------------------------------------------------------------


async def finished_edits(client: FalClient, prompts: list[str]) -> list[str]:
    url = await upload_input(client)
    ids = [await client.submit(small_edit(url, prompt=p)) for p in prompts]
    for request_id in ids:
        await wait_for_status(client, request_id)
    return ids


async def test_list_requests_follows_every_page_into_typed_records(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = await finished_edits(fal_client, ["one", "two", "three"])

    records = await fal_client.list_requests(
        start=before, end=datetime.now(UTC), payloads=True, page_size=2
    )

    assert sorted(r.request_id for r in records) == sorted(ids)
    by_id = {r.request_id: r for r in records}
    prompts = [(by_id[i].json_input or {}).get("prompt") for i in ids]
    assert prompts == ["one", "two", "three"]
    for record in records:
        assert (record.status_code, record.outcome) == (200, "success")
        assert record.endpoint_id == "fal-ai/flux-2-flex/edit"
        assert record.sent_at is not None
        assert record.ended_at is not None
        assert before <= record.sent_at <= record.ended_at
    calls = fake_fal.calls("requests")
    assert [c.query.get("cursor") for c in calls] == [None, "Mg=="]
    assert all(c.path == "/v1/models/requests/by-endpoint" for c in calls)
    assert all(c.auth_key == FAKE_FAL_KEY for c in calls)
    first = calls[0].query
    assert (first["endpoint_id"], first["limit"], first["expand"]) == (
        "fal-ai/flux-2-flex/edit",
        "2",
        "payloads",
    )
    assert first["start"] == before.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_list_requests_filters_by_request_id_and_outcome(
    fake_fal: FakeFal, fal_client: FalClient
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    [good] = await finished_edits(fal_client, ["fine"])
    fake_fal.inject("submit", "validation")
    [refused] = await finished_edits(fal_client, ["refused"])

    [only] = await fal_client.list_requests(start=before, request_id=good)
    failed = await fal_client.list_requests(start=before, status="user_error")

    assert only.request_id == good
    assert only.json_input is None  # no payloads unless asked
    assert [(r.request_id, r.status_code, r.outcome) for r in failed] == [
        (refused, 422, "user_error")
    ]


@pytest.mark.parametrize("code", ["401", "403"])
async def test_a_key_refused_the_request_list_is_its_own_error(
    fake_fal: FakeFal, fal_client: FalClient, code: str
) -> None:
    fake_fal.inject("requests", code)

    with pytest.raises(FalRequestListForbidden) as caught:
        await fal_client.list_requests()

    assert caught.value.status == int(code)
    assert isinstance(caught.value, FalAuthError)
    assert "request list" in caught.value.user_message
    assert len(fake_fal.calls("requests")) == 1  # not retried


async def test_from_settings_points_the_request_list_at_the_fake_or_at_fal(
    fake_fal: FakeFal,
) -> None:
    settings = load_settings(config_path=None, environ={})
    assert settings.fal_api_url == "https://api.fal.ai"
    async with FalClient.from_settings(
        settings, Secret(FAKE_FAL_KEY), fake_url=fake_fal.url
    ) as dry_run:
        assert await dry_run.list_requests() == []
    assert len(fake_fal.calls("requests")) == 1


async def test_an_expired_result_is_gone(fake_fal: FakeFal, fal_client: FalClient) -> None:
    [request_id] = await finished_edits(fal_client, ["kept an hour"])
    fake_fal.advance(3601)

    with pytest.raises(FalResultGoneError) as caught:
        await fal_client.result(request_id)

    assert (caught.value.status, caught.value.request_id) == (404, request_id)
    assert len(fake_fal.calls("result")) == 1
