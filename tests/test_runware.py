"""The Runware backend against the emulator, over real loopback sockets (no transport mocks)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from PIL import Image as PILImage

from shotflow.backends import Generation, Reference, Request, Services
from shotflow.backends.runware import UPLOAD_MEMO_PREFIX, UPLOAD_TTL, RunwareBackend, _dotenv
from shotflow.errors import BackendError, ConfigError, RequestRejected, TransientError
from shotflow.testing import Emulator, Fault

KEY = "test-key-123"
FAST = {"retry_base": 0.01, "poll_initial": 0.01, "poll_max": 0.05, "batch_window": 0.005}


class FakeJournal:
    def __init__(self, records: dict | None = None):
        self.records: dict[str, dict] = dict(records or {})
        self.log: list[tuple] = []

    def pending(self, key):
        return self.records.get(key)

    def begin(self, key, record):
        self.records[key] = dict(record)
        self.log.append(("begin", key, dict(record)))

    def finish(self, key):
        self.records.pop(key, None)
        self.log.append(("finish", key))


class FakeMemo:
    def __init__(self):
        self.values: dict[str, object] = {}
        self.puts: list[tuple] = []

    def get(self, name):
        return self.values.get(name)

    def put(self, name, value, ttl_seconds=None):
        self.values[name] = value
        self.puts.append((name, value, ttl_seconds))

    def drop(self, name):
        self.values.pop(name, None)


@pytest.fixture(params=["lenient", "strict"])
def mode(request) -> str:
    """Every test that talks to the emulator runs against both of its modes."""
    return request.param


@pytest.fixture
def emu(monkeypatch, mode):
    with Emulator(api_key=KEY, strict=mode == "strict") as emulator:
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        monkeypatch.setenv("RUNWARE_API_URL", emulator.url)
        yield emulator


@pytest.fixture
def serve(monkeypatch, mode):
    """Start an emulator of the test's mode with other options: ``with serve(latency=0.5) as emu``."""

    started: list[Emulator] = []

    def start(**options) -> Emulator:
        emulator = Emulator(api_key=KEY, strict=mode == "strict", **options)
        started.append(emulator)
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        monkeypatch.setenv("RUNWARE_API_URL", emulator.start().url)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


def backend(tmp_path: Path, *, journal=None, memo=None, **settings) -> RunwareBackend:
    return RunwareBackend(Services(project_dir=tmp_path, journal=journal, memo=memo, settings={**FAST, **settings}))


def request(prompt: str = "wide shot of a lighthouse at dusk", **fields) -> Request:
    values = {
        "key": hashlib.sha256(prompt.encode()).hexdigest(),
        "node_id": "arrival/wide",
        "model": "runway:4@1",
        "prompt": prompt,
        "width": 1360,
        "height": 768,
        **fields,
    }
    return Request(**values)


def reference(colour=(200, 40, 40), *, tag: str | None = None, remote: str | None = None) -> Reference:
    out = io.BytesIO()
    PILImage.new("RGB", (64, 48), colour).save(out, "PNG")
    data = out.getvalue()
    remote_ids = {"runware": remote} if remote else {}
    digest = hashlib.sha256(data).hexdigest()
    return Reference(data=data, sha256=digest, tag=tag, source="refs/x.png", remote_ids=remote_ids)


def run(b: RunwareBackend, *requests: Request) -> list:
    """Generate ``requests`` concurrently; each result is a Generation or the exception it raised."""

    async def main():
        try:
            return await asyncio.gather(*(b.generate(r) for r in requests), return_exceptions=True)
        finally:
            await b.aclose()

    return asyncio.run(main())


def one(b: RunwareBackend, r: Request) -> Generation:
    (result,) = run(b, r)
    if isinstance(result, BaseException):
        raise result
    return result


def inference_bodies(emu: Emulator) -> list[dict]:
    return [body for body in emu.stats.bodies if body.get("taskType") == "imageInference"]


def requests_of(emu: Emulator) -> list[list[dict]]:
    """The tasks of each POST, in arrival order."""
    bodies, out, at = emu.stats.bodies, [], 0
    for size in emu.stats.batch_sizes:
        out.append(list(bodies[at : at + size]))
        at += size
    return out


def reference_png(size: tuple[int, int], colour=(30, 120, 200)) -> Reference:
    out = io.BytesIO()
    PILImage.new("RGB", size, colour).save(out, "PNG")
    data = out.getvalue()
    return Reference(data=data, sha256=hashlib.sha256(data).hexdigest(), source="refs/big.png")


# ── generation ──────────────────────────────────────────────────────────────────────────────


def test_every_take_comes_with_seed_cost_and_uuid_and_is_billed_once(emu, tmp_path):
    generation = one(backend(tmp_path, output_type="URL"), request(takes=3))
    assert generation.backend == "runware" and len(generation.images) == 3
    for image in generation.images:
        picture = PILImage.open(io.BytesIO(image.data))
        assert (picture.format, picture.size) == ("PNG", (1360, 768))
        assert image.cost == 0.08 and image.url.startswith(emu.base_url) and image.remote_id in image.url
    assert len({image.seed for image in generation.images}) == 3
    assert generation.cost == pytest.approx(0.24)
    (body,) = inference_bodies(emu)
    assert generation.task_id == body["taskUUID"]
    assert body["numberResults"] == 3 and body["includeCost"] is True
    delivery = [body[k] for k in ("outputType", "deliveryMethod", "outputFormat", "outputQuality")]
    assert delivery == ["URL", "async", "PNG", 95]  # async by default, as Runware's own SDKs
    assert "inputs" not in body
    assert emu.stats.billed_images == {body["taskUUID"]: 3} and emu.stats.downloads == 3


def test_the_defaults_are_async_delivery_and_base64_images(emu, tmp_path):
    generation = one(backend(tmp_path), request())
    (body,) = inference_bodies(emu)
    assert (body["deliveryMethod"], body["outputType"]) == ("async", "base64Data")
    assert emu.stats.tasks["getResponse"] >= 1
    assert generation.images[0].url is None and emu.stats.downloads == 0


def test_sync_delivery_gets_its_images_in_the_answer(emu, tmp_path):
    generation = one(backend(tmp_path, delivery="sync"), request(takes=2))
    assert len(generation.images) == 2 and inference_bodies(emu)[0]["deliveryMethod"] == "sync"
    assert "getResponse" not in emu.stats.tasks and emu.stats.billed == 1


