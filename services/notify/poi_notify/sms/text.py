"""SMS text: how many parts a body costs, and its Latin (KMU-55) form for numbers that asked for it."""

import math

from translitua import UkrainianKMU, translit

# At most this many parts per message: a longer text is a template bug, not something to send.
MAX_PARTS = 3

# GSM 03.38: the default alphabet, and the extension table whose characters cost two septets each.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")
# Typography a template may use, and what it becomes in GSM-7 so a Latin message stays in 160-character parts.
_GSM_FALLBACK = str.maketrans(
    {"—": "-", "–": "-", "«": '"', "»": '"', "’": "'", "ʼ": "'", "“": '"', "”": '"', "…": "...", "№": "No"}
)


_GSM = frozenset(_GSM_BASIC | _GSM_EXTENDED)


def is_gsm7(body: str) -> bool:
    """Whether the body fits the GSM-7 alphabet (else it goes as UCS-2, 70 characters a part)."""
    # Set operations, not a loop per character: a flush counts the parts of hundreds of thousands of bodies.
    return _GSM.issuperset(body)


def parts(body: str) -> int:
    """How many SMS parts the body is sent as."""
    if is_gsm7(body):
        septets = len(body) + sum(body.count(ch) for ch in _GSM_EXTENDED)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def latin(body: str) -> str:
    """The body in the official Ukrainian transliteration (KMU-55), kept inside the GSM-7 alphabet."""
    text = translit(body, UkrainianKMU).translate(_GSM_FALLBACK)
    return "".join(ch if ch in _GSM_BASIC or ch in _GSM_EXTENDED else "?" for ch in text)
