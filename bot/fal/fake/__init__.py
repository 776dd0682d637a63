"""A fake fal.ai: a real HTTP server with the queue, storage and CDN contract of the real one.

One server answers everything ``FalClient`` talks to (point ``queue_url``, ``rest_url`` and
``api_url`` at ``FakeFal.url``; ``FalClient.from_settings(..., fake_url=fake.url)`` does):

    POST /storage/auth/token?storage_type=fal-cdn-v3   Key auth -> {token, token_type, base_url,
                                                        expires_at}
    POST /files/upload                                  Bearer token, raw bytes -> {access_url}
    GET  /files/{name}                                  uploads and outputs, no auth
    POST /fal-ai/flux-2-flex/edit                       Key auth -> submit response
    GET  /fal-ai/flux-2-flex/requests/{id}/status       ?logs=1; 202 while queued/running, 200 done
    GET  /fal-ai/flux-2-flex/requests/{id}/status/stream   the same as server-sent events
    GET  /fal-ai/flux-2-flex/requests/{id}              the output, or the request's error
    PUT  /fal-ai/flux-2-flex/requests/{id}/cancel       202 CANCELLATION_REQUESTED, 400
                                                        ALREADY_COMPLETED, 404 NOT_FOUND
    GET  /v1/models/requests/by-endpoint               fal's Platform API request list: every
                                                        request accepted, lost answers included
                                                        (contract and guesses: ``platform``)

Status, result and cancel live under ``owner/alias`` without the ``/edit`` sub-path, as on the
real queue; ``/fal-ai/flux-2-flex/edit/requests/...`` is a 404, so a client that builds the
URLs wrong fails against the fake too.

Choices where fal's behaviour is not documented (see shared/reference/fal-queue-api.md):

- Invalid input is reported the way fal's queue does it: the submit succeeds, the request ends
  ``COMPLETED`` with no ``error`` in its status, and ``GET`` on the result answers 422 with a
  ``detail`` list. ``validate_on_submit=True`` makes the submit itself answer 422 instead.
- At most ``MAX_IMAGES`` (8) input images; custom sizes from 1 to 14142 pixels per side.
- Inputs must be URLs this server handed out (``/files/...``) or, unless
  ``accept_data_uris=False``, base64 ``data:`` URIs. Anything else is a ``file_download_error``:
  the fake never touches the network.
- A cancelled request ends ``COMPLETED`` with ``error_type`` ``client_cancelled``; its result is
  499 ``{"detail": ..., "error_type": "client_cancelled"}``.
- A prompt containing ``BLOCKED_WORD`` fails the content checker (with the safety checker on),
  so end-to-end tests can trigger it without the control API.
- A prompt containing ``FLAGGED_WORD`` (``FAKE_FLAGGED``) succeeds, is billed, and its output
  carries ``has_nsfw_concepts: [true]``: fal's safety checker flagging an image (README.md).
- Result retention (fal.ai/docs queue result: "1 hour", "10 KB or larger ... 6 minutes"): a
  result expires ``result_ttl_small`` (3600 s) after it completed, ``result_ttl_large`` (360 s)
  when its JSON is ``RESULT_LARGE_BYTES`` or more, on the fake's clock (``now()``; tests move it
  with ``advance(seconds)``, no sleeping). An expired result answers 404 ``{"detail": "Request
  not found"}``: fal does not document that answer, 404 is a guess. The status stays COMPLETED.
- The status stream sends ``: keep-alive`` comments after ``stream_keepalive`` (15 s, as fal)
  seconds without an event.
- Billing (``billing``, ``billed_micros``; module ``billing``): each request that completed with
  a 2xx output, priced as fal prices flux-2-flex/edit, $0.05 per started megapixel of each input
  and of the output, so a test can compare what fal billed with the ledger.

Test control, in process (``fake.inject(...)``) or over HTTP for a fake in another process:

    POST   /_fake/faults     {"route": "status", "fault": "503", "times": 2, ...options}
    GET    /_fake/faults     the faults still pending
    DELETE /_fake/faults     drop them all
    GET    /_fake/requests   the request log (``RecordedRequest.to_dict``)
    DELETE /_fake/requests   clear the log
    GET    /_fake/jobs       every request id with its state, seed and counters
    POST   /_fake/config     {"latency", "queue_delay", "processing_time", "concurrency",
                              "validate_on_submit", "result_ttl_small", "result_ttl_large",
                              "stream_keepalive", "list_unfinished",
                              "price_per_megapixel_micros"}: change them while running
    POST   /_fake/clock      {"advance": seconds}: move the fake's clock -> {"now": unix seconds}
    GET    /_fake/billing    {"total_micros", "entries": [BillingEntry.to_dict()]}
    POST   /_fake/reset      faults, log, finished jobs, billing and stored files all cleared

Fault routes: ``submit``, ``status``, ``stream``, ``result``, ``cancel``, ``token``, ``upload``,
``files``, ``requests`` (the request list) or ``*`` (any). HTTP faults answer the next matching
call(s) instead of the handler: ``"401"``, ``"403"``, ``"422"``, ``"429"`` (option ``retry_after``),
``"500"``, ``"502"``, ``"503"``, ``"504"`` (option ``error_type`` makes it look like the request's
own outcome rather than the gateway's), ``"timeout"`` (hang for ``seconds``, default an hour; on
``submit`` with ``after=True`` the job is created first, i.e. the response is lost), ``"drop"``
(close the connection without an answer), ``"redirect"`` (answer ``status``, default 302, with
``Location: <location>``: e.g. a redirect to a private address) and, on ``files`` only,
``"trickle"`` (a 200 that sends one byte every ``interval`` seconds, default 0.05, for ``seconds``,
default an hour: a download that never finishes but never goes quiet long enough for a read
timeout). On ``submit``, ``after=True`` with ``"drop"``, ``"500"``, ``"502"``, ``"503"`` or
``"504"`` creates the job (fal runs and bills it) and then drops the connection, or answers that 5xx
with ``x-fal-request-id``. On ``stream``, ``"drop"`` with ``events=N`` sends N events and ends the
stream before COMPLETED. On ``requests``, ``"401"``/``"403"`` answer in the Platform API's error
shape. Outcome faults apply to the next submitted job(s), whatever route is named:
``"content_policy"``, ``"validation"`` (options ``loc``, ``msg``, ``type``, ``ctx``) and
``"completed_with_error"`` (options ``error_type``, default ``request_timeout``, and ``detail``):
the status reports ``COMPLETED`` with ``error`` and the result answers the matching HTTP error.

The package, by concern: ``server`` (``FakeFal``: routes, request log, start and stop),
``routes`` (fal's queue and storage endpoints), ``platform`` (the request list), ``billing``
(what fal would bill), ``queue`` (scheduling and the fake "model"), ``job`` (one
request's state), ``validate`` (the endpoint's input checks), ``images`` (deterministic
outputs), ``faults`` (fault injection), ``control`` (the test controls) and ``state`` (what
they all share).
"""