@pytest.mark.parametrize("output_type", ["base64Data", "dataURI"])
def test_inline_output_types_decode_to_the_same_bytes_as_a_download(emu, tmp_path, output_type):
    downloaded = one(backend(tmp_path, output_type="URL"), request("same frame"))
    inline = one(backend(tmp_path, output_type=output_type), request("same frame"))
    assert inline.images[0].data == downloaded.images[0].data
    assert inline.images[0].url is None and emu.stats.downloads == 1


def test_request_fields_and_options_reach_the_task(emu, tmp_path):
    one(
        backend(tmp_path),
        request(
            output_format="JPG",
            output_quality=80,
            safety={"checkContent": True, "mode": "fast"},
            provider_settings={"runway": {"contentModeration": {"publicFigureThreshold": "low"}}},
            options={
                "ttl": 3600,
                "webhookURL": "https://example.com/hook?s=1",
                "uploadEndpoint": "https://example.com/u",
            },
        ),
    )
    (body,) = inference_bodies(emu)
    assert body["safety"] == {"checkContent": True, "mode": "fast"}
    assert body["providerSettings"]["runway"]["contentModeration"]["publicFigureThreshold"] == "low"
    assert [body[k] for k in ("ttl", "webhookURL", "uploadEndpoint")] == [
        3600,
        "https://example.com/hook?s=1",
        "https://example.com/u",
    ]
    assert (body["outputFormat"], body["outputQuality"]) == ("JPG", 80)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"width": 1000, "height": 1000}, "1000×1000"),
        ({"prompt": ""}, "positivePrompt"),
        ({"model": "runway:4@2"}, "at least one reference"),
        ({"takes": 21}, "numberResults"),
        ({"references": (reference(tag="x"),), "tagged": True}, "tag"),
        ({"options": {"colour": "red"}}, "colour"),
    ],
)
def test_an_invalid_request_is_refused_before_any_request(emu, tmp_path, fields, words):
    (error,) = run(backend(tmp_path), request(**fields))
    assert isinstance(error, RequestRejected) and words in str(error)
    assert emu.stats.requests == 0 and emu.stats.uploads == 0


# ── batching and polling ────────────────────────────────────────────────────────────────────


def test_every_task_in_flight_is_polled_in_one_request(serve, tmp_path):
    emu = serve(latency=0.3)
    results = run(backend(tmp_path, max_in_flight=8), *(request(f"shot {i}") for i in range(6)))
    assert all(isinstance(r, Generation) for r in results)
    polls = [tasks for tasks in requests_of(emu) if tasks[0]["taskType"] == "getResponse"]
    assert max(len(tasks) for tasks in polls) == 6  # one request asks about all six
    # each getResponse request asks about several tasks: far fewer requests than tasks polled
    assert len(polls) < sum(len(tasks) for tasks in polls) / 2
    assert emu.stats.billed == 6


def test_poll_timing_learns_how_long_a_model_takes(serve, tmp_path):
    emu = serve(latency=0.4)
    b = backend(tmp_path, max_in_flight=4, poll_initial=0.05, poll_min=0.01)

    async def main():
        try:
            first = await b.generate(request("first"))
            emu.reset()
            started = time.monotonic()
            second = await b.generate(request("second"))
            return first, second, time.monotonic() - started, b.transport().poller.estimate("runway:4@1")
        finally:
            await b.aclose()

    _, _, elapsed, estimate = asyncio.run(main())
    assert 0.3 <= estimate < 0.7  # from the acknowledgment: the task started a little earlier
    # knowing the task time, it asks just before it is due and then often: it is not late by
    # whole poll steps (bench/makespan.py measures async delivery as a whole; the margin is a busy
    # machine's)
    assert 0.4 <= elapsed < 0.4 + 1.5


def test_the_poll_schedule_before_and_after_learning():
    from collections import deque

    from shotflow.backends._runware_http import FIRST, STEP, Poller, _Watch
    from shotflow.backends.runware import Settings

    poller = Poller(transport=None, settings=Settings(poll_initial=0.05, poll_min=0.0025, poll_max=10))
    watch = _Watch("t", "runway:4@1", since=100.0)
    # unknown: first after poll_initial, then ×1.25
    assert poller._first_due(watch) == pytest.approx(100.05)
    assert [poller._step(_Watch("t", "m", 0, polls=n)) for n in range(3)] == pytest.approx([0.05, 0.0625, 0.078125])
    # known: the first quartile of the last durations, robust to one odd quick task
    poller._durations["runway:4@1"] = deque([12.0, 10.0, 11.0, 0.5, 10.5, 11.5, 12.5, 13.0])
    assert poller.estimate("runway:4@1") == 10.5
    assert poller._first_due(watch) == pytest.approx(100 + FIRST * 10.5)  # a little before it
    watch.last = 100 + FIRST * 10.5  # asked then
    assert poller._step(watch) == pytest.approx(STEP * 10.5)
    watch.timed_polls = 5
    assert poller._step(watch) == pytest.approx(STEP * 10.5 * 1.1**4)  # each pause a tenth longer
    watch.timed_polls = 200
    assert poller._step(watch) == 10  # never above poll_max
    poller._durations["runway:4@1"] = deque([0.05] * 8)
    assert poller._step(_Watch("t", "runway:4@1", 0, last=FIRST * 0.05)) == 0.0025  # never below poll_min


@pytest.mark.parametrize("time", [10.0, 60.0])  # within poll_max (10 s), and longer
@pytest.mark.parametrize("known", ["learned", "remembered"])
def test_the_pauses_stay_fine_up_to_a_tasks_expected_end_and_grow_only_past_it(known, time):
    from collections import deque

    from shotflow.backends._runware_http import FIRST, STEP, Poller, _Watch
    from shotflow.backends.runware import Settings

    settings = Settings(poll_initial=0.05, poll_min=0.0001, poll_max=10)
    poller = Poller(transport=None, settings=settings, hints={"m": time} if known == "remembered" else None)
    if known == "learned":
        poller._durations["m"] = deque([time] * 8)
    watch = _Watch("t", "m", since=0.0)
    asked, due = [], poller._first_due(watch)
    while due < time * 1.2:  # the polls of a task that is never done, as the poller would send them
        poller._asked(watch, due)
        asked.append(due)
        due = poller._due_after(watch)
        # the step is also the slack by which a due poll joins another's request: never the long way
        # to the window, or every request on the way would carry this task
        if known == "learned":
            assert poller._step(watch) <= max(0.0001, STEP * time) * 1.1 ** max(0, watch.timed_polls - 1) + 1e-9
    pauses = list(itertools.pairwise(asked))
    fine = [b - a for a, b in pauses if a >= FIRST * time - 1e-9 and b <= time + 1e-9]
    assert len(fine) >= 3 and all(p == pytest.approx(STEP * time) for p in fine)  # none grew before the end
    # a task that ends on time is seen by the first poll at or after its end: at most one fine step late
    assert min(a for a in asked if a >= time) - time <= STEP * time + 1e-9
    # a task longer than poll_max: asked every poll_max at most on the way, and once as its window opens
    early = [a for a in asked if a < FIRST * time - 1e-9]
    assert all(b - a <= 10 + 1e-9 for a, b in pauses) and any(a == pytest.approx(FIRST * time) for a in asked)
    if known == "learned":  # (a remembered time is asked about on the unknown schedule too, from 0.05 s on)
        assert len(early) <= max(1, 2 * time / 10)
    late = [b - a for a, b in pauses if a >= time]
    # past it, each pause a tenth longer than the last
    assert len(late) >= 3 and all(y == pytest.approx(x * 1.1) for x, y in itertools.pairwise(late))


