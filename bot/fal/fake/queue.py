"""The fake's queue and its "model": jobs wait their turn (FIFO, ``concurrency`` at once), then
run through the steps fal's endpoint takes: check the input, fetch the images, step through the
inference (cancellable), apply a job fault or the content checker, and render the output
(flagged by the safety checker when the prompt says ``FAKE_FLAGGED``; see README.md)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import random
from typing import Any

from PIL import Image, UnidentifiedImageError

from bot.fal.errors import ERROR_TYPE_STATUS
from bot.fal.fake.images import EXTENSIONS, output_size, render
from bot.fal.fake.job import FakeJob
from bot.fal.fake.state import FakeState
from bot.fal.fake.validate import field_error, validate_arguments

log = logging.getLogger(__name__)

BLOCKED_WORD = "FAKE_NSFW"
#: In a prompt (with the safety checker on), the output is made, billed and returned with
#: ``has_nsfw_concepts: [true]``, the way fal's safety checker flags an image (README.md).
FLAGGED_WORD = "FAKE_FLAGGED"


def _image_size(data: bytes) -> tuple[int, int] | None:
    """The image's pixel size, or None when it is no image."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            size = probe.size
            probe.verify()
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return size


class JobQueue(FakeState):
    """Queues, runs and completes the fake's jobs."""

    def _enqueue(self, job: FakeJob) -> None:
        self.jobs[job.request_id] = job
        self._waiting.append(job)
        self._spawn(self._run(job))

    def _position(self, job: FakeJob) -> int:
        return self._waiting.index(job) if job in self._waiting else 0

    async def _cancel_queued(self, job: FakeJob) -> None:
        """Complete a job that has not started as cancelled, and let the next one go."""
        if job in self._waiting:
            self._waiting.remove(job)
        job.finish_cancelled()
        await self._notify()

    def _status_body(self, job: FakeJob, *, logs: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"status": job.state, "request_id": job.request_id}
        body |= self._urls(job.request_id)
        if job.state == "IN_QUEUE":
            body["queue_position"] = self._position(job)
        else:
            body["logs"] = list(job.logs) if logs else None
        if job.state == "COMPLETED":
            body["metrics"] = dict(job.metrics)
            if job.error is not None:
                body["error"] = job.error
                body["error_type"] = job.error_type
        return body

    async def _acquire(self, job: FakeJob) -> bool:
        """Wait for this job's turn (FIFO, ``concurrency`` at once); False if cancelled."""
        assert self._turn is not None
        async with self._turn:
            await self._turn.wait_for(
                lambda: (
                    job.state == "COMPLETED"
                    or (
                        self._running < self.concurrency
                        and bool(self._waiting)
                        and self._waiting[0] is job
                    )
                )
            )
            if job.state == "COMPLETED":
                return False
            self._waiting.popleft()
            self._running += 1
            job.start()
            return True

    async def _release(self) -> None:
        assert self._turn is not None
        async with self._turn:
            self._running -= 1
            self._turn.notify_all()

    async def _run(self, job: FakeJob) -> None:
        if self.queue_delay:
            await asyncio.sleep(self.queue_delay)
        if not await self._acquire(job):
            return
        try:
            await self._process(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fake fal failed on request_id=%s", job.request_id)
            job.finish_flat("internal_error", "Internal error in the fake", 500)
        finally:
            await self._release()

    async def _process(self, job: FakeJob) -> None:
        """One job the way fal's model takes it; each step may complete it early."""
        args = job.arguments
        if errors := validate_arguments(args):
            job.finish(422, {"detail": errors})
            return
        inputs = self._load_inputs(job, args["image_urls"])
        if inputs is None:
            return
        if not await self._step_through(job, int(args.get("num_inference_steps", 28))):
            return
        given = args.get("seed")
        seed: int = given if isinstance(given, int) else random.randrange(2**32)
        job.seed = seed
        if self._refuse(job, args):
            return
        await self._publish(job, inputs, seed)

    def _load_inputs(self, job: FakeJob, urls: list[str]) -> list[bytes] | None:
        """Every input's bytes; None when one cannot be had (the job then ends with a 422)."""
        inputs: list[bytes] = []
        for index, url in enumerate(urls):
            data = self._fetch_input(url)
            if data is None:
                problem = (f"Failed to download the file from {url[:100]}", "file_download_error")
            elif (size := _image_size(data)) is None:
                problem = ("Failed to load the image", "image_load_error")
            else:
                inputs.append(data)
                job.input_sizes.append(size)
                continue
            entry = field_error(["image_urls", index], *problem, url[:100])
            job.finish(422, {"detail": [entry]})
            return None
        return inputs

    async def _step_through(self, job: FakeJob, steps: int) -> bool:
        """Log the inference steps over ``processing_time``; False if cancelled on the way."""
        per_step = self.processing_time / steps
        for step in range(1, steps + 1):
            if per_step:
                await asyncio.sleep(per_step)
            if job.cancel_requested:
                job.finish_cancelled()
                return False
            job.log(f"step {step}/{steps}")
        return True

    @staticmethod
    def _refuse(job: FakeJob, args: dict[str, Any]) -> bool:
        """Complete the job with its job fault's or the content checker's error, if any."""
        fault = job.fault
        if fault is not None and fault.kind == "completed_with_error":
            error_type = str(fault.options.get("error_type", "request_timeout"))
            detail = str(fault.options.get("detail", "Request timed out"))
            status = int(fault.options.get("status", ERROR_TYPE_STATUS.get(error_type, 500)))
            job.finish_flat(error_type, detail, status)
            return True
        if fault is not None and fault.kind == "validation":
            opts = fault.options
            detail_entry = field_error(
                list(opts.get("loc", ["image_urls", 0])),
                str(opts.get("msg", "Image too large")),
                str(opts.get("type", "image_too_large")),
                **dict(opts.get("ctx", {"max_width": 4096, "max_height": 4096})),
            )
            job.finish(422, {"detail": [detail_entry]})
            return True
        prompt = str(args["prompt"])
        flagged = args.get("enable_safety_checker", True) and BLOCKED_WORD.lower() in prompt.lower()
        if flagged or (fault is not None and fault.kind == "content_policy"):
            entry = field_error(
                ["prompt"],
                "The content was flagged by a content checker.",
                "content_policy_violation",
                prompt,
            )
            job.finish(422, {"detail": [entry]})
            return True
        return False

    async def _publish(self, job: FakeJob, inputs: list[bytes], seed: int) -> None:
        """Render the output, store it (or inline it for ``sync_mode``) and complete the job."""
        args = job.arguments
        with Image.open(io.BytesIO(inputs[0])) as first:
            first_size = first.size
        width, height = output_size(args.get("image_size", "auto"), first_size)
        fmt = str(args.get("output_format", "jpeg"))
        output = await asyncio.to_thread(
            render,
            inputs,
            prompt=str(args["prompt"]),
            seed=seed,
            size=(width, height),
            output_format=fmt,
        )
        content_type = "image/png" if fmt == "png" else "image/jpeg"
        if args.get("sync_mode"):
            url = f"data:{content_type};base64,{base64.b64encode(output).decode()}"
            name = f"{hashlib.sha256(output).hexdigest()[:32]}.{EXTENSIONS[content_type]}"
        else:
            name = self._store(output, content_type)
            url = f"{self.url}/files/{name}"
        job.output_urls = [url] if not args.get("sync_mode") else []
        image = {
            "url": url,
            "content_type": content_type,
            "file_name": name,
            "file_size": len(output),
            "width": width,
            "height": height,
        }
        body: dict[str, Any] = {"images": [image], "seed": seed}
        if (
            args.get("enable_safety_checker", True)
            and FLAGGED_WORD.lower() in str(args["prompt"]).lower()
        ):
            body["has_nsfw_concepts"] = [True]
        job.finish(200, body)
        self._bill(job, (width, height))
