"""The seed's nine speech languages and the premium voices (Polly ids and the seed's IBM-style names)."""

from __future__ import annotations

import pytest
from callbridge.domain.voices import (
    IBM_VOICES,
    POLLY_VOICES,
    SPEAK_LANGUAGES,
    normalize_language,
    resolve_voice,
    speak_say_voice,
    tts_say_voice,
)


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


# Twilio's <Say> voices for the nine languages, from Twilio's text-to-speech voice table, written out here as an
# oracle independent of callbridge's table: Polly standard voices as `Polly.<Id>`, neural ones as `Polly.<Id>-Neural`.
TWILIO_SAY_VOICES: dict[str, set[str]] = {
    "en-US": {
        *(f"Polly.{v}" for v in ("Ivy", "Joanna", "Joey", "Justin", "Kendra", "Kimberly", "Matthew", "Salli")),
        *(f"Polly.{v}-Neural" for v in ("Danielle", "Gregory", "Ivy", "Joanna", "Joey", "Justin", "Kendra")),
        *(f"Polly.{v}-Neural" for v in ("Kevin", "Kimberly", "Matthew", "Ruth", "Salli", "Stephen")),
    },
    "en-GB": {
        "Polly.Amy",
        "Polly.Brian",
        "Polly.Emma",
        *(f"Polly.{v}-Neural" for v in ("Amy", "Arthur", "Brian", "Emma")),
    },
    "fr-FR": {"Polly.Celine", "Polly.Lea", "Polly.Mathieu", "Polly.Lea-Neural", "Polly.Remi-Neural"},
    "de-DE": {"Polly.Hans", "Polly.Marlene", "Polly.Vicki", "Polly.Vicki-Neural", "Polly.Daniel-Neural"},
    "it-IT": {"Polly.Bianca", "Polly.Carla", "Polly.Giorgio", "Polly.Bianca-Neural", "Polly.Adriano-Neural"},
    "pt-BR": {
        "Polly.Camila",
        "Polly.Ricardo",
        "Polly.Vitoria",
        *(f"Polly.{v}-Neural" for v in ("Camila", "Thiago", "Vitoria")),
    },
    "ru-RU": {"Polly.Maxim", "Polly.Tatyana"},
    "es-ES": {"Polly.Conchita", "Polly.Enrique", "Polly.Lucia", "Polly.Lucia-Neural", "Polly.Sergio-Neural"},
    "es-US": {"Polly.Lupe", "Polly.Miguel", "Polly.Penelope", "Polly.Lupe-Neural", "Polly.Pedro-Neural"},
}
NEURAL_ONLY = ["Kevin", "Ruth", "Stephen", "Danielle", "Gregory", "Arthur", "Remi", "Daniel", "Adriano", "Thiago"]
NEURAL_ONLY += ["Sergio", "Pedro"]


@pytest.mark.parametrize("name", sorted({*POLLY_VOICES, *IBM_VOICES}))
def test_every_accepted_voice_is_rendered_as_a_voice_twilio_has_for_its_language(name: str) -> None:
    voice = resolve_voice(name)
    assert voice is not None
    assert tts_say_voice(voice.polly_id) in TWILIO_SAY_VOICES[voice.language]


@pytest.mark.parametrize("polly_id", NEURAL_ONLY)
def test_neural_only_voices_are_rendered_with_their_neural_name(polly_id: str) -> None:
    assert tts_say_voice(polly_id) == f"Polly.{polly_id}-Neural"


@pytest.mark.parametrize(
    ("seed_name", "say"), [("en-US_KevinV3Voice", "Polly.Stephen-Neural"), ("en-US_OliviaV3Voice", "Polly.Ruth-Neural")]
)
def test_the_seeds_v3_names_that_map_onto_neural_only_voices(seed_name: str, say: str) -> None:
    voice = resolve_voice(seed_name)
    assert voice is not None
    assert tts_say_voice(voice.polly_id) == say


def test_the_neural_name_is_accepted_as_a_voice_too() -> None:
    assert resolve_voice("Polly.Kevin-Neural") == resolve_voice("Kevin")


@pytest.mark.parametrize("language", sorted(SPEAK_LANGUAGES))
def test_every_seed_language_is_spoken_by_a_voice_twilio_lists_for_it(language: str) -> None:
    spoken_in, voice = speak_say_voice(language)
    assert spoken_in == language
    assert voice in TWILIO_SAY_VOICES[language]
    assert not voice.endswith("-Neural")  # the seed's basic speech: a standard voice


def test_speech_without_a_language_is_us_english() -> None:
    assert speak_say_voice(None) == ("en-US", "Polly.Joanna")
