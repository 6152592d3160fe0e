"""Premium TTS: Polly audio cached in the template's SpeechBucket (moto S3), played by a presigned URL.

moto has no SynthesizeSpeech, so Polly is a recording fake; S3 is moto's.
"""

from __future__ import annotations

import hashlib
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from callbridge.adapters.aws import client as aws_client
from callbridge.adapters.pacing import DynamoPacer
from callbridge.adapters.speech import URL_SECONDS, PollySpeechCache
from callbridge.logic.placer import Placement, Placer, WebhookUrls

from tests.conftest import AccountCredentials
from tests.integration.fakes import (
    PUBLIC_API_URL,
    CarrierWebhooks,
    FakeClock,
    FakeTwilio,
    calls_store,
    moto_stack,
    queue_call,
    stored,
)


@pytest.fixture
def aws() -> Iterator[Any]:
    """The template's stack in moto, built faster than the shared fixture (see fakes.moto_stack)."""
    yield from moto_stack()


TEXT = "Your appointment is tomorrow at nine."
AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64


class FakePolly:
    """SynthesizeSpeech, recorded; answers with a fixed MP3 stream, or fails when told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.error = error

    def synthesize_speech(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        if self.error is not None:
            raise self.error
        return {"AudioStream": io.BytesIO(AUDIO), "ContentType": "audio/mpeg", "RequestCharacters": len(kwargs["Text"])}


@pytest.fixture
def s3(aws: Any) -> Any:
    return aws_client("s3")


@pytest.fixture
def polly() -> FakePolly:
    return FakePolly()


@pytest.fixture
def cache(aws: Any, s3: Any, polly: FakePolly) -> PollySpeechCache:
    return PollySpeechCache(aws.refs["SpeechBucket"], s3=s3, polly=polly)


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_the_first_use_synthesizes_and_stores_the_audio_under_a_hash_key(
    cache: PollySpeechCache, polly: FakePolly, s3: Any, aws: Any
) -> None:
    # when
    url = cache.audio_url("Joanna", TEXT)

    # then: one synthesis, neural for a neural voice
    assert polly.requests == [{"Text": TEXT, "VoiceId": "Joanna", "OutputFormat": "mp3", "Engine": "neural"}]
    # and: the audio is in the bucket under a hash of voice and text
    bucket = aws.refs["SpeechBucket"]
    digest = hashlib.sha256(("Joanna" + "\0" + TEXT).encode()).hexdigest()
    key = f"tts/Joanna/{digest}.mp3"
    assert keys(s3, bucket) == [key]
    obj = s3.get_object(Bucket=bucket, Key=key)
    assert obj["Body"].read() == AUDIO
    assert obj["ContentType"] == "audio/mpeg"
    # and: the URL is a presigned GET of that object, valid for days
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.scheme == "https"
    assert key in parts.path
    assert bucket in parts.netloc + parts.path
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert int(query["X-Amz-Expires"][0]) == URL_SECONDS >= 24 * 3600
    assert query["X-Amz-Signature"][0]
    import requests  # moto serves plain HTTP to AWS URLs too: the URL fetches the audio

    fetched = requests.get(url, timeout=5)
    assert (fetched.status_code, fetched.content) == (200, AUDIO)


def test_the_second_use_does_not_synthesize_again(cache: PollySpeechCache, polly: FakePolly, s3: Any, aws: Any) -> None:
    first = cache.audio_url("Joanna", TEXT)

    again = cache.audio_url("Joanna", TEXT)

    assert len(polly.requests) == 1
    assert urlsplit(again).path == urlsplit(first).path
    assert len(keys(s3, aws.refs["SpeechBucket"])) == 1


def test_a_cache_in_another_container_finds_the_audio_too(aws: Any, s3: Any, polly: FakePolly) -> None:
    PollySpeechCache(aws.refs["SpeechBucket"], s3=s3, polly=polly).audio_url("Joanna", TEXT)
    other_polly = FakePolly()

    PollySpeechCache(aws.refs["SpeechBucket"], s3=s3, polly=other_polly).audio_url("Joanna", TEXT)

    assert other_polly.requests == []


def test_another_voice_or_text_is_another_recording(
    cache: PollySpeechCache, polly: FakePolly, s3: Any, aws: Any
) -> None:
    cache.audio_url("Joanna", TEXT)
    cache.audio_url("Matthew", TEXT)
    cache.audio_url("Joanna", TEXT + " Bring your card.")
    cache.audio_url("Mizuki", TEXT)  # no neural engine for this voice

    assert [(r["VoiceId"], r["Engine"]) for r in polly.requests] == [
        ("Joanna", "neural"),
        ("Matthew", "neural"),
        ("Joanna", "neural"),
        ("Mizuki", "standard"),
    ]
    assert len(keys(s3, aws.refs["SpeechBucket"])) == 4


# --- in a call: synthesized before dialing, played by URL in the flow


def placer_with(aws: Any, twilio: FakeTwilio, speech: PollySpeechCache) -> Placer:
    clock = FakeClock(1_800_000_000.0)
    return Placer(
        calls=calls_store(aws),
        carrier=twilio.client(clock.now),
        pacer=DynamoPacer(aws.refs["PacingTable"], 10),
        urls=WebhookUrls(PUBLIC_API_URL),
        speech=speech,
        now=clock.now,
        sleep=clock.sleep,
    )


def flow_verbs(
    aws: Any, hooks: CarrierWebhooks, callid: str, answered_by: str
) -> list[tuple[str, dict[str, str], str]]:
    # the carrier asks for the flow of the call it placed (its CallSid is the call's carrier call id)
    sid = stored(aws, callid).carrier_call_id or ""
    response = hooks.post(callid, "flow", {"CallSid": sid, "AnsweredBy": answered_by})
    assert response.status == 200, response.body
    root = ET.fromstring(response.body)  # noqa: S314 - our own handler's output
    return [(v.tag, dict(v.attrib), v.text or "") for v in root]


def test_a_call_with_premium_tts_plays_the_cached_audio(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, webhooks_module: ModuleType, s3: Any
) -> None:
    # given: a call with premium TTS for a person and for a machine
    polly = FakePolly()
    speech = PollySpeechCache(aws.refs["SpeechBucket"], s3=s3, polly=polly)
    callid = queue_call(
        aws,
        account,
        answer_tts=TEXT,
        answer_tts_voice="Joanna",
        answermachine_tts="Please call us back.",
        answermachine_tts_voice="Matthew",
    )

    # when: it is placed, and then answered
    assert placer_with(aws, twilio, speech).place(callid).placement is Placement.PLACED
    hooks = CarrierWebhooks(webhooks_module)
    person = flow_verbs(aws, hooks, callid, "human")
    machine = flow_verbs(aws, hooks, callid, "machine_end_beep")

    # then: synthesized once each before dialing, and the flows play the audio instead of <Say>
    assert sorted(r["VoiceId"] for r in polly.requests) == ["Joanna", "Matthew"]
    audio = stored(aws, callid).tts_audio
    assert set(audio) == {"answer_tts", "answermachine_tts"}
    assert person[1] == ("Play", {}, audio["answer_tts"])
    assert machine == [("Play", {}, audio["answermachine_tts"]), ("Hangup", {}, "")]
    assert "tts/Joanna/" in urlsplit(audio["answer_tts"]).path


def test_when_polly_fails_the_call_is_still_placed_and_the_carrier_speaks_the_text(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio, webhooks_module: ModuleType, s3: Any
) -> None:
    from botocore.exceptions import ClientError

    # given: Polly refusing
    error = ClientError({"Error": {"Code": "ServiceFailureException", "Message": "down"}}, "SynthesizeSpeech")
    speech = PollySpeechCache(aws.refs["SpeechBucket"], s3=s3, polly=FakePolly(error))
    callid = queue_call(aws, account, answer_tts=TEXT, answer_tts_voice="Joanna")

    # when
    result = placer_with(aws, twilio, speech).place(callid)
    person = flow_verbs(aws, CarrierWebhooks(webhooks_module), callid, "human")

    # then: dialed anyway, and the flow falls back to Polly through the carrier's <Say>
    assert result.placement is Placement.PLACED
    assert len(twilio.creates) == 1
    assert stored(aws, callid).tts_audio == {}
    assert person == [
        ("Play", {}, "https://example.com/hello.wav"),
        ("Say", {"voice": "Polly.Joanna"}, TEXT),
        ("Hangup", {}, ""),
    ]