def test_a_remembered_time_is_polled_on_as_well_never_later_than_not_knowing_it():
    from shotflow.backends._runware_http import FIRST, STEP, Poller, _Watch
    from shotflow.backends.runware import Settings

    settings = Settings(poll_initial=0.05, poll_min=0.0025, poll_max=10)
    blank = Poller(transport=None, settings=settings)
    hinted = Poller(transport=None, settings=settings, hints={"m": 0.3})
    # the first poll: the unknown schedule's (sooner than 0.9 × 0.3 s)
    assert hinted._first_due(_Watch("t", "m", since=0.0)) == pytest.approx(0.05)
    # before the remembered time: whichever is sooner, the unknown step or the remembered time
    early = _Watch("t", "m", since=0.0, polls=2, last=0.1125)
    assert blank._step(early) == pytest.approx(0.078125)
    assert hinted._step(early) == pytest.approx(0.078125)  # 0.19 comes before FIRST × 0.3
    later = _Watch("t", "m", since=0.0, polls=3, last=0.19)
    assert blank._step(later) == pytest.approx(0.09765625)  # would ask at 0.29
    assert hinted._step(later) == pytest.approx(FIRST * 0.3 - 0.19)  # asks at FIRST × 0.3
    # from the remembered time on, small steps, as for a known time
    there = _Watch("t", "m", since=0.0, polls=4, last=FIRST * 0.3)
    assert hinted._step(there) == pytest.approx(STEP * 0.3)
    # a remembered time far too long is never waited for: the unknown schedule still asks
    wrong = Poller(transport=None, settings=settings, hints={"m": 60.0})
    for polls, last in ((0, 0.0), (3, 0.19), (6, 0.8)):
        w = _Watch("t", "m", since=0.0, polls=polls, last=last)
        assert wrong._step(w) == pytest.approx(blank._step(w))
    # once this run has timed a task of the model, the remembered time is not used
    hinted._durations["m"] = __import__("collections").deque([0.5])
    assert hinted._first_due(_Watch("t", "m", since=0.0)) == pytest.approx(FIRST * 0.5)


def test_the_times_a_run_learned_are_the_next_runs_first_estimate(serve, tmp_path):
    from shotflow.backends.runware import TASK_TIMES

    serve(latency=0.1)

    one(backend(tmp_path), request("one"))
    times = json.loads(_usercache_payload(TASK_TIMES))["127.0.0.1"]["runway:4@1"]
    assert len(times) == 1 and 0.05 < times[0] < 2  # this run's: what an earlier one learned is replaced

    async def hints_of_a_new_run():
        b = backend(tmp_path)
        try:
            return dict(b.transport().poller._hints)
        finally:
            await b.aclose()

    assert asyncio.run(hints_of_a_new_run())["runway:4@1"] == pytest.approx(times[0])


def test_a_task_times_file_that_is_forged_malformed_or_absurd_is_only_a_missing_hint(monkeypatch, tmp_path):
    from shotflow import _usercache
    from shotflow.backends import runware
    from shotflow.backends._runware_http import Poller, _Watch

    cache, key = tmp_path / "usercache", tmp_path / "key" / "k"
    monkeypatch.setenv("SHOTFLOW_USER_CACHE", str(cache))
    monkeypatch.setenv("SHOTFLOW_USER_KEY", str(key))
    _usercache.user_cache_dir.cache_clear()
    _usercache._key.cache_clear()
    try:
        assert runware._task_times() == {}  # no file
        cache.mkdir(parents=True)
        (cache / runware.TASK_TIMES).write_text('{"127.0.0.1": {"runway:4@1": [0.001]}}')  # not sealed: forged
        assert runware._task_times() == {}
        (cache / runware.TASK_TIMES).write_bytes(b"\0" * (200 * 1024))  # over the 64 KB bound
        assert runware._task_times() == {}
        for payload in (b"not json", b"[1, 2]", b'{"h": 5}', b'{"h": {"m": "x"}}'):
            _usercache.store(runware.TASK_TIMES, payload)
            assert runware._task_times() in ({}, {"h": {}})
        hostile = {"h": {"m": [-1, 0, 1e12, "7", None, 0.3] + [0.2] * 40}}
        _usercache.store(runware.TASK_TIMES, json.dumps(hostile).encode())
        times = runware._task_times()["h"]["m"]
        assert len(times) == 16 and all(0 < t < 86400 for t in times)  # kept: the last 16 plausible ones
        # even a sealed hint far off bounds only when the first polls go: never later than poll_max
        poller = Poller(transport=None, settings=runware.Settings(poll_max=10), hints={"m": 86_000.0})
        assert poller._first_due(_Watch("t", "m", since=0.0)) <= 10
    finally:
        _usercache.user_cache_dir.cache_clear()
        _usercache._key.cache_clear()


def _usercache_payload(name):
    from shotflow import _usercache

    return _usercache.load(name)


def test_a_tasks_duration_is_learned_from_the_polls_around_its_end():
    from shotflow.backends._runware_http import Poller, _Watch
    from shotflow.backends.runware import Settings

    poller = Poller(transport=None, settings=Settings())
    running_then_done = _Watch("a", "m", since=0.0, polls=3, before=0.18, last=0.22)
    poller._watches["a"] = running_then_done
    poller.done("a", finished=True)
    done_at_first_poll = _Watch("b", "m", since=0.0, polls=1, last=0.30)
    poller._watches["b"] = done_at_first_poll
    poller.done("b", finished=True)
    # the middle of the bracket; done at the first poll: a tenth earlier, so a long estimate comes down
    assert list(poller._durations["m"]) == [pytest.approx(0.20), pytest.approx(0.27)]


