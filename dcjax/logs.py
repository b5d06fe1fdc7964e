"""Long runs that tell how they go: timestamped log lines (stdlib ``logging``) and an optional
metrics writer (TensorBoard event files through ``tensorboardX``, the ``tensorboard`` extra).

    logs.setup()                                  # once, in a command line's main
    logs.LOGGER.info("stage %s done", name)       # 2026-12-06 14:30:01 I dcjax] stage ... done
    with logs.metrics_writer("runs/tb") as w:     # None: a writer that writes nothing
      w.scalar("condense(dm,10,real)/loss", 0.3, step=100)

Progress bars (tqdm) stay: they show a stage's steps, loss and ETA; the log lines mark the
stages with wall-clock times, so a run of hours can be read afterwards.
"""

from __future__ import annotations

import logging
import sys

import jax

LOGGER = logging.getLogger("dcjax")
FORMAT = "%(asctime)s %(levelname).1s %(name)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _StderrHandler(logging.StreamHandler):
  """Writes to whatever ``sys.stderr`` is when a line is emitted (a notebook's or a test's
  captured stream included), not to the one of the first ``setup``."""

  @property
  def stream(self):
    return sys.stderr

  @stream.setter
  def stream(self, value):
    del value


def setup(level: int | str = logging.INFO) -> logging.Logger:
  """Timestamped lines of the ``dcjax`` logger on stderr (once; later calls set the level)."""
  if not any(isinstance(h, _StderrHandler) for h in LOGGER.handlers):
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    LOGGER.addHandler(handler)
    LOGGER.propagate = False
  LOGGER.setLevel(level)
  return LOGGER


class MetricsWriter:
  """Writes nothing: the writer of a run without a metrics directory."""

  def scalar(self, tag: str, value: float, step: int = 0) -> None:
    del tag, value, step

  def close(self) -> None:
    pass

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class TensorBoardWriter(MetricsWriter):
  """Scalars as TensorBoard event files in ``logdir`` (``tensorboard --logdir`` reads them)."""

  def __init__(self, logdir: str):
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    except ImportError as e:  # pragma: no cover - the test extra installs it
      raise ImportError("--tensorboard needs tensorboardX: pip install "
                        "'dcjax[tensorboard]'") from e
    self._writer = SummaryWriter(logdir)

  def scalar(self, tag, value, step=0):
    self._writer.add_scalar(tag, float(value), int(step))

  def close(self):
    self._writer.close()


def metrics_writer(logdir: str | None) -> MetricsWriter:
  """A TensorBoard writer for ``logdir``, or one that writes nothing (None)."""
  return MetricsWriter() if logdir is None else TensorBoardWriter(logdir)


_COMPILE_EVENTS = "/jax/core/compile/"  # tracing, lowering and XLA's compile of every jit


class CompileClock:
  """Seconds jax spent compiling (tracing, lowering, XLA compile) while the clock is open, read
  from ``jax.monitoring``'s duration events, so that a stage's wall time splits into compile and
  steady state (``seconds - compile_seconds``). Single-threaded use; nestable.

    with logs.CompileClock() as clock:
      ...
    clock.seconds
  """

  def __init__(self):
    self.seconds = 0.0

  def _listen(self, event: str, duration: float, **_) -> None:
    if event.startswith(_COMPILE_EVENTS):
      self.seconds += duration

  def __enter__(self) -> "CompileClock":
    jax.monitoring.register_event_duration_secs_listener(self._listen)
    return self

  def __exit__(self, *exc) -> None:
    jax.monitoring.unregister_event_duration_listener(self._listen)
