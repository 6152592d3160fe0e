"""Premium TTS: Amazon Polly audio cached in S3 by a hash of voice and text, played by presigned URL."""

from __future__ import annotations

import hashlib
from typing import Any

from callbridge.adapters.aws import LazyClient, Missing, aws_errors
from callbridge.domain.voices import POLLY_VOICES

URL_SECONDS = 7 * 24 * 3600  # outlives any call that could play it (calls last hours at most)
# Synthesizing 3,000 characters takes Polly a few seconds: more than a storage read may.
POLLY_READ_TIMEOUT = 10.0


class PollySpeechCache:
    """Synthesizes once per (voice, text); later uses cost one HEAD request and no synthesis."""

    def __init__(self, bucket: str, *, s3: Any = None, polly: Any = None) -> None:
        self._bucket = bucket
        self._s3 = LazyClient("s3", s3)
        self._polly = LazyClient("polly", polly, read_timeout=POLLY_READ_TIMEOUT)
        self._presigner: Any = None

    def key(self, voice: str, text: str) -> str:
        digest = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()
        return f"tts/{voice}/{digest}.mp3"

    def audio_url(self, voice: str, text: str) -> str:
        s3 = self._s3()
        key = self.key(voice, text)
        try:
            with aws_errors("speech cache"):
                s3.head_object(Bucket=self._bucket, Key=key)
        except Missing:
            known = POLLY_VOICES.get(voice)
            engine = known.engine if known else "standard"
            with aws_errors("speech synthesis"):
                audio = self._polly().synthesize_speech(Text=text, VoiceId=voice, OutputFormat="mp3", Engine=engine)
                body = audio["AudioStream"].read()
                s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="audio/mpeg")
        url: str = self._sigv4(s3).generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=URL_SECONDS
        )
        return url

    def _sigv4(self, s3: Any) -> Any:
        """A copy of `s3` that presigns with SigV4.

        botocore presigns S3 URLs with SigV2 unless the client was built with signature_version="s3v4", and
        buckets created since June 2020 refuse SigV2: the carrier would get a 403 instead of the audio.
        """
        if self._presigner is None:
            import boto3
            from botocore.config import Config

            self._presigner = boto3.session.Session().client(
                "s3",
                region_name=s3.meta.region_name,
                endpoint_url=s3.meta.endpoint_url,
                config=s3.meta.config.merge(Config(signature_version="s3v4")),
            )
        return self._presigner