from bot.fal.fake.billing import PRICE_PER_MEGAPIXEL_MICROS, BillingEntry
from bot.fal.fake.faults import AFTER_FAULTS, HTTP_FAULTS, JOB_FAULTS, ROUTES, Fault, Faults
from bot.fal.fake.images import AUTO_MAX_PIXELS, output_size, render
from bot.fal.fake.job import FakeJob
from bot.fal.fake.platform import LIST_PATH
from bot.fal.fake.queue import BLOCKED_WORD
from bot.fal.fake.server import FakeFal, serve
from bot.fal.fake.state import (
    APP_ID,
    RESULT_LARGE_BYTES,
    RESULT_TTL_LARGE,
    RESULT_TTL_SMALL,
    STREAM_KEEPALIVE,
    RecordedRequest,
)
from bot.fal.fake.validate import ERRORS_URL, MAX_SIDE, validate_arguments

__all__ = [
    "AFTER_FAULTS",
    "APP_ID",
    "AUTO_MAX_PIXELS",
    "BLOCKED_WORD",
    "ERRORS_URL",
    "HTTP_FAULTS",
    "JOB_FAULTS",
    "LIST_PATH",
    "MAX_SIDE",
    "PRICE_PER_MEGAPIXEL_MICROS",
    "RESULT_LARGE_BYTES",
    "RESULT_TTL_LARGE",
    "RESULT_TTL_SMALL",
    "ROUTES",
    "STREAM_KEEPALIVE",
    "BillingEntry",
    "FakeFal",
    "FakeJob",
    "Fault",
    "Faults",
    "RecordedRequest",
    "output_size",
    "render",
    "serve",
    "validate_arguments",
]
