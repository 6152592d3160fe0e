"""The seed's speech languages and the premium TTS voices (Amazon Polly), with the seed's IBM-style names."""

from __future__ import annotations

from dataclasses import dataclass

# The nine languages of the seed's "Speak Lang" table, by value.
SPEAK_LANGUAGES: dict[str, str] = {
    "en-GB": "English – British",
    "en-US": "English – USA",
    "fr-FR": "French",
    "de-DE": "German",
    "it-IT": "Italian",
    "pt-BR": "Portuguese",
    "ru-RU": "Russian",
    "es-ES": "Spanish",
    "es-US": "Spanish – USA",
}


@dataclass(frozen=True)
class Voice:
    """A premium TTS voice: the Polly voice id, its language and gender."""

    polly_id: str
    language: str
    gender: str


_POLLY: tuple[tuple[str, str, str], ...] = (
    ("Joanna", "en-US", "Female"),
    ("Matthew", "en-US", "Male"),
    ("Ivy", "en-US", "Female"),
    ("Justin", "en-US", "Male"),
    ("Kendra", "en-US", "Female"),
    ("Kimberly", "en-US", "Female"),
    ("Salli", "en-US", "Female"),
    ("Joey", "en-US", "Male"),
    ("Kevin", "en-US", "Male"),
    ("Ruth", "en-US", "Female"),
    ("Stephen", "en-US", "Male"),
    ("Danielle", "en-US", "Female"),
    ("Gregory", "en-US", "Male"),
    ("Amy", "en-GB", "Female"),
    ("Emma", "en-GB", "Female"),
    ("Brian", "en-GB", "Male"),
    ("Arthur", "en-GB", "Male"),
    ("Celine", "fr-FR", "Female"),
    ("Lea", "fr-FR", "Female"),
    ("Mathieu", "fr-FR", "Male"),
    ("Remi", "fr-FR", "Male"),
    ("Marlene", "de-DE", "Female"),
    ("Vicki", "de-DE", "Female"),
    ("Hans", "de-DE", "Male"),
    ("Daniel", "de-DE", "Male"),
    ("Carla", "it-IT", "Female"),
    ("Bianca", "it-IT", "Female"),
    ("Giorgio", "it-IT", "Male"),
    ("Adriano", "it-IT", "Male"),
    ("Camila", "pt-BR", "Female"),
    ("Vitoria", "pt-BR", "Female"),
    ("Ricardo", "pt-BR", "Male"),
    ("Thiago", "pt-BR", "Male"),
    ("Tatyana", "ru-RU", "Female"),
    ("Maxim", "ru-RU", "Male"),
    ("Conchita", "es-ES", "Female"),
    ("Lucia", "es-ES", "Female"),
    ("Enrique", "es-ES", "Male"),
    ("Sergio", "es-ES", "Male"),
    ("Penelope", "es-US", "Female"),
    ("Lupe", "es-US", "Female"),
    ("Miguel", "es-US", "Male"),
    ("Pedro", "es-US", "Male"),
)

POLLY_VOICES: dict[str, Voice] = {name: Voice(name, lang, gender) for name, lang, gender in _POLLY}

# The seed's example voice ("en-US_AllisonVoice") is an IBM Watson name; each maps to the
# Polly voice closest in language and gender. V3 variants map like their base voice.
_IBM_TO_POLLY: dict[str, str] = {
    "en-US_AllisonVoice": "Joanna",
    "en-US_LisaVoice": "Kendra",
    "en-US_MichaelVoice": "Matthew",
    "en-US_EmilyV3Voice": "Salli",
    "en-US_HenryV3Voice": "Joey",
    "en-US_KevinV3Voice": "Stephen",
    "en-US_OliviaV3Voice": "Ruth",
    "en-GB_KateVoice": "Amy",
    "en-GB_CharlotteV3Voice": "Emma",
    "en-GB_JamesV3Voice": "Brian",
    "fr-FR_ReneeVoice": "Celine",
    "fr-FR_NicolasV3Voice": "Mathieu",
    "de-DE_BirgitVoice": "Marlene",
    "de-DE_DieterVoice": "Hans",
    "de-DE_ErikaV3Voice": "Vicki",
    "it-IT_FrancescaVoice": "Carla",
    "pt-BR_IsabelaVoice": "Camila",
    "es-ES_EnriqueVoice": "Enrique",
    "es-ES_LauraVoice": "Lucia",
    "es-US_SofiaVoice": "Penelope",
    "es-LA_SofiaVoice": "Penelope",
}
IBM_VOICES: dict[str, str] = {
    **_IBM_TO_POLLY,
    **{name.replace("Voice", "V3Voice"): polly for name, polly in _IBM_TO_POLLY.items() if "V3" not in name},
}

_BY_LOWER: dict[str, Voice] = {
    **{name.lower(): voice for name, voice in POLLY_VOICES.items()},
    **{f"polly.{name.lower()}": voice for name, voice in POLLY_VOICES.items()},
    **{ibm.lower(): POLLY_VOICES[polly] for ibm, polly in IBM_VOICES.items()},
}


def normalize_language(value: str) -> str | None:
    """The seed language code for `value` (case-insensitive), or None if it is not one of the nine."""
    lowered = value.strip().lower()
    return next((code for code in SPEAK_LANGUAGES if code.lower() == lowered), None)


def resolve_voice(value: str) -> Voice | None:
    """The Polly voice for a Polly id (`Joanna`, `Polly.Joanna`) or a seed IBM-style name, else None."""
    return _BY_LOWER.get(value.strip().lower())