def test_an_estimate_far_too_long_comes_down_in_a_few_tasks_not_dozens():
    from shotflow.backends._runware_http import EARLY_STREAK, FIRST, Poller, _Watch
    from shotflow.backends.runware import Settings

    poller = Poller(transport=None, settings=Settings())
    true, estimates = 0.05, []
    for i in range(6):  # a slow first task, then tasks of 0.05 s polled at 0.9 x the estimate
        first_poll = 0.19 if i == 0 else FIRST * poller.estimate("m")
        before = None if first_poll >= true else first_poll
        last = first_poll if first_poll >= true else true + 0.001
        poller._watches[f"t{i}"] = _Watch(
            f"t{i}", "m", since=0.0, polls=1 if before is None else 2, before=before, last=last
        )
        poller.done(f"t{i}", finished=True)
        estimates.append(poller.estimate("m"))
    assert estimates[EARLY_STREAK] < 0.1  # the streak of tasks done at their first poll halves it
    # a task found running again (bracketed) ends the streak: the gentle tenth again
    poller._watches["b"] = _Watch("b", "m", since=0.0, polls=2, before=0.04, last=0.06)
    poller.done("b", finished=True)
    poller._watches["c"] = _Watch("c", "m", since=0.0, polls=1, last=0.3)
    poller.done("c", finished=True)
    assert poller._durations["m"][-1] == pytest.approx(0.27)


def test_submissions_share_requests_up_to_the_batch_size(emu, tmp_path):
    results = run(backend(tmp_path, batch=4, max_in_flight=8), *(request(f"shot {i}") for i in range(6)))
    assert all(isinstance(r, Generation) for r in results)
    sizes = [len(tasks) for tasks in requests_of(emu) if tasks[0]["taskType"] == "imageInference"]
    assert sorted(sizes) == [2, 4]
    sent = {body["positivePrompt"]: body["taskUUID"] for body in inference_bodies(emu)}
    assert [r.task_id for r in results] == [sent[f"shot {i}"] for i in range(6)]


def test_sync_generations_go_one_a_request_by_default(emu, tmp_path):
    # a sync batch answers when its slowest task ends: one a request, each slot refills on its own
    results = run(backend(tmp_path, delivery="sync"), *(request(f"shot {i}") for i in range(3)))
    assert all(isinstance(r, Generation) for r in results)
    assert emu.stats.requests == 3 and emu.stats.batch_sizes == (1, 1, 1)


@pytest.mark.parametrize("delivery", ["sync", "async"])
def test_one_failing_task_of_a_batch_fails_only_its_own_call(emu, tmp_path, delivery):
    emu.inject(Fault.task_error("cursed", "the provider could not draw this"))
    prompts = ["calm sea", "a cursed idol", "harbour at night"]
    results = run(backend(tmp_path, delivery=delivery, sync_batch=8), *(request(p) for p in prompts))
    assert isinstance(results[0], Generation) and isinstance(results[2], Generation)
    assert isinstance(results[1], RequestRejected)
    assert "the provider could not draw this" in str(results[1])
    assert emu.stats.billed == 2


# ── the TLS context, made ahead ─────────────────────────────────────────────────────────────


@pytest.fixture
def fresh_tls(monkeypatch):
    """The process's TLS context not made yet, and every TLS context made counted (by the thread
    it was made on): httpx's own, for a client not handed one, included."""
    import ssl
    import threading

    from shotflow.backends import _runware_http

    made: list[str] = []
    real = ssl.create_default_context

    def create(*args, **kwargs):
        made.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", create)
    monkeypatch.setattr(_runware_http, "_tls_thread", None)
    monkeypatch.setattr(_runware_http, "_tls_made", [])
    monkeypatch.setattr(_runware_http, "_tls_failed", [])
    return made


def test_the_tls_context_is_made_once_in_a_thread_while_the_run_plans_and_serves_every_client(emu, tmp_path, fresh_tls):
    RunwareBackend.warm_up()  # what a render calls once it knows something will be sent
    one(backend(tmp_path), request())
    one(backend(tmp_path), request(prompt="another shot"))  # another run: another loop, another client
    assert fresh_tls == ["shotflow-tls"]  # once, off the main thread
    assert len(inference_bodies(emu)) == 2


def test_a_tls_context_that_cannot_be_made_fails_where_the_client_is_made(emu, tmp_path, fresh_tls, monkeypatch):
    import httpx

    def broken(*args, **kwargs):
        raise FileNotFoundError("no such CA bundle: /nowhere.pem")

    monkeypatch.setattr(httpx, "create_ssl_context", broken)
    RunwareBackend.warm_up()
    with pytest.raises(FileNotFoundError, match="no such CA bundle"):
        one(backend(tmp_path), request())
    assert inference_bodies(emu) == []  # nothing was sent (nor paid)


# ── load: requests in flight, 429 ───────────────────────────────────────────────────────────


def test_at_most_max_in_flight_requests_are_in_flight(serve, tmp_path):
    emu = serve(latency=0.2)
    refs = [reference((i * 40, 60, 90)) for i in range(4)]
    requests = [request(f"shot {i}", references=(refs[i % 4],)) for i in range(10)]
    results = run(backend(tmp_path, max_in_flight=3, delivery="sync"), *requests)
    assert all(isinstance(r, Generation) for r in results)
    assert emu.stats.max_in_flight <= 3  # generations, polls and uploads together
    emu.reset()
    results = run(backend(tmp_path, max_in_flight=2), *(request(f"async {i}") for i in range(8)))
    assert all(isinstance(r, Generation) for r in results)
    assert emu.stats.max_in_flight <= 2


def test_while_runware_answers_429_fewer_requests_go_out_and_all_succeed(serve, tmp_path):
    emu = serve(latency=0.3, capacity=2, retry_after=0.1)
    b = backend(tmp_path, max_in_flight=8, delivery="sync", retries=4)
    limits = []

    async def main():
        try:
            tasks = [asyncio.ensure_future(b.generate(request(f"shot {i}"))) for i in range(12)]
            while not all(t.done() for t in tasks):
                await asyncio.sleep(0.02)
                if b._transport is not None:
                    limits.append(b._transport.gate.limit)
            return [t.result() for t in tasks]
        finally:
            await b.aclose()

    results = asyncio.run(main())
    assert len(results) == 12 and emu.stats.billed == 12
    assert emu.stats.throttled >= 1 and min(limits) <= 2  # halved while 429s lasted
    # each request is retried at most 4 times: with 8 in flight against a capacity of 2 it would
    # have run out; waiting out Retry-After together with fewer in flight, nothing failed


