"""What notify itself says by SMS (codes and answers to keywords), in Ukrainian and English, one part each."""

TEXTS = {
    "code": {
        "uk": "Пункти незламності: код {code}. Не ви? Ігноруйте",
        "en": "Points of Invincibility code: {code}. Not you? Ignore this SMS.",
    },
    "unsubscribe_code": {
        "uk": "Код для відписки від сповіщень: {code}",
        "en": "Code to unsubscribe from Points of Invincibility alerts: {code}",
    },
    "confirmed": {
        "uk": "Підписку підтверджено. СТОП - вимкнути всі SMS",
        "en": "Subscription confirmed. Reply STOP to end all SMS.",
    },
    "unsubscribed": {
        "uk": "Підписки видалено. Більше сповіщень не буде",
        "en": "Your subscriptions are removed. No more alerts.",
    },
    "stopped": {
        "uk": "SMS вимкнено. START - увімкнути знову",
        "en": "SMS stopped. Reply START to receive them again.",
    },
    "started": {
        "uk": "SMS знову увімкнено. СТОП - вимкнути",
        "en": "SMS on again. Reply STOP to end them.",
    },
    "wrong_code": {
        "uk": "Код невірний або застарів. Запросіть новий на сайті",
        "en": "Wrong or expired code. Ask for a new one on the website.",
    },
}


def reply(name: str, language: str, **values: str) -> str:
    """The text in the number's language (Ukrainian when unknown)."""
    texts = TEXTS[name]
    return texts.get(language, texts["uk"]).format(**values)
