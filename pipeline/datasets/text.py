"""Text of rows read from files written by hand or by other tools: bytes that are not UTF-8, and mojibake.

Two ways a transcript goes wrong on its way through spreadsheets and Windows editors:
- *cp1252 bytes in a UTF-8 file* ("caf\\xe9"): :func:`decode_escaped` reads each run of bytes that
  is not UTF-8 as cp1252, or says it cannot (a byte cp1252 leaves undefined);
- *mojibake*, UTF-8 decoded as cp1252 and saved again ("mustâ€™ve"): :func:`repair_mojibake`.
"""

from __future__ import annotations

import re

# cp1252's characters for the bytes 0x80-0x9f; with latin-1 for the rest, every byte has a character.
_CP1252_HIGH = bytes(range(0x80, 0xA0)).decode("cp1252", errors="ignore")
# A run of two or more characters that a single-byte codec could have produced from UTF-8 bytes.
_MOJIBAKE_RUN = re.compile(f"[{re.escape(_CP1252_HIGH)}\u0080-\u00ff]{{2,}}")


def _byte(char: str) -> bytes:
    try:
        return char.encode("cp1252")
    except UnicodeEncodeError:
        return char.encode("latin-1")  # C1 controls that cp1252 leaves undefined (0x81, 0x8d, 0x8f, 0x90, 0x9d)


def _repair_run(match: re.Match) -> str:
    run = match.group(0)
    try:
        return b"".join(_byte(c) for c in run).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return run  # not valid UTF-8 once re-encoded: genuine text such as "’’" or "é…"


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 text mis-decoded as cp1252/latin-1 ("â€™" -> "’", "Ã©" -> "é"), run by run.

    A run is repaired only when its bytes form valid UTF-8, which genuine accented or typographic
    text practically never does, so correct strings come back unchanged.
    """
    if text.isascii():
        return text
    return _MOJIBAKE_RUN.sub(_repair_run, text)


# Bytes that were not UTF-8, as Python's surrogateescape error handler keeps them: U+DC80..U+DCFF.
_ESCAPED_RUN = re.compile("[\udc80-\udcff]+")


class EncodingRepairError(ValueError):
    """Bytes that are neither UTF-8 nor cp1252."""


def decode_escaped(text: str) -> tuple[str, bool]:
    """(text, repaired) for a string decoded from UTF-8 with ``errors="surrogateescape"``: each run of
    escaped bytes is decoded as cp1252. Raises EncodingRepairError naming the bytes when cp1252
    cannot decode them either."""
    if not _ESCAPED_RUN.search(text):
        return text, False

    def cp1252(match: re.Match) -> str:
        raw = match.group(0).encode("utf-8", "surrogateescape")
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError as err:
            raise EncodingRepairError(f"bytes {raw!r} are neither UTF-8 nor cp1252") from err

    return _ESCAPED_RUN.sub(cp1252, text), True