def test_429_with_retry_after_seconds_is_waited_for(emu, tmp_path):
    emu.inject(Fault.status(429, retry_after=1), task_type="imageInference")
    started = time.monotonic()
    one(backend(tmp_path), request())
    assert time.monotonic() - started >= 1.0
    assert emu.stats.tasks["imageInference"] == 2 and emu.stats.billed == 1


def test_429_with_retry_after_as_an_http_date_is_waited_for(emu, tmp_path):
    until = datetime.now(UTC) + timedelta(seconds=2)
    emu.inject(Fault.status(429, retry_after=format_datetime(until, usegmt=True)))
    started = time.monotonic()
    one(backend(tmp_path), request())
    assert time.monotonic() - started >= 0.9  # the date has whole seconds: between 1 and 2 s


# ── faults ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_server_errors_are_retried_with_the_same_task_uuid(emu, tmp_path, status):
    emu.inject(Fault.status(status), times=2, task_type="imageInference")
    one(backend(tmp_path), request())
    bodies = inference_bodies(emu)
    assert len(bodies) == 3 and len({b["taskUUID"] for b in bodies}) == 1
    assert emu.stats.billed == 1


def test_retries_give_up_with_a_transient_error(emu, tmp_path):
    emu.inject(Fault.status(503), times=None)
    (error,) = run(backend(tmp_path, retries=2), request())
    assert isinstance(error, TransientError) and "HTTP 503" in str(error)
    assert emu.stats.requests == 3 and emu.stats.billed == 0


def test_a_dropped_connection_is_retried(emu, tmp_path):
    emu.inject(Fault.drop(), task_type="imageInference")
    one(backend(tmp_path), request())
    assert emu.stats.tasks["imageInference"] == 2 and emu.stats.billed == 1


@pytest.mark.parametrize(
    "fault", [Fault.drop(after_accept=True), Fault.malformed(after_accept=True), Fault.conflict(), Fault.slow(1.0)]
)
def test_an_async_task_whose_answer_was_lost_is_asked_about_not_paid_twice(emu, tmp_path, fault):
    emu.inject(fault, task_type="imageInference")
    generation = one(backend(tmp_path, request_timeout=0.4), request())
    assert len(generation.images) == 1
    assert emu.stats.billed == 1 and emu.stats.tasks.get("getResponse", 0) >= 1
    assert len({b["taskUUID"] for b in inference_bodies(emu)}) == 1


@pytest.mark.parametrize(
    "fault", [Fault.drop(after_accept=True), Fault.malformed(after_accept=True), Fault.conflict(), Fault.slow(1.0)]
)
def test_a_sync_task_whose_answer_was_lost_is_never_paid_twice(emu, tmp_path, mode, fault):
    """Point 1: Runware documents getResponse for async tasks only. When it does not know what
    became of an accepted sync task, the shot fails and its journal entry stays."""
    emu.inject(fault, task_type="imageInference")
    journal, r = FakeJournal(), request()
    (result,) = run(backend(tmp_path, journal=journal, delivery="sync", request_timeout=0.4), r)
    if mode == "lenient":  # a service that answers getResponse for sync tasks: recovered
        assert isinstance(result, Generation) and journal.pending(r.key)["task_uuid"] == result.task_id
    else:
        assert isinstance(result, TransientError)
        assert "may have been paid for" in str(result) and "not sent again" in str(result)
        entry = journal.pending(r.key)
        assert entry["outcome"] == "unknown" and entry["delivery"] == "sync"
        # a later run does not pay for it either: same UUID, Runware says conflict, still unknown
        (again,) = run(backend(tmp_path, journal=journal, delivery="sync"), r)
        assert isinstance(again, TransientError) and journal.pending(r.key)["outcome"] == "unknown"
    assert emu.stats.billed == 1 and len({b["taskUUID"] for b in inference_bodies(emu)}) == 1


def test_a_malformed_answer_is_retried(emu, tmp_path):
    emu.inject(Fault.malformed(), task_type="imageInference")
    one(backend(tmp_path), request())
    assert emu.stats.tasks["imageInference"] == 2 and emu.stats.billed == 1


@pytest.mark.parametrize("fault", [Fault.status(503), Fault.malformed(), Fault.drop()])
def test_a_failed_download_is_retried(emu, tmp_path, fault):
    emu.inject(fault, task_type="download")
    generation = one(backend(tmp_path, output_type="URL"), request())
    assert PILImage.open(io.BytesIO(generation.images[0].data)).size == (1360, 768)
    assert emu.stats.downloads == 1 and emu.stats.billed == 1


def test_the_send_permit_is_released_once_every_take_is_known_before_the_images_are_fetched(emu, tmp_path):
    downloads_at_release: list[int] = []

    class Permit:
        async def __call__(self):
            pass

        def release(self):
            downloads_at_release.append(emu.stats.downloads)

    async def main(b):
        try:
            return await b.generate(request(), start=Permit())
        finally:
            await b.aclose()

    generation = asyncio.run(main(backend(tmp_path, output_type="URL")))
    assert len(generation.images) == 1 and emu.stats.downloads == 1
    assert downloads_at_release == [0]  # released before the image was fetched


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (401, "Runware rejected the API key (401): check RUNWARE_API_KEY"),
        (402, "insufficient Runware balance (402): top up at https://my.runware.ai/wallet"),
        (403, "this API key is not permitted to run this task on Runware (403): check the key's permissions"),
    ],
)
def test_401_402_403_are_not_retried_and_say_one_clear_line(emu, tmp_path, status, line):
    emu.inject(Fault.status(status), times=None)
    (error,) = run(backend(tmp_path), request())
    assert isinstance(error, RequestRejected) and str(error) == line
    assert emu.stats.requests == 1


@pytest.mark.parametrize("parameter", ["positivePrompt", ["positivePrompt", "model"]])
def test_a_400_is_not_retried_and_carries_the_apis_message_and_parameter(emu, tmp_path, parameter):
    emu.inject(Fault.status(400, message="the prompt mentions a trademark", parameter=parameter), times=None)
    (error,) = run(backend(tmp_path), request())
    assert isinstance(error, RequestRejected)
    shown = parameter if isinstance(parameter, str) else ", ".join(parameter)
    assert str(error) == f"Runware refused the task: the prompt mentions a trademark (parameter {shown})"
    assert emu.stats.requests == 1


