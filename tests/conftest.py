import os

from hypothesis import HealthCheck, settings

# `ci`: derandomized, so a CI run is repeatable; `dev`: quick, for the edit loop.
settings.register_profile(
    "ci", derandomize=True, max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


import pytest  # noqa: E402

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
TINY_CONFIG = str(ROOT / "fixtures" / "models" / "tvcore-tiny.json")


def pytest_configure(config):
    """Every test's pixel and head caches go to a folder of this session's own
    (unless the session was given --data-root; fixtures/session_cache.py)."""
    from fixtures import session_cache

    session_cache.start(config)


def pytest_unconfigure(config):
    from fixtures import session_cache

    session_cache.finish(config)


@pytest.fixture(scope="session")
def tiny_config() -> str:
    return TINY_CONFIG


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny OpenCLIP-architecture model, random init (seeded)."""
    import torch

    from tvcore.models import load_model

    torch.manual_seed(0)
    return load_model(TINY_CONFIG)


@pytest.fixture(scope="session")
def mini_ddsm_small(tmp_path_factory):
    from fixtures.fake_trees import make_mini_ddsm_tree

    return make_mini_ddsm_tree(tmp_path_factory.mktemp("mddsm"))


@pytest.fixture(scope="session")
def mini_ddsm_full(tmp_path_factory):
    """A tree large enough for the experiment's real protocols (about 3300 images)."""
    from fixtures.fake_trees import make_mini_ddsm_tree, protocol_sized_cases

    return make_mini_ddsm_tree(tmp_path_factory.mktemp("mddsm_full"), protocol_sized_cases())
