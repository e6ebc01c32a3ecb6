"""Fixtures shared by more than one test file."""

import pytest
import torch

from enhance.models import create_model


@pytest.fixture(scope="module")
def random_saga_s():
    """The default network with seeded random weights: the real architecture, no trained file needed."""
    torch.manual_seed(0)
    return create_model("saga-s").eval()
