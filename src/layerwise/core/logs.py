"""Where the command's messages go: the terminal gets layerwise's own warnings (and its info lines
with ``-v``), progress bars and errors; a log file gets everything at info level, with the chatter
of the libraries (transformers, datasets, Python warnings, the Trainer's metric records) that would
otherwise bury the terminal: ``report/_layerwise/layerwise.log`` for ``layerwise run``, else
``<cache>/layerwise.log``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(levelname)s %(message)s"
FILE_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
_HANDLERS: list[logging.Handler] = []
#: loggers whose info records always go to the log file (the terminal shows them with -v only)
FILE_ONLY_INFO = ("layerwise.model.trainer",)
_ROUTED: list[str] = []
_ROOT_LEVEL: list[int] = []


class _LazyFile(logging.FileHandler):
    """A log file opened (and its folder made) at the first record only; where it cannot be opened
    (a read-only folder) records are dropped silently instead of printing logging's own traceback."""

    def __init__(self, path: Path):
        super().__init__(path, encoding="utf-8", delay=True)
        self.failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        if self.stream is None:
            try:
                Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
                self.stream = self._open()
            except OSError:
                self.failed = True
                return
        super().emit(record)


class _OwnMessages(logging.Filter):
    """Let through layerwise's records, and other loggers' errors (library chatter: the log file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] == "layerwise" or record.levelno >= logging.ERROR


def setup(*, verbose: bool = False, quiet: bool = False, log_file: Path | None = None,
          libraries: bool = True) -> None:
    """Configure the root logger for one command (replacing what an earlier call set up): the
    terminal at warning level (info with ``verbose``, errors only with ``quiet``), library chatter
    and the Trainer's metric records to ``log_file`` only (created at the first record; nothing
    fails where it cannot be written)."""
    teardown()
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(FORMAT))
    console.setLevel(logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING)
    if not verbose:
        console.addFilter(_OwnMessages())
    _HANDLERS.append(console)
    if log_file is not None:
        handler = _LazyFile(log_file)
        handler.setFormatter(logging.Formatter(FILE_FORMAT))
        handler.setLevel(logging.INFO)
        _HANDLERS.append(handler)
    for h in _HANDLERS:
        root.addHandler(h)
    _ROOT_LEVEL.append(root.level)
    # info records only with -v (layerwise's modules read the level as "verbose": datasets' bars);
    # the Trainer's metric records always reach the log file
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in FILE_ONLY_INFO:
        logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)
    if libraries:
        route_libraries()


def teardown() -> None:
    """Undo :func:`setup` (the command ran inside another program, e.g. a test)."""
    root = logging.getLogger()
    for h in _HANDLERS:
        root.removeHandler(h)
        h.close()
    _HANDLERS.clear()
    if _ROOT_LEVEL:
        root.setLevel(_ROOT_LEVEL.pop(0))
        _ROOT_LEVEL.clear()
        for name in FILE_ONLY_INFO:
            logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)
    if "transformers" in _ROUTED:
        from transformers.utils import logging as tlog

        tlog.enable_default_handler()
        tlog.disable_propagation()
    _ROUTED.clear()


def route_libraries() -> None:
    """Send the records of transformers and datasets through the root logger's handlers (the log
    file; errors also to the terminal) instead of their own terminal handlers."""
    try:
        from transformers.utils import logging as tlog

        tlog.disable_default_handler()
        tlog.enable_propagation()
        _ROUTED.append("transformers")
    except ImportError:  # pragma: no cover
        pass
    try:
        from datasets.utils import logging as dlog

        lib = logging.getLogger(dlog._get_library_name())
        for h in [h for h in lib.handlers if type(h) is logging.StreamHandler]:
            lib.removeHandler(h)
        lib.propagate = True
    except (ImportError, AttributeError):  # pragma: no cover
        pass
