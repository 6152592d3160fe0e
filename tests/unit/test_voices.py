"""The seed's nine speech languages and the premium voices (Polly ids and the seed's IBM-style names)."""

from __future__ import annotations

import pytest
from callbridge.domain.voices import IBM_VOICES, POLLY_VOICES, SPEAK_LANGUAGES, normalize_language, resolve_voice


def test_the_nine_seed_languages() -> None:
    assert set(SPEAK_LANGUAGES) == {"en-GB", "en-US", "fr-FR", "de-DE", "it-IT", "pt-BR", "ru-RU", "es-ES", "es-US"}


@pytest.mark.parametrize(("value", "code"), [("en-us", "en-US"), (" PT-BR ", "pt-BR"), ("es-us", "es-US")])
def test_normalize_language(value: str, code: str) -> None:
    assert normalize_language(value) == code


@pytest.mark.parametrize("value", ["en", "en_US", "English", "pt-PT", "es-MX", ""])
def test_other_languages_are_not_speak_languages(value: str) -> None:
    assert normalize_language(value) is None


def test_every_seed_language_has_a_polly_voice() -> None:
    assert {v.language for v in POLLY_VOICES.values()} == set(SPEAK_LANGUAGES)


@pytest.mark.parametrize("voice", ["Joanna", "joanna", "JOANNA", "Polly.Joanna", " Joanna "])
def test_polly_ids_are_accepted(voice: str) -> None:
    resolved = resolve_voice(voice)

    assert resolved is not None
    assert resolved.polly_id == "Joanna"


def test_the_seed_example_voice_maps_to_a_polly_voice_of_the_same_language_and_gender() -> None:
    voice = resolve_voice("en-US_AllisonVoice")

    assert voice is not None
    assert (voice.polly_id, voice.language, voice.gender) == ("Joanna", "en-US", "Female")


@pytest.mark.parametrize("ibm", sorted(IBM_VOICES))
def test_every_ibm_name_maps_to_a_known_polly_voice_of_its_language(ibm: str) -> None:
    voice = resolve_voice(ibm)

    assert voice is not None
    assert voice.polly_id in POLLY_VOICES
    language = ibm.split("_", maxsplit=1)[0].replace("es-LA", "es-US")
    assert voice.language == language


def test_v3_variants_map_like_their_base_voice() -> None:
    assert resolve_voice("en-US_AllisonV3Voice") == resolve_voice("en-US_AllisonVoice")


@pytest.mark.parametrize("voice", ["Allison", "en-US_Allison", "Nobody", "", "Polly.", "en-US"])
def test_unknown_voices(voice: str) -> None:
    assert resolve_voice(voice) is None
