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
    """A premium TTS voice: the Polly voice id, its language and gender, and the Polly engines that have it."""

    polly_id: str
    language: str
    gender: str
    standard: bool = True  # Polly's standard engine has it
    neural: bool = False  # Polly's neural engine has it

    @property
    def engine(self) -> str:
        """The Polly engine premium audio is made with: neural where the voice has it."""
        return "neural" if self.neural else "standard"

    @property
    def say_voice(self) -> str:
        """The name Twilio's `<Say voice>` accepts: `Polly.<Id>`, or `Polly.<Id>-Neural` for a neural-only voice.

        Twilio has neural-only voices only under their `-Neural` name; `Polly.Kevin` is not a voice there.
        """
        return f"Polly.{self.polly_id}" if self.standard else f"Polly.{self.polly_id}-Neural"


_S, _N, _SN = "S", "N", "SN"  # the Polly engines with each voice (Amazon Polly's "Available voices" table)
_POLLY: tuple[tuple[str, str, str, str], ...] = (
    ("Joanna", "en-US", "Female", _SN),
    ("Matthew", "en-US", "Male", _SN),
    ("Ivy", "en-US", "Female", _SN),
    ("Justin", "en-US", "Male", _S),
    ("Kendra", "en-US", "Female", _SN),
    ("Kimberly", "en-US", "Female", _SN),
    ("Salli", "en-US", "Female", _SN),
    ("Joey", "en-US", "Male", _SN),
    ("Kevin", "en-US", "Male", _N),
    ("Ruth", "en-US", "Female", _N),
    ("Stephen", "en-US", "Male", _N),
    ("Danielle", "en-US", "Female", _N),
    ("Gregory", "en-US", "Male", _N),
    ("Amy", "en-GB", "Female", _SN),
    ("Emma", "en-GB", "Female", _SN),
    ("Brian", "en-GB", "Male", _SN),
    ("Arthur", "en-GB", "Male", _N),
    ("Celine", "fr-FR", "Female", _S),
    ("Lea", "fr-FR", "Female", _SN),
    ("Mathieu", "fr-FR", "Male", _S),
    ("Remi", "fr-FR", "Male", _N),
    ("Marlene", "de-DE", "Female", _S),
    ("Vicki", "de-DE", "Female", _SN),
    ("Hans", "de-DE", "Male", _S),
    ("Daniel", "de-DE", "Male", _N),
    ("Carla", "it-IT", "Female", _S),
    ("Bianca", "it-IT", "Female", _SN),
    ("Giorgio", "it-IT", "Male", _S),
    ("Adriano", "it-IT", "Male", _N),
    ("Camila", "pt-BR", "Female", _SN),
    ("Vitoria", "pt-BR", "Female", _SN),
    ("Ricardo", "pt-BR", "Male", _S),
    ("Thiago", "pt-BR", "Male", _N),
    ("Tatyana", "ru-RU", "Female", _S),
    ("Maxim", "ru-RU", "Male", _S),
    ("Conchita", "es-ES", "Female", _S),
    ("Lucia", "es-ES", "Female", _SN),
    ("Enrique", "es-ES", "Male", _S),
    ("Sergio", "es-ES", "Male", _N),
    ("Penelope", "es-US", "Female", _S),
    ("Lupe", "es-US", "Female", _SN),
    ("Miguel", "es-US", "Male", _S),
    ("Pedro", "es-US", "Male", _N),
)

POLLY_VOICES: dict[str, Voice] = {
    name: Voice(name, lang, gender, standard=_S in engines, neural=_N in engines)
    for name, lang, gender, engines in _POLLY
}
DEFAULT_TTS_VOICE = "Joanna"  # when a prompt names no premium voice

# The voice `answer_speak` / `answermachine_speak` (the seed's basic, no-charge TTS) is spoken with, per language.
# Twilio's own basic voices (`man`, `woman`) are documented for en, en-gb, es, fr and de only, and a <Say> with a
# language no voice speaks may fail; so every language names a Polly standard voice Twilio lists for it.
SPEAK_VOICES: dict[str, str] = {
    "en-GB": "Amy",
    "en-US": "Joanna",
    "fr-FR": "Celine",
    "de-DE": "Marlene",
    "it-IT": "Carla",
    "pt-BR": "Camila",
    "ru-RU": "Tatyana",
    "es-ES": "Conchita",
    "es-US": "Penelope",
}
DEFAULT_SPEAK_LANGUAGE = "en-US"

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
    **{f"polly.{name.lower()}-neural": voice for name, voice in POLLY_VOICES.items() if voice.neural},
    **{ibm.lower(): POLLY_VOICES[polly] for ibm, polly in IBM_VOICES.items()},
}


def normalize_language(value: str) -> str | None:
    """The seed language code for `value` (case-insensitive), or None if it is not one of the nine."""
    lowered = value.strip().lower()
    return next((code for code in SPEAK_LANGUAGES if code.lower() == lowered), None)


def resolve_voice(value: str) -> Voice | None:
    """The Polly voice for a Polly id (`Joanna`, `Polly.Joanna`) or a seed IBM-style name, else None."""
    return _BY_LOWER.get(value.strip().lower())


def tts_say_voice(polly_id: str | None) -> str:
    """The `<Say voice>` for a premium voice (a Polly id as CallRequest keeps it; the default voice when None)."""
    voice = resolve_voice(polly_id or DEFAULT_TTS_VOICE) or POLLY_VOICES[DEFAULT_TTS_VOICE]
    return voice.say_voice


def speak_say_voice(language: str | None) -> tuple[str, str]:
    """`(language, voice)` for a `<Say>` of the seed's basic speech in one of the nine languages (en-US when None)."""
    language = normalize_language(language or "") or DEFAULT_SPEAK_LANGUAGE
    return language, POLLY_VOICES[SPEAK_VOICES[language]].say_voice
