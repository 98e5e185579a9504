import os
import sys
import warnings

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

warnings.filterwarnings("ignore", message="No ccache found")

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import pytest  # noqa: E402

paddle.set_device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    paddle.seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def repo_root():
    return ROOT


@pytest.fixture(autouse=True)
def _restore_passl_logger():
    """A Trainer's setup_logger stops "passl" propagating (and adds handlers); undo it after each test so that a
    later test's caplog still sees the library's records, whatever order the tests run in."""
    import logging

    logger = logging.getLogger("passl")
    saved = (logger.propagate, logger.level, list(logger.handlers))
    yield
    logger.propagate, logger.level = saved[0], saved[1]
    for h in list(logger.handlers):
        if h not in saved[2]:
            logger.removeHandler(h)
            h.close()
