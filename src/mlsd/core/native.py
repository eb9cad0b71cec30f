"""Native libraries' console output (C/C++ ``printf`` on file descriptor 1) sent to the log instead.

LightGBM keeps its log level and log callback per thread: a warning raised inside its OpenMP
workers ("Met categorical feature which contains sparse values", once per fit) ignores both
``verbose=-1`` and ``lightgbm.register_logger`` and lands between mlsd's result lines. Around a
native call, :func:`native_output_to_log` points descriptor 1 at a temporary file and hands what was
written to :mod:`logging` (the file under the home; the console only with ``--verbose``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

_lock = threading.Lock()  # one redirection at a time: descriptor 1 is process-wide


@contextlib.contextmanager
def native_output_to_log(logger: str) -> Iterator[None]:
    """Run the block with descriptor 1 captured; each captured line becomes an INFO record of ``logger``."""
    try:
        stdout = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout (a captured test stream): nothing to redirect
        yield
        return
    with _lock, tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stdout.flush()
        saved = os.dup(stdout)
        os.dup2(sink.fileno(), stdout)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, stdout)
            os.close(saved)
            sink.seek(0)
            log = logging.getLogger(logger)
            for line in sink.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    log.info(line)
