"""Command-line flags from frozen dataclass configs: every field is a flag with its default."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from typing import Any

from dcjax.condense.registry import condenser_names, get_condenser
from dcjax.condense.settings import settings


def _parse_optional(kind):
  def parse(text: str):
    return None if text.lower() in ("none", "null", "") else kind(text)
  return parse


def _bool(text: str) -> bool:
  if text.lower() in ("1", "true", "yes", "on"):
    return True
  if text.lower() in ("0", "false", "no", "off"):
    return False
  raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_config_flags(parser: argparse.ArgumentParser, cls: type, prefix: str = "",
                     docs: dict[str, str] | None = None, preset_defaults: bool = False,
                     choices: dict[str, tuple] | None = None) -> None:
  """Adds ``--{prefix}{field}`` for every field of dataclass ``cls``; help shows the default.
  A boolean field is ``--field / --no-field``; ``choices`` {field: allowed values} lets argparse
  refuse other values.

  With ``preset_defaults`` a flag that is not given is absent from the parsed namespace (so
  that only given flags override a preset), and its help names the field's default as the
  default preset's value.
  """
  docs, choices = docs or {}, choices or {}
  defaults = {f.name: f.default for f in dataclasses.fields(cls)}
  for name, convert, kind in _flag_fields(cls):
    default = defaults[name]
    flag = f"--{prefix}{name}".replace("_", "-")
    extra = ({"action": argparse.BooleanOptionalAction} if kind.startswith("bool")
             else {"type": convert, "choices": choices.get(name)})
    parser.add_argument(
        flag, dest=f"{prefix}{name}", default=argparse.SUPPRESS if preset_defaults else default,
        help=f"{docs.get(name, '')} (default{' preset' if preset_defaults else ''}: "
        f"{default!r})".strip(), **extra)


def config_from_args(args: argparse.Namespace, cls: type, prefix: str = "", **fixed: Any):
  """Builds ``cls`` from the parsed flags added by ``add_config_flags``."""
  values = {}
  for field in dataclasses.fields(cls):
    key = f"{prefix}{field.name}"
    if hasattr(args, key):
      values[field.name] = getattr(args, key)
  values.update(fixed)
  return cls(**values)


# ----------------------------------------------------------------------------- condensers


def _flag_fields(config_class: type) -> list[tuple[str, Any, str]]:
  """(field, parser, type name) of every field settable from a command line (numbers,
  strings, booleans, optionally None); structured fields are set in code (presets)."""
  hints = typing.get_type_hints(config_class)
  out = []
  for field in dataclasses.fields(config_class):
    args = typing.get_args(hints[field.name])
    kind = next((a for a in args if a is not type(None)), hints[field.name])
    if kind not in (bool, int, float, str):
      continue
    parse = _bool if kind is bool else kind
    out.append((field.name, _parse_optional(parse) if type(None) in args else parse,
                kind.__name__ + (" or none" if type(None) in args else "")))
  return out


# Help of the condensers' config fields, by name (a field's own ``help`` metadata wins)
FIELD_HELP = {
    "iterations": "condensation iterations",
    "lr_img": "learning rate of the synthetic images",
    "momentum": "SGD momentum of the synthetic images",
    "batch_real": "real images per class in each iteration's batch",
    "outer_loop": "outer steps per iteration (a fresh network, its gradients matched)",
    "inner_loop": "network training steps on the synthetic set between outer steps",
    "lr_net": "learning rate of the network trained between outer steps",
    "batch_train": "batch size of that network training",
    "dsa_strategy": "differentiable Siamese augmentation while condensing (none: off)",
    "net": "network the condenser matches with",
    "init_scheme": "initialisation of that network: torch (the reference's) or flax",
    "bn_per_class": "real images per class that set BatchNorm statistics before each outer step",
    "real_chunk": "real images per gradient chunk (0: per backend; none: one pass)",
    "conv_impl": "the condensing network's convolution implementation (auto: per backend)",
    "pool_size": "online networks trained on the evolving synthetic set",
    "max_online_updates": "steps of an online network before it is re-initialised",
    "online_lr": "learning rate of the online networks",
    "online_batch": "synthetic images per online step",
    "reg": "ridge regularisation of the kernel regression on the features",
    "learn_labels": "learn the synthetic labels (soft) with the images",
    "epsilon": "the privacy budget of the DP condenser",
    "delta": "the DP delta",
    "group_size": "expected real images per class sampled in each step (sets the rate)",
    "noise_multiplier": "Gaussian noise multiplier (none: calibrated to epsilon)",
    "sample_rate": "Poisson sampling rate (none: from group_size and the class sizes)",
    "max_class_size": "largest class size n_max, for the truncation's accounting",
    "ipc": "images per class",
    "clip": "L2 clipping norm of each real example's contribution",
    "syn_steps": "student steps on the synthetic set per iteration",
    "expert_epochs": "epochs of the expert trajectory the student must match",
    "max_start_epoch": "latest expert epoch a matched segment starts from",
    "num_experts": "expert trajectories trained per run",
    "lr_lr": "learning rate of the learned student learning rate",
    "lr_syn_init": "initial student learning rate",
    "lr_expert": "learning rate of the expert networks",
    "batch_expert": "batch size of the expert training",
    "remat": "rematerialise the student steps (less memory, more compute)",
    "unroll": "student steps unrolled per scan step",
}


def add_condenser_flags(parser: argparse.ArgumentParser) -> None:
  """``--<method>.<field>`` for every command-line field of every registered condenser's
  config, one argument group per condenser; absent from the namespace unless given
  (``condenser_settings``). Help: the field's ``help`` metadata, its type, its preset value."""
  for method in condenser_names():
    condenser = get_condenser(method)
    preset = condenser.preset(10)
    fields = condenser.config_class.__dataclass_fields__
    group = parser.add_argument_group(
        f"{method} settings ({condenser.config_class.__name__}; default: its preset, shown "
        "for ipc 10)")
    for name, parse, kind in _flag_fields(condenser.config_class):
      help_text = fields[name].metadata.get("help", FIELD_HELP.get(name, ""))
      extra = ({"action": argparse.BooleanOptionalAction} if kind.startswith("bool")
               else {"type": parse, "metavar": kind.split()[0].upper()})
      group.add_argument(f"--{method}.{name}", dest=f"{method}.{name}",
                         default=argparse.SUPPRESS,
                         help=f"{help_text} ({kind}; preset {getattr(preset, name)!r})".strip(),
                         **extra)


