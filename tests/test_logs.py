"""Long runs tell how they go: timestamped log lines and TensorBoard event files."""

import glob
import logging
import os
import re

import jax

from dcjax import logs
from dcjax.condense import DMConfig, condense_many
from dcjax.data import load_dataset


def test_log_lines_carry_a_timestamp(capsys):
  logs.setup(logging.INFO)
  logs.setup(logging.INFO)  # a second call adds no second handler
  capsys.readouterr()
  logs.LOGGER.info("stage %s done", "real")
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1
  assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d I dcjax\] stage real done", err[0])


def test_condensation_losses_go_to_tensorboard_event_files(tmp_path):
  pool, _ = load_dataset("synthetic", num_classes=3, train_per_class=8, test_per_class=1,
                         image_shape=(8, 8, 1), seed=0)
  cfg = DMConfig(iterations=3, batch_real=2, dsa_strategy=None, net="Linear")
  logdir = str(tmp_path / "tb")
  with logs.metrics_writer(logdir) as writer:
    condense_many(jax.random.split(jax.random.key(0), 2), pool, "dm", 2, "real", None, cfg,
                  writer=writer, tag="mine")
    writer.scalar("mine/accuracy", 0.5, 1)
  files = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
  assert len(files) == 1
  data = open(files[0], "rb").read()
  # the event protobufs hold each tag as text: one loss per iteration (3) and the accuracy
  assert data.count(b"mine/loss") == 3 and data.count(b"mine/accuracy") == 1


def test_no_directory_writes_nothing(tmp_path):
  with logs.metrics_writer(None) as writer:
    writer.scalar("x", 1.0)
  assert os.listdir(tmp_path) == []


def test_the_compile_clock_counts_a_compile_and_not_a_cached_call():
  f = jax.jit(lambda x: (x @ x.T).sum() * 3.0 + 1.25)  # a program no other test compiles
  x = jax.numpy.ones((7, 5))
  with logs.CompileClock() as first:
    f(x).block_until_ready()
  with logs.CompileClock() as second:
    f(x).block_until_ready()
  assert first.seconds > 0.0
  assert second.seconds < first.seconds / 10
  with logs.CompileClock() as other_shape:  # a new shape is a new compile
    f(jax.numpy.ones((3, 2))).block_until_ready()
  assert other_shape.seconds > 0.0
