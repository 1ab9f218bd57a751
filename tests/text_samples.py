"""Varied strings for tokenizer identity tests: prose, code, whitespace runs, numbers, emoji, CJK,
special-token text, and seeded random Unicode."""

from __future__ import annotations

import random

FIXED = [
    "",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    "\t",
    "Hello world",
    " Hello world",
    "Hello  world   with    runs",
    "trailing spaces   ",
    "   leading spaces",
    "line one\nline two\r\nline three\rend",
    "tabs\tand\t\ttabs",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say we've done what you'd've DONE, isn't it? WE'RE HERE.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }  // dot product",
    "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
    "x = {'a': [1, 2, 3], \"b\": None}  # dict",
    "0 1 12 123 1234 12345 123456 3.14159 -2.5e-10 1,000,000 0x1F 0b1010",
    "2024-01-31T23:59:59Z  v1.2.3  192.168.0.1  $19.99  50%  #1",
    "½ ¼ ¾ ² ³ ⅓ Ⅻ ① ٣ ৪ ๕",
    "emoji: 😀 😃 🎉 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️",
    "日本語のテキストです。東京は日本の首都です。",
    "中文文本，包括标点符号！还有数字123。",
    "한국어 텍스트입니다.",
    "Ünïcödé naïve café résumé façade Ærøskøbing ß ẞ İstanbul ǅ",
    "Ελληνικά και Русский текст и עברית ועוד العربية",
    "हिन्दी पाठ और தமிழ் உரை",
    "a\u00a0b\u2009c\u200bd\ufeffe",  # no-break space, thin space, zero-width space, BOM
    "combining: e\u0301 a\u0308 n\u0303",
    "control chars: \x00 \x01 \x1f \x7f",
    "https://example.com/path?query=1&other=two#fragment",
    "user@example.com, @handle, #hashtag",
    "!!!???...,,,;;;:::---___===+++***&&&^^^%%%$$$###@@@",
    "(((nested))) [[brackets]] {{{braces}}} <<<angles>>>",
    "CamelCaseIdentifier snake_case_identifier kebab-case-identifier SCREAMING_CASE",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    " " * 40 + "x",
    "\n" * 12 + "y",
    "mixed \t \n \r\n whitespace \u3000 ideographic",
]


def special_token_samples(tokens: list[str]) -> list[str]:
    """Strings that contain the given special/added tokens as text, alone and in context."""
    samples = []
    for token in tokens:
        samples += [token, f"{token}hello", f"say {token} now", f" {token} ", f"{token}{token}", f"<{token}>"]
    if len(tokens) >= 2:
        samples.append(f"{tokens[0]}system\nYou are helpful.{tokens[1]}\n{tokens[0]}user\nHi!{tokens[1]}\n")
    return samples


_RANGES = [
    (0x20, 0x7E),  # ASCII
    (0xA0, 0x24F),  # Latin-1 and Latin Extended
    (0x370, 0x3FF),  # Greek
    (0x400, 0x4FF),  # Cyrillic
    (0x4E00, 0x4FFF),  # CJK
    (0x3040, 0x30FF),  # kana
    (0xAC00, 0xAD00),  # Hangul
    (0x1F300, 0x1F64F),  # emoji
    (0x2000, 0x206F),  # punctuation and odd spaces
]


def random_samples(count: int, seed: int = 0) -> list[str]:
    """Seeded random strings drawn from several scripts, with spaces, digits and newlines mixed in."""
    rng = random.Random(seed)
    samples = []
    for _ in range(count):
        pieces = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            if kind < 0.15:
                pieces.append(" " * rng.randint(1, 4))
            elif kind < 0.2:
                pieces.append(rng.choice(["\n", "\t", "\r\n", "\n\n"]))
            elif kind < 0.3:
                pieces.append(str(rng.randint(0, 10**6)))
            else:
                low, high = rng.choice(_RANGES)
                pieces.append("".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 8))))
        samples.append("".join(pieces))
    return samples


def varied_strings(special_tokens: list[str], random_count: int = 200, seed: int = 0) -> list[str]:
    """The fixed samples, special-token text and random_count seeded random strings."""
    return FIXED + special_token_samples(special_tokens) + random_samples(random_count, seed)