def test_a_wrong_key_and_an_empty_balance_are_refused_by_the_emulator_itself(serve, tmp_path, monkeypatch):
    emu = serve(balance=0.10)
    monkeypatch.setenv("RUNWARE_API_KEY", "wrong-key-456")
    (error,) = run(backend(tmp_path), request())
    assert str(error).startswith("Runware rejected the API key (401)")
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    results = run(backend(tmp_path, batch=1), request("one"), request("two"))
    (paid,) = [r for r in results if isinstance(r, Generation)]
    (refused,) = [r for r in results if not isinstance(r, Generation)]
    assert isinstance(refused, RequestRejected) and str(refused).startswith("insufficient Runware balance (402)")
    assert emu.stats.billed == 1


def test_a_wrong_api_url_is_a_404_not_retried(emu, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNWARE_API_URL", emu.base_url + "/v2")
    (error,) = run(backend(tmp_path), request())
    assert isinstance(error, RequestRejected) and "RUNWARE_API_URL" in str(error)
    assert emu.stats.requests == 1


@pytest.mark.parametrize("delivery", ["sync", "async"])
def test_a_task_that_takes_too_long_times_out(serve, tmp_path, delivery):
    serve(latency=2.0)
    (error,) = run(backend(tmp_path, timeout=0.2, delivery=delivery), request())
    assert isinstance(error, TransientError) and "within 0.2 s" in str(error)


# ── shapes of answers (point 3) ─────────────────────────────────────────────────────────────


def test_results_arriving_over_several_polls_with_progress_items_are_all_collected(serve, tmp_path, mode):
    emu = serve(latency=0.6)
    generation = one(backend(tmp_path, poll_initial=0.02, poll_min=0.02), request(takes=3))
    assert len(generation.images) == 3 and len({i.remote_id for i in generation.images}) == 3
    polls = [body for body in emu.stats.bodies if body["taskType"] == "getResponse"]
    assert len(polls) >= 3 and emu.stats.billed == 1
    if mode == "strict":  # the progress items carried an imageUUID and no image: none was taken for one
        sent = {i.remote_id for i in generation.images}
        assert all(PILImage.open(io.BytesIO(i.data)).size == (1360, 768) for i in generation.images)
        assert len(sent) == 3


def test_a_cost_given_per_task_is_not_counted_per_image(serve, tmp_path):
    emu = serve(cost_per_task=True)
    generation = one(backend(tmp_path), request(takes=3))
    assert generation.cost == pytest.approx(0.24) == pytest.approx(emu.stats.cost)
    assert [image.cost for image in generation.images] == [pytest.approx(0.08)] * 3


def test_an_async_failure_as_a_data_item_fails_the_task_and_clears_the_journal(emu, tmp_path, mode):
    emu.inject(Fault.task_error("doomed", "the provider gave up", code="providerError"))
    journal, r = FakeJournal(), request("a doomed shot")
    (error,) = run(backend(tmp_path, journal=journal), r)
    assert isinstance(error, RequestRejected) and "the provider gave up" in str(error)
    assert journal.pending(r.key) is None and emu.stats.billed == 0


def test_results_that_expired_are_reported_not_paid_again_silently(emu, tmp_path):
    journal, r = FakeJournal(), request()
    sent = one(backend(tmp_path, journal=journal), r)
    emu.expire_results()
    (error,) = run(backend(tmp_path, journal=journal), r)  # a run that finds the entry still there
    assert isinstance(error, TransientError) and "taskExpired" in str(error) and sent.task_id in str(error)
    assert journal.pending(r.key) is None and emu.stats.billed == 1


def answer(*items, errors=()):
    from shotflow.backends._runware_http import Answer

    return Answer(200, tuple(items), tuple(errors))


T = "7d3c1f0e-2d0b-4e47-9d4e-8a8c3f2b9e11"


@pytest.mark.parametrize(
    ("given", "verdict", "finished"),
    [
        (answer({"taskUUID": T, "imageUUID": "i1", "imageBase64Data": "AAAA"}), "results", 1),  # sync: no status
        (answer({"taskUUID": T, "imageUUID": "i1", "imageURL": "https://x/i1.png", "status": "success"}), "results", 1),
        (answer({"taskUUID": T, "status": "processing"}), "results", 0),
        (answer({"taskUUID": T, "status": "queued"}), "results", 0),
        (answer({"taskUUID": T, "progress": 40}), "results", 0),  # progress item, no status
        (answer({"taskUUID": T, "imageUUID": "i1", "progress": 40}), "results", 0),  # an imageUUID but no image
        (answer({"taskUUID": T, "imageUUID": "i1", "imageURL": "https://x", "status": "who knows"}), "results", 0),
        (answer({"taskUUID": T, "imageUUID": "i1", "status": "success"}), "results", 0),  # success without image
        (answer({"taskUUID": T, "status": "error", "error": {"code": "x", "message": "m"}}), "failed", 0),
        (answer(errors=[{"code": "taskNotFound", "taskUUID": T}]), "unknown", 0),
        (answer(errors=[{"code": "taskExpired", "taskUUID": T}]), "expired", 0),
        (answer(errors=[{"code": "taskFailedOrNotFound", "taskUUID": T}]), "gone", 0),
        (answer(errors=[{"code": "conflictTaskUUID", "taskUUID": T}]), "conflict", 0),
        (answer(errors=[{"code": "invalid", "parameter": ["inputs", "referenceImages"], "taskUUID": T}]), "failed", 0),
    ],
)
def test_every_documented_shape_is_read_and_nothing_ambiguous_counts_as_an_image(given, verdict, finished):
    from shotflow.backends.runware import _read

    reading = _read(given)
    assert reading.verdict.value == verdict and len(reading.items) == finished


@pytest.mark.parametrize(
    ("costs", "per_image", "total"),
    [
        ([0.08, 0.08, 0.08], [0.08] * 3, 0.24),  # per image
        ([0.24, 0.24, 0.24], [0.08] * 3, 0.24),  # the task's cost on every item
        ([0.24, None, None], [0.08] * 3, 0.24),  # the task's cost on one item
        ([None, None, None], [None] * 3, None),
        ([0.08], [0.08], 0.08),
    ],
)
def test_costs_per_image_or_per_task(costs, per_image, total):
    from shotflow.backends.runware import _costs

    items = [{"cost": c} if c is not None else {} for c in costs]
    got, whole = _costs(items, "runway:4@1")
    assert got == [pytest.approx(c) if c is not None else None for c in per_image]
    assert whole == (pytest.approx(total) if total is not None else None)


# ── references ──────────────────────────────────────────────────────────────────────────────


def test_a_reference_is_uploaded_once_and_its_uuid_remembered(emu, tmp_path):
    memo, ref = FakeMemo(), reference()
    one(backend(tmp_path, memo=memo), request("first", references=(ref,)))
    ((name, uploaded, ttl),) = memo.puts
    assert (name, ttl) == (UPLOAD_MEMO_PREFIX + ref.sha256, UPLOAD_TTL) and ttl == 30 * 86400
    one(backend(tmp_path, memo=memo), request("second", references=(ref,)))  # a later run: the memo answers
    assert emu.stats.uploads == 1
    assert [b["inputs"]["referenceImages"] for b in inference_bodies(emu)] == [[uploaded], [uploaded]]


def test_concurrent_shots_sharing_a_reference_share_one_upload(emu, tmp_path):
    ref = reference()
    requests = [request(f"shot {i}", references=(ref,)) for i in range(3)]
    results = run(backend(tmp_path), *requests)
    assert all(isinstance(r, Generation) for r in results)
    assert emu.stats.uploads == 1


def test_a_reference_over_2048_px_is_downscaled_once_before_upload(emu, tmp_path):
    """Point 5: Runware keeps at most 2048 px a side; shotflow sends what it will keep, once."""
    big = reference_png((3000, 1200))
    results = run(backend(tmp_path, memo=FakeMemo()), *(request(f"shot {i}", references=(big,)) for i in range(2)))
    assert all(isinstance(r, Generation) for r in results)
    assert emu.stats.upload_sizes == ((2048, 819),) and emu.stats.uploads == 1
    from shotflow.backends.runware import fit_for_upload

    assert fit_for_upload(big.data) == fit_for_upload(big.data)  # deterministic
    small = reference_png((640, 480))
    assert fit_for_upload(small.data) is small.data


@pytest.mark.parametrize("forget", ["expire_uploads", "forget_images"])
def test_an_upload_runware_forgot_is_uploaded_afresh_once_whatever_its_code(emu, tmp_path, forget):
    memo, ref = FakeMemo(), reference()
    one(backend(tmp_path, memo=memo), request("first", references=(ref,)))
    old = memo.values[UPLOAD_MEMO_PREFIX + ref.sha256]
    getattr(emu, forget)()
    generation = one(backend(tmp_path, memo=memo), request("second", references=(ref,)))
    new = memo.values[UPLOAD_MEMO_PREFIX + ref.sha256]
    assert new != old and emu.stats.uploads == 2
    refused, sent = inference_bodies(emu)[1:]
    assert refused["inputs"]["referenceImages"] == [old] and sent["inputs"]["referenceImages"] == [new]
    assert generation.task_id == sent["taskUUID"] != refused["taskUUID"]
    assert emu.stats.billed == 2


def test_an_upstream_take_is_passed_by_its_runware_uuid(emu, tmp_path):
    upstream = one(backend(tmp_path), request("upstream")).images[0]
    digest = hashlib.sha256(upstream.data).hexdigest()
    ref = Reference(data=upstream.data, sha256=digest, remote_ids={"runware": upstream.remote_id})
    one(backend(tmp_path), request("downstream", model="runway:4@2", references=(ref,)))
    assert emu.stats.uploads == 0
    assert inference_bodies(emu)[1]["inputs"]["referenceImages"] == [upstream.remote_id]


def test_an_upstream_uuid_runware_forgot_is_replaced_by_an_upload(emu, tmp_path):
    ref = reference(remote=str(uuid.uuid4()))
    one(backend(tmp_path), request("downstream", model="runway:4@2", references=(ref,)))
    assert emu.stats.uploads == 1 and emu.stats.billed == 1


def test_tagged_references_are_sent_as_image_and_tag_objects(emu, tmp_path):
    memo, refs = FakeMemo(), (reference(tag="mara"), reference((0, 90, 200), tag="beacon"))
    one(backend(tmp_path, memo=memo), request("@mara lights @beacon", references=refs, tagged=True))
    one(backend(tmp_path, memo=memo), request("untagged", references=refs))
    tagged, plain = (b["inputs"]["referenceImages"] for b in inference_bodies(emu))
    assert [r["tag"] for r in tagged] == ["mara", "beacon"] and all(isinstance(r["image"], str) for r in tagged)
    assert plain == [r["image"] for r in tagged]


def test_refused_tags_are_sent_as_plain_strings_with_positions_once_per_model(serve, tmp_path):
    """Point 2: a 400 about referenceImages to a tagged task: once more with plain strings and
    the @tags written as positions; remembered for the model; said once."""
    emu = serve(refuse_tags=True)
    b = backend(tmp_path, memo=FakeMemo())
    refs = (reference(tag="harbor"), reference((0, 90, 200), tag="mara"))

    async def main():
        try:
            first = await b.generate(request("@mara walks into @harbor", references=refs, tagged=True))
            second = await b.generate(request("@mara looks back at @harbor", references=refs, tagged=True))
            return first, second
        finally:
            await b.aclose()

    first, second = asyncio.run(main())
    refused, plain, later = inference_bodies(emu)
    assert all(isinstance(r, dict) for r in refused["inputs"]["referenceImages"])
    assert all(isinstance(r, str) for r in plain["inputs"]["referenceImages"] + later["inputs"]["referenceImages"])
    assert plain["positivePrompt"] == "the subject of reference 2 walks into the subject of reference 1"
    assert later["positivePrompt"] == "the subject of reference 2 looks back at the subject of reference 1"
    assert first.sent == {"prompt": plain["positivePrompt"], "tagged": False} and second.sent["tagged"] is False
    assert first.task_id == plain["taskUUID"] != refused["taskUUID"]
    assert emu.stats.billed == 2 and len(b.notes) == 1 and "runway:4@1" in b.notes[0]


# ── the journal ─────────────────────────────────────────────────────────────────────────────


def test_the_journal_records_a_task_before_it_is_sent_and_keeps_it_for_the_owner(emu, tmp_path):
    """The backend never clears a successful task: the run does, once the images are recorded."""
    journal = FakeJournal()
    r = request()
    generation = one(backend(tmp_path, journal=journal), r)
    ((begin, key, record),) = journal.log
    assert (begin, key) == ("begin", r.key)
    assert record["task_uuid"] == generation.task_id == inference_bodies(emu)[0]["taskUUID"]
    assert record["model"] == "runway:4@1" and record["delivery"] == "async" and record["tagged"] is False
    datetime.fromisoformat(record["sent_at"])
    assert journal.pending(r.key)["task_uuid"] == generation.task_id


def test_a_killed_runs_async_task_is_polled_not_paid_again(serve, tmp_path):
    emu = serve(latency=0.5)
    journal, r = FakeJournal(), request(takes=2)
    (killed,) = run(backend(tmp_path, journal=journal, timeout=0.2), r)
    assert isinstance(killed, TransientError)
    sent = journal.pending(r.key)["task_uuid"]
    generation = one(backend(tmp_path, journal=journal), r)
    assert generation.task_id == sent and len(generation.images) == 2
    assert emu.stats.billed == 1 and len(inference_bodies(emu)) == 1
    assert journal.pending(r.key)["task_uuid"] == sent  # cleared by the run once recorded


def test_a_killed_runs_sync_task_is_asked_about_or_sent_again_under_its_uuid(serve, tmp_path, mode):
    emu = serve(latency=0.2)
    emu.inject(Fault.drop(after_accept=True), task_type="imageInference")  # accepted, then the run died
    journal, r = FakeJournal(), request(takes=2)
    (killed,) = run(backend(tmp_path, journal=journal, delivery="sync", retries=0), r)
    assert isinstance(killed, TransientError) and emu.stats.billed == 1
    sent = journal.pending(r.key)["task_uuid"]
    (result,) = run(backend(tmp_path, journal=journal, delivery="sync"), r)
    if mode == "lenient":
        assert isinstance(result, Generation) and result.task_id == sent
    else:  # not pollable: resent under its UUID, Runware says conflict, and the outcome stays unknown
        assert isinstance(result, TransientError) and journal.pending(r.key)["outcome"] == "unknown"
    assert emu.stats.billed == 1 and {b["taskUUID"] for b in inference_bodies(emu)} == {sent}


def test_a_journaled_task_the_api_never_got_is_sent_with_its_uuid(emu, tmp_path):
    r, lost = request(), str(uuid.uuid4())
    journal = FakeJournal({r.key: {"task_uuid": lost, "model": r.model, "delivery": "async"}})
    generation = one(backend(tmp_path, journal=journal), r)
    assert generation.task_id == lost and inference_bodies(emu)[0]["taskUUID"] == lost
    assert emu.stats.tasks["getResponse"] >= 2 and emu.stats.billed == 1


def test_a_refused_task_leaves_nothing_pending(emu, tmp_path):
    emu.inject(Fault.status(400), times=None)
    journal, r = FakeJournal(), request()
    (error,) = run(backend(tmp_path, journal=journal), r)
    assert isinstance(error, RequestRejected) and journal.pending(r.key) is None


# ── billing ─────────────────────────────────────────────────────────────────────────────────


def test_billing_matches_the_tasks_needed(emu, tmp_path):
    ref = reference()
    requests = [request(f"shot {i}", takes=1 + i % 3) for i in range(4)]
    requests.append(request("turbo", model="runway:4@2", references=(ref,)))
    results = run(backend(tmp_path), *requests)
    assert emu.stats.billed == len(requests)
    assert sum(r.cost for r in results) == pytest.approx(emu.stats.cost) == pytest.approx(0.08 * 7 + 0.02)
    assert sorted(emu.stats.billed_images.values()) == [1, 1, 1, 2, 3]


# ── the API key ─────────────────────────────────────────────────────────────────────────────


def test_the_key_appears_in_no_message_repr_journal_memo_or_body(emu, tmp_path):
    journal, memo = FakeJournal(), FakeMemo()
    b = backend(tmp_path, journal=journal, memo=memo, request_timeout=0.2, retries=1)
    one(b, request("fine", references=(reference(),)))
    emu.inject(Fault.status(400, message=f"echoing {KEY} back", parameter=["taskUUID", KEY]), times=1)
    emu.inject(Fault.slow(1.0), times=1)
    emu.inject(Fault.status(503), times=None)
    errors = run(b, request("refused"))
    errors += run(b, request("failing"))
    emu.clear_faults()
    emu.inject(
        Fault.task_error(
            "leaky",
            f"provider said {KEY}",
            code=f"code{KEY}",
            parameter=["inputs", f"key={KEY}"],
            extra={"detail": {"echo": [KEY]}},
        )
    )
    errors += run(b, request("a leaky shot"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNWARE_API_KEY", "wrong-key-456")
        errors += run(backend(tmp_path), request("unauthorised"))
    assert len(errors) == 4 and all(isinstance(e, BackendError) for e in errors)
    assert "provider said ***" in str(errors[2]) and "key=***" in str(errors[2])
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [str(e.__cause__) for e in errors]
    texts += [repr(b), json.dumps(journal.log), json.dumps(memo.puts), json.dumps(emu.stats.bodies)]
    assert not [text for text in texts if KEY in text or "wrong-key-456" in text]


def test_a_missing_key_is_one_clear_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        RunwareBackend(Services(project_dir=tmp_path))
    assert str(caught.value) == f"no Runware API key: set RUNWARE_API_KEY or put it in {tmp_path / '.env'}"


def test_the_key_may_come_from_dotenv_and_the_environment_wins(emu, tmp_path, monkeypatch):
    monkeypatch.delenv("RUNWARE_API_KEY")
    (tmp_path / ".env").write_text(f'# secrets\nexport RUNWARE_API_KEY="{KEY}"  \nOTHER=1\n')
    one(backend(tmp_path), request("from dotenv"))
    (tmp_path / ".env").write_text("RUNWARE_API_KEY=wrong-key-456\n")
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    one(backend(tmp_path), request("from the environment"))
    assert emu.stats.billed == 2


def test_dotenv_parsing(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=1\nexport B='two words'\nC=\"x#y\" # note\nD=plain # note\n# E=no\nbroken line\n")
    assert _dotenv(path) == {"A": "1", "B": "two words", "C": "x#y", "D": "plain"}
    assert _dotenv(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    "settings",
    [
        {"delivery": "push"},
        {"output_type": "png"},
        {"batch": 0},
        {"timeout": "soon"},
        {"timeout": 0},
        {"max_in_flight": 0},
        {"poll_min": -1},
    ],
)
def test_bad_settings_are_config_errors(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    with pytest.raises(ConfigError):
        backend(tmp_path, **settings)


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "not a url", "https://"])
def test_a_bad_api_url_is_a_config_error(tmp_path, monkeypatch, url):
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    monkeypatch.setenv("RUNWARE_API_URL", url)
    with pytest.raises(ConfigError, match="RUNWARE_API_URL"):
        backend(tmp_path)


def test_every_setting_is_in_the_storyboard_schema_and_nothing_else():
    import dataclasses

    from shotflow.backends.runware import Settings
    from shotflow.validate import storyboard_schema

    schema = storyboard_schema()["properties"]["runware"]["properties"]
    assert set(schema) == {f.name for f in dataclasses.fields(Settings)}
