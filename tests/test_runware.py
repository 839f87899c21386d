"""The Runware backend against the emulator, over real loopback sockets (no transport mocks)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from PIL import Image as PILImage

from shotflow.backends import Generation, Reference, Request, Services
from shotflow.backends.runware import RunwareBackend, UPLOAD_MEMO_PREFIX, UPLOAD_TTL, _dotenv
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


@pytest.fixture
def emu(monkeypatch):
    with Emulator(api_key=KEY) as emulator:
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        monkeypatch.setenv("RUNWARE_API_URL", emulator.url)
        yield emulator


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


# ── generation ──────────────────────────────────────────────────────────────────────────────


def test_sync_generation_downloads_every_take_with_seed_cost_and_uuid(emu, tmp_path):
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
    assert delivery == ["URL", "sync", "PNG", 95]
    assert "inputs" not in body
    assert emu.stats.billed == 1 and emu.stats.downloads == 3


def test_the_default_output_type_is_base64_one_round_trip(emu, tmp_path):
    generation = one(backend(tmp_path), request())
    assert inference_bodies(emu)[0]["outputType"] == "base64Data"
    assert generation.images[0].url is None and emu.stats.downloads == 0


@pytest.mark.parametrize("output_type", ["base64Data", "dataURI"])
def test_inline_output_types_decode_to_the_same_bytes_as_a_download(emu, tmp_path, output_type):
    downloaded = one(backend(tmp_path, output_type="URL"), request("same frame"))
    inline = one(backend(tmp_path, output_type=output_type), request("same frame"))
    assert inline.images[0].data == downloaded.images[0].data
    assert inline.images[0].url is None and emu.stats.downloads == 1


def test_async_delivery_is_polled_with_get_response(tmp_path, monkeypatch):
    with Emulator(api_key=KEY, latency=0.15) as emu:
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        generation = one(backend(tmp_path, delivery="async", output_type="base64Data"), request(takes=2))
        assert len(generation.images) == 2
        assert inference_bodies(emu)[0]["deliveryMethod"] == "async"
        assert emu.stats.tasks["getResponse"] >= 2 and emu.stats.billed == 1


def test_request_fields_and_options_reach_the_task(emu, tmp_path):
    one(backend(tmp_path), request(
        output_format="JPG",
        output_quality=80,
        safety={"checkContent": True, "mode": "fast"},
        provider_settings={"runway": {"contentModeration": {"publicFigureThreshold": "low"}}},
        options={"ttl": 3600, "webhookURL": "https://example.com/hook?s=1", "uploadEndpoint": "https://example.com/u"},
    ))
    (body,) = inference_bodies(emu)
    assert body["safety"] == {"checkContent": True, "mode": "fast"}
    assert body["providerSettings"]["runway"]["contentModeration"]["publicFigureThreshold"] == "low"
    assert [body[k] for k in ("ttl", "webhookURL", "uploadEndpoint")] == [
        3600, "https://example.com/hook?s=1", "https://example.com/u"
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


# ── batching ────────────────────────────────────────────────────────────────────────────────


def test_concurrent_calls_share_requests_up_to_the_batch_size(emu, tmp_path):
    results = run(backend(tmp_path, output_type="base64Data", sync_batch=4), *(request(f"shot {i}") for i in range(6)))
    assert all(isinstance(r, Generation) for r in results)
    assert emu.stats.requests == 2 and sorted(emu.stats.batch_sizes) == [2, 4]
    sent = {body["positivePrompt"]: body["taskUUID"] for body in inference_bodies(emu)}
    assert [r.task_id for r in results] == [sent[f"shot {i}"] for i in range(6)]


def test_sync_generations_go_one_a_request_by_default_and_other_tasks_share(emu, tmp_path):
    # a sync batch answers when its slowest task ends: one a request, each slot refills on its own
    results = run(backend(tmp_path, output_type="base64Data"), *(request(f"shot {i}") for i in range(3)))
    assert all(isinstance(r, Generation) for r in results)
    assert emu.stats.requests == 3 and emu.stats.batch_sizes == (1, 1, 1)


def test_one_failing_task_of_a_batch_fails_only_its_own_call(emu, tmp_path):
    emu.inject(Fault.task_error("cursed", "the provider could not draw this"))
    prompts = ["calm sea", "a cursed idol", "harbour at night"]
    results = run(backend(tmp_path, output_type="base64Data", sync_batch=8), *(request(p) for p in prompts))
    assert isinstance(results[0], Generation) and isinstance(results[2], Generation)
    assert isinstance(results[1], BackendError)
    assert "the provider could not draw this" in str(results[1])
    assert emu.stats.requests == 1 and emu.stats.billed == 2


# ── faults ──────────────────────────────────────────────────────────────────────────────────


def test_429_with_retry_after_seconds_is_waited_for(emu, tmp_path):
    emu.inject(Fault.status(429, retry_after=1))
    started = time.monotonic()
    one(backend(tmp_path, output_type="base64Data"), request())
    assert time.monotonic() - started >= 1.0
    assert emu.stats.requests == 2 and emu.stats.billed == 1


def test_429_with_retry_after_as_an_http_date_is_waited_for(emu, tmp_path):
    until = datetime.now(timezone.utc) + timedelta(seconds=2)
    emu.inject(Fault.status(429, retry_after=format_datetime(until, usegmt=True)))
    started = time.monotonic()
    one(backend(tmp_path, output_type="base64Data"), request())
    assert time.monotonic() - started >= 0.9  # the date has whole seconds: between 1 and 2 s
    assert emu.stats.requests == 2


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_server_errors_are_retried_with_the_same_task_uuid(emu, tmp_path, status):
    emu.inject(Fault.status(status), times=2)
    one(backend(tmp_path, output_type="base64Data"), request())
    bodies = inference_bodies(emu)
    assert len(bodies) == 3 and len({b["taskUUID"] for b in bodies}) == 1
    assert emu.stats.billed == 1


def test_retries_give_up_with_a_transient_error(emu, tmp_path):
    emu.inject(Fault.status(503), times=None)
    (error,) = run(backend(tmp_path, retries=2), request())
    assert isinstance(error, TransientError) and "HTTP 503" in str(error)
    assert emu.stats.requests == 3 and emu.stats.billed == 0


def test_an_answer_slower_than_the_client_timeout_is_polled_not_paid_twice(emu, tmp_path):
    emu.inject(Fault.slow(1.5))
    one(backend(tmp_path, request_timeout=0.3, output_type="base64Data"), request())
    bodies = inference_bodies(emu)
    assert len(bodies) == 2 and len({b["taskUUID"] for b in bodies}) == 1
    assert emu.stats.billed == 1 and emu.stats.tasks.get("getResponse", 0) >= 1


def test_a_dropped_connection_is_retried(emu, tmp_path):
    emu.inject(Fault.drop())
    one(backend(tmp_path, output_type="base64Data"), request())
    assert emu.stats.requests == 2 and emu.stats.billed == 1


@pytest.mark.parametrize("fault", [Fault.drop(after_accept=True), Fault.malformed(after_accept=True), Fault.conflict()])
def test_a_task_accepted_before_its_answer_was_lost_is_polled_not_paid_twice(emu, tmp_path, fault):
    emu.inject(fault)
    generation = one(backend(tmp_path, output_type="base64Data"), request())
    assert len(generation.images) == 1
    assert emu.stats.billed == 1 and emu.stats.tasks.get("getResponse", 0) >= 1
    assert len({b["taskUUID"] for b in inference_bodies(emu)}) == 1


def test_a_malformed_answer_is_retried(emu, tmp_path):
    emu.inject(Fault.malformed())
    one(backend(tmp_path, output_type="base64Data"), request())
    assert emu.stats.requests == 2 and emu.stats.billed == 1


@pytest.mark.parametrize("fault", [Fault.status(503), Fault.malformed(), Fault.drop()])
def test_a_failed_download_is_retried(emu, tmp_path, fault):
    emu.inject(fault, task_type="download")
    generation = one(backend(tmp_path, output_type="URL"), request())
    assert PILImage.open(io.BytesIO(generation.images[0].data)).size == (1360, 768)
    assert emu.stats.downloads == 1 and emu.stats.billed == 1


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


def test_a_400_is_not_retried_and_carries_the_apis_message_and_parameter(emu, tmp_path):
    emu.inject(Fault.status(400, message="positivePrompt mentions a trademark", parameter="positivePrompt"), times=None)
    (error,) = run(backend(tmp_path), request())
    assert isinstance(error, RequestRejected)
    assert str(error) == "Runware refused the task: positivePrompt mentions a trademark"
    assert emu.stats.requests == 1


def test_a_wrong_key_and_an_empty_balance_are_refused_by_the_emulator_itself(tmp_path, monkeypatch):
    with Emulator(api_key=KEY, balance=0.10) as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "wrong-key-456")
        (error,) = run(backend(tmp_path), request())
        assert str(error).startswith("Runware rejected the API key (401)")
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        results = run(backend(tmp_path, output_type="base64Data", batch=1), request("one"), request("two"))
        (paid,) = [r for r in results if isinstance(r, Generation)]
        (refused,) = [r for r in results if not isinstance(r, Generation)]
        assert isinstance(refused, RequestRejected) and str(refused).startswith("insufficient Runware balance (402)")
        assert emu.stats.requests == 3 and emu.stats.billed == 1


def test_a_wrong_api_url_is_a_404_not_retried(emu, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNWARE_API_URL", emu.base_url + "/v2")
    (error,) = run(backend(tmp_path), request())
    assert isinstance(error, RequestRejected) and "RUNWARE_API_URL" in str(error)
    assert emu.stats.requests == 1


def test_a_task_that_takes_too_long_times_out(tmp_path, monkeypatch):
    with Emulator(api_key=KEY, latency=2.0) as emu:
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        (error,) = run(backend(tmp_path, timeout=0.2), request())
        assert isinstance(error, TransientError) and "within 0.2 s" in str(error)


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
    results = run(backend(tmp_path, output_type="base64Data"), *requests)
    assert all(isinstance(r, Generation) for r in results)
    assert emu.stats.uploads == 1


def test_a_stale_uploaded_uuid_is_uploaded_afresh_once(emu, tmp_path):
    memo, ref = FakeMemo(), reference()
    one(backend(tmp_path, memo=memo), request("first", references=(ref,)))
    old = memo.values[UPLOAD_MEMO_PREFIX + ref.sha256]
    emu.forget_images()
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


# ── the journal ─────────────────────────────────────────────────────────────────────────────


def test_the_journal_records_a_task_before_it_is_sent_and_keeps_it_for_the_owner(emu, tmp_path):
    """The backend never clears a successful task: the run does, once the images are recorded."""
    journal = FakeJournal()
    r = request()
    generation = one(backend(tmp_path, journal=journal), r)
    ((begin, key, record),) = journal.log
    assert (begin, key) == ("begin", r.key)
    assert record["task_uuid"] == generation.task_id == inference_bodies(emu)[0]["taskUUID"]
    assert record["model"] == "runway:4@1" and record["delivery"] == "sync"
    datetime.fromisoformat(record["sent_at"])
    assert journal.pending(r.key)["task_uuid"] == generation.task_id


@pytest.mark.parametrize("delivery", ["sync", "async"])
def test_a_killed_runs_task_is_polled_not_paid_again(tmp_path, monkeypatch, delivery):
    with Emulator(api_key=KEY, latency=0.5) as emu:
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        journal, r = FakeJournal(), request(takes=2)
        (killed,) = run(backend(tmp_path, journal=journal, delivery=delivery, timeout=0.2), r)
        assert isinstance(killed, TransientError)
        sent = journal.pending(r.key)["task_uuid"]
        generation = one(backend(tmp_path, journal=journal, output_type="base64Data"), r)
        assert generation.task_id == sent and len(generation.images) == 2
        assert emu.stats.billed == 1 and len(inference_bodies(emu)) == 1
        assert journal.pending(r.key)["task_uuid"] == sent  # cleared by the run once recorded


def test_a_journaled_task_the_api_never_got_is_sent_with_its_uuid(emu, tmp_path):
    r, lost = request(), str(uuid.uuid4())
    journal = FakeJournal({r.key: {"task_uuid": lost, "model": r.model}})
    generation = one(backend(tmp_path, journal=journal), r)
    assert generation.task_id == lost and inference_bodies(emu)[0]["taskUUID"] == lost
    assert emu.stats.tasks["getResponse"] == 1 and emu.stats.billed == 1


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
    results = run(backend(tmp_path, output_type="base64Data"), *requests)
    assert emu.stats.billed == len(requests)
    assert sum(r.cost for r in results) == pytest.approx(emu.stats.cost) == pytest.approx(0.08 * 7 + 0.02)


# ── the API key ─────────────────────────────────────────────────────────────────────────────


def test_the_key_appears_in_no_message_repr_journal_memo_or_body(emu, tmp_path):
    journal, memo = FakeJournal(), FakeMemo()
    b = backend(tmp_path, journal=journal, memo=memo, request_timeout=0.2, retries=1)
    one(b, request("fine", references=(reference(),)))
    emu.inject(Fault.status(400, message=f"echoing {KEY} back"), times=1)
    emu.inject(Fault.slow(1.0), times=1)
    emu.inject(Fault.status(503), times=None)
    errors = run(b, request("refused"))
    errors += run(b, request("failing"))
    emu.clear_faults()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RUNWARE_API_KEY", "wrong-key-456")
        errors += run(backend(tmp_path), request("unauthorised"))
    assert len(errors) == 3 and all(isinstance(e, BackendError) for e in errors)
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
    one(backend(tmp_path, output_type="base64Data"), request("from dotenv"))
    (tmp_path / ".env").write_text("RUNWARE_API_KEY=wrong-key-456\n")
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    one(backend(tmp_path, output_type="base64Data"), request("from the environment"))
    assert emu.stats.billed == 2


def test_dotenv_parsing(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=1\nexport B='two words'\nC=\"x#y\" # note\nD=plain # note\n# E=no\nbroken line\n")
    assert _dotenv(path) == {"A": "1", "B": "two words", "C": "x#y", "D": "plain"}
    assert _dotenv(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    "settings", [{"delivery": "push"}, {"output_type": "png"}, {"batch": 0}, {"timeout": "soon"}, {"timeout": 0}]
)
def test_bad_settings_are_config_errors(emu, tmp_path, settings):
    with pytest.raises(ConfigError):
        backend(tmp_path, **settings)


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "not a url", "https://"])
def test_a_bad_api_url_is_a_config_error(emu, tmp_path, monkeypatch, url):
    monkeypatch.setenv("RUNWARE_API_URL", url)
    with pytest.raises(ConfigError, match="RUNWARE_API_URL"):
        backend(tmp_path)


def test_every_setting_is_in_the_storyboard_schema_and_nothing_else():
    import dataclasses

    from shotflow.backends.runware import Settings
    from shotflow.validate import storyboard_schema

    schema = storyboard_schema()["properties"]["runware"]["properties"]
    assert set(schema) == {f.name for f in dataclasses.fields(Settings)}
