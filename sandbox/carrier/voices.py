"""Which `<Say>` voice and language pairs Twilio speaks, as the simulator judges them.

Facts and sources:
- `<Say voice>` takes `man`, `woman`, an Amazon Polly voice as `Polly.<Id>` (standard engine) or
  `Polly.<Id>-Neural` (neural engine), or a Google voice as `Google.<name>` (Twilio's `<Say>` reference and its
  text-to-speech voice table). A voice Polly has only as a neural voice (Kevin, Ruth, Stephen, ...) exists on
  Twilio only as `Polly.<Id>-Neural` (Amazon Polly's "Available voices" table).
- With no voice, Twilio speaks with its default basic voice; `man` and `woman` support the languages `en`,
  `en-gb`, `es`, `fr` and `de` only (`<Say>` reference). "Using an invalid combination of voice and language may
  result in error and <Say> instruction failure" (same page): the simulator treats a language no voice speaks as
  that failure.
- An invalid voice is warning 13511 ("Say: Invalid voice value"); inside `<Gather>` it is 13321 ("Gather -> Say:
  Invalid voice value"), and since the TwiML changelog of 2024-10-01 "If the <Say> nested inside of a <Gather>
  verb provides an invalid voice, Twilio will treat this as a failure and hit the fallback URL".
- `alice` is accepted as the legacy voice it was (it spoke many locales); the simulator does not check its
  languages.

Only the Polly voices of the languages callbridge's vendor offers are listed (en-US, en-GB, fr-FR, de-DE, it-IT,
pt-BR, ru-RU, es-ES, es-US); a Polly voice of any other language is judged unknown.
"""

from __future__ import annotations

BASIC_VOICES = frozenset({"man", "woman"})
BASIC_LANGUAGES = frozenset({"en", "en-gb", "es", "fr", "de"})
LEGACY_VOICES = frozenset({"alice"})

# Polly voices on Twilio by language: (standard engine, neural engine).
POLLY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en-US": (
        ("Ivy", "Joanna", "Joey", "Justin", "Kendra", "Kimberly", "Matthew", "Salli"),
        (
            *("Danielle", "Gregory", "Ivy", "Joanna", "Joey", "Justin", "Kendra"),
            *("Kevin", "Kimberly", "Matthew", "Ruth", "Salli", "Stephen"),
        ),
    ),
    "en-GB": (("Amy", "Brian", "Emma"), ("Amy", "Arthur", "Brian", "Emma")),
    "fr-FR": (("Celine", "Lea", "Mathieu"), ("Lea", "Remi")),
    "de-DE": (("Hans", "Marlene", "Vicki"), ("Daniel", "Vicki")),
    "it-IT": (("Bianca", "Carla", "Giorgio"), ("Adriano", "Bianca")),
    "pt-BR": (("Camila", "Ricardo", "Vitoria"), ("Camila", "Thiago", "Vitoria")),
    "ru-RU": (("Maxim", "Tatyana"), ()),
    "es-ES": (("Conchita", "Enrique", "Lucia"), ("Lucia", "Sergio")),
    "es-US": (("Lupe", "Miguel", "Penelope"), ("Lupe", "Pedro")),
}
# `Polly.<Id>` / `Polly.<Id>-Neural` → the language it speaks.
POLLY_SAY_VOICES: dict[str, str] = {
    **{f"Polly.{name}": language for language, (standard, _) in POLLY.items() for name in standard},
    **{f"Polly.{name}-Neural": language for language, (_, neural) in POLLY.items() for name in neural},
}


def say_problem(voice: str, language: str) -> str | None:
    """Why Twilio would not speak a `<Say>` with these `voice` and `language` attributes ("" when absent), or None."""
    lang = language.strip().lower()
    if not voice or voice in BASIC_VOICES:
        if lang and lang not in BASIC_LANGUAGES and lang.split("-")[0] not in BASIC_LANGUAGES:
            who = f"the basic voice {voice!r}" if voice else "the default (basic) voice"
            return f"{who} does not speak {language!r}"
        return None
    if voice in LEGACY_VOICES or voice.startswith("Google."):
        return None
    spoken = POLLY_SAY_VOICES.get(voice)
    if spoken is None:
        return f"Twilio has no voice {voice!r}"
    if lang and lang != spoken.lower():
        return f"{voice} speaks {spoken}, not {language!r}"
    return None
