"""experiments.prepare_data: tfds's preparation wrapped, each missing piece named (no network
here, so the builder is replaced by stand-ins that fail as tfds does, or succeed)."""

import pytest
import tensorflow_datasets as tfds

from dcjax.errors import RuntimeRefusal
from experiments import prepare_data


class _Builder:
  def __init__(self, error=None):
    self.error, self.data_dir, self.prepared = error, "/prepared/cifar10/3.0.2", False

  def download_and_prepare(self):
    if self.error is not None:
      raise self.error
    self.prepared = True


def test_a_network_failure_says_where_to_run_it(monkeypatch):
  monkeypatch.setattr(prepare_data, "missing_modules", lambda: [])
  monkeypatch.setattr(tfds, "builder", lambda *a, **k: _Builder(ConnectionError("no route")))
  with pytest.raises(RuntimeRefusal, match=r"needs network access.*prepare_data cifar10 "
                                           r"--data-dir DIR"):
    prepare_data.prepare("cifar10", None)


def test_a_missing_module_is_named(monkeypatch):
  error = ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
  monkeypatch.setattr(prepare_data, "missing_modules", lambda: [])
  monkeypatch.setattr(tfds, "builder", lambda *a, **k: _Builder(error))
  with pytest.raises(RuntimeRefusal, match="needs the module 'tensorflow': pip install "
                                           "tensorflow"):
    prepare_data.prepare("cifar10", None)
  monkeypatch.setattr(prepare_data, "missing_modules", lambda: ["importlib_resources"])
  with pytest.raises(RuntimeRefusal, match="pip install importlib-resources"):
    prepare_data.prepare("cifar10", None)


def test_the_array_record_format_is_asked_for(monkeypatch):
  seen = {}

  def builder(name, **kwargs):
    seen.update(kwargs, name=name)
    return _Builder()

  monkeypatch.setattr(tfds, "builder", builder)
  monkeypatch.setattr(prepare_data, "missing_modules", lambda: [])
  assert prepare_data.prepare("svhn", "/data") == "/prepared/cifar10/3.0.2"
  assert seen == {"name": "svhn_cropped", "data_dir": "/data", "file_format": "array_record"}