def condenser_settings(args: argparse.Namespace):
  """The ``--<method>.<field>`` flags given, as ``dcjax.condense.settings`` overrides."""
  per_method: dict[str, dict[str, Any]] = {}
  for dest, value in vars(args).items():
    if "." in dest:
      method, name = dest.split(".", 1)
      per_method.setdefault(method, {})[name] = value
  return settings(per_method)


def argument_type(check):
  """An argparse ``type`` from a check that raises ValueError: its message becomes the usage
  error (argparse would otherwise print only the function's name)."""
  def convert(text: str):
    try:
      return check(text)
    except ValueError as err:
      raise argparse.ArgumentTypeError(str(err)) from None
  convert.__name__ = check.__name__
  return convert


class ArgumentParser(argparse.ArgumentParser):
  """argparse whose usage errors are one line on stderr (exit 2), like every other refusal."""

  def error(self, message: str):
    # one program name in every error: ``experiments.NAME``, as the run-time refusals print it
    self.exit(2, f"{self.prog.removeprefix('python -m ')}: error: {message} (see --help)\n")


def exit_code(err: BaseException) -> int:
  """2 for bad input (a flag's value), 1 for a bad state found at run time."""
  code = getattr(err, "exit_code", None)
  if code is not None:
    return code
  if isinstance(err, (ValueError, TypeError)):
    return 2
  return 1


def run_main(main, argv: list[str], prog: str = "dcjax",
             interrupted: str = "interrupted: finished stages are kept; the same command "
             "resumes from them", last_words: bool = False) -> None:
  """Runs an experiment's main. A refusal prints one line on stderr and exits 2 (bad input) or
  1 (bad state, failure at run time); no traceback unless the environment sets DCJAX_DEBUG=1.

  last_words: the process ends right after (``entry_point``): once the line is written, stderr
  is closed to everything else. Releasing the error frees what it held (Orbax's pending reads
  of a damaged file), whose clean-up reports to stderr from the main thread or another one.
  """
  try:
    main(argv)
  except KeyboardInterrupt:
    sys.stderr.write(f"{prog}: {interrupted}\n")
    raise SystemExit(130) from None
  except Exception as err:  # pylint: disable=broad-except
    if os.environ.get("DCJAX_DEBUG") == "1":
      raise
    message = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, (ValueError, TypeError, OSError, FloatingPointError)):
      message = (f"internal error ({type(err).__name__}): {message} (set DCJAX_DEBUG=1 for "
                 "the traceback)")
    line = f"{prog}: error: {message}\n"
    if last_words:
      # Close stderr to everything else first, then write the line to the real stderr: a
      # library thread reporting in between (Orbax's reads of a damaged file fail one by one
      # after the first) then goes to /dev/null instead of after, or into, the line.
      os.write(_silence_stderr(), line.encode())
    else:
      sys.stderr.write(line)
    raise SystemExit(exit_code(err)) from None


def _silence_stderr() -> int:
  """Points fd 2 (and Python's unraisable-exception reports) at /dev/null; returns a
  descriptor of the stderr it replaced."""
  sys.stdout.flush()
  sys.stderr.flush()
  original = os.dup(2)
  os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
  sys.unraisablehook = lambda *_: None
  return original


def entry_point(main, prog: str) -> None:
  """``python -m experiments.NAME``: ``run_main`` on the command line. After a refusal the
  process ends at once (``os._exit``), so that nothing prints after its one line: no library's
  background thread can add to stderr during interpreter teardown."""
  try:
    run_main(main, sys.argv[1:], prog=prog, last_words=True)
  except SystemExit as stop:
    code = stop.code if isinstance(stop.code, int) else 1
    if code:
      _silence_stderr()  # (usage errors exit through argparse, not run_main's handler)
      os._exit(code)  # pylint: disable=protected-access
    raise

