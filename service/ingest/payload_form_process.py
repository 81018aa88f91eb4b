"""The payload-form worker process: reads bodies on stdin, writes their payload form on stdout.

Started by ``payload_forms.PayloadFormWorker`` as ``python -m
service.ingest.payload_form_process``; it imports only the signature module and the JSON
re-serialisation. A request is a 4-byte big-endian length and the body; an answer is one
byte, 0 when the body has no payload form, or 1 then a 4-byte length and the form.
It lowers its own scheduling priority, so the server's event loop gets the CPU first, and
exits at the end of its input, or after ``BODIES_PER_PROCESS_MAX`` bodies (its parent starts
another when it needs one).
"""

from __future__ import annotations

import os
import struct
import sys
from typing import BinaryIO

from service.cybersource.webhook_signature import payload_content

FRAME_HEADER = struct.Struct(">I")
HAS_CONTENT = b"\x01"
NO_CONTENT = b"\x00"
# Nice increment: a body that does not verify waits for a spare CPU, not the other way round.
NICENESS = 10
BODIES_PER_PROCESS_MAX = 100_000


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    for _ in range(BODIES_PER_PROCESS_MAX):
        header = requests.read(FRAME_HEADER.size)
        if len(header) < FRAME_HEADER.size:
            return  # the server closed our input: it is stopping
        (length,) = FRAME_HEADER.unpack(header)
        body = requests.read(length)
        if len(body) < length:
            return
        content = payload_content(body)
        if content is None:
            answers.write(NO_CONTENT)
        else:
            answers.write(HAS_CONTENT + FRAME_HEADER.pack(len(content)) + content)
        answers.flush()


def main() -> None:
    os.nice(NICENESS)
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
