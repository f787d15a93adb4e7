"""load_dataset: names, shared keyword set, option checking."""

from __future__ import annotations

import pytest

from mlpframe.data import DATASETS, DataError, load_dataset


def test_names():
    assert DATASETS == ("mnist1d", "synthetic", "cifar10", "mnist", "fashion_mnist", "digits")


def test_unknown_name():
    with pytest.raises(DataError, match="choose one of mnist1d"):
        load_dataset("imagenet")


def test_every_config_key_is_accepted():
    # the keys every data config carries; irrelevant ones are ignored
    ds = load_dataset(root="/nonexistent", download=False, url="http://127.0.0.1:9/x",
                      md5=None, sha256=None, val_size=10, flatten=True, normalize=True, seed=0,
                      n_samples=100, name="synthetic", batch_size=32)
    assert len(ds.val[1]) == 10


def test_options_of_other_data_sets_and_none_are_ignored(tmp_path):
    ds = load_dataset("synthetic", n_samples=100, seed=0, future_option=None)
    assert len(ds.train[1]) == 70


def test_unknown_option():
    with pytest.raises(DataError, match="unknown data option.*colour"):
        load_dataset("synthetic", colour="red")
