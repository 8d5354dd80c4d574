"""Shared fixtures."""

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A model cache of the test module's own, so tests never touch (or depend on) the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARTA_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
