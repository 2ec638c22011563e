"""Every bound the MIME parser applies, in one place.

A message is untrusted input: whatever it contains, parsing costs at most a small multiple of its
size in time and memory. Crossing a limit never raises; the parser stops descending, records a
defect in ``ParsedMessage.defects`` and shows what it has.
"""

from __future__ import annotations

MAX_DEPTH = 32
"""Nesting of multiparts and enclosed messages (message/rfc822). Deeper entities become opaque
leaves (``application/octet-stream`` attachments)."""

MAX_PARTS = 500
"""MIME entities (containers and leaves) parsed in one message; the rest of the message is
ignored."""

MAX_HEADER_BYTES = 256 * 1024
"""Bytes of one entity's header block that are parsed into fields; the rest of the block is
skipped up to the blank line that ends it."""

MAX_HEADER_FIELDS = 1000
"""Header fields kept per entity."""

MAX_HEADER_VALUE_CHARS = 64 * 1024
"""Characters of one header value that are decoded (RFC 2047) and parsed; longer values are cut."""

MAX_ADDRESS_HEADER_CHARS = 16 * 1024
"""Longest address header given to the strict RFC 5322 parser (it is pure Python and slow);
longer ones use the tolerant compat32 splitter."""

MAX_ADDRESSES = 1000
"""Addresses kept per address header (To, Cc, ...)."""

MAX_CHARSET_DETECT_BYTES = 64 * 1024
"""Bytes handed to charset-normalizer when a charset has to be guessed."""

MAX_HTML_DEPTH = 512
"""Estimated element nesting above which HTML is not given to an HTML5 parser (nh3, lexbor:
their cost grows with the square of the depth) but reduced to its text first."""

MAX_HTML_TO_TEXT_CHARS = 512 * 1024
"""Largest HTML converted to text with inscriptis (layout-aware, slow on big tables); larger
HTML uses lexbor's plain text extraction."""

MAX_HTML_TO_TEXT_CELLS = 5000
"""Most table cells converted with inscriptis (its table layout is the slow part)."""

MAX_DECODED_ENCLOSED_BYTES = 32 * 1024 * 1024
"""Largest transfer-encoded (base64/QP) message/rfc822 body that is decoded to be parsed."""
