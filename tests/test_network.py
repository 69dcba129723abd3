"""The numpy forward pass the trainer chooses actions with gives the Q-network's own values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retro_gamer.config.schema import ModelConfig, ModelKind
from retro_gamer.dqn.network import NumpyMLP, QNetwork


@pytest.mark.parametrize("board_shape,extras,dueling", [((15, 15), 0, True), ((5, 7), 3, False), ((0, 0), 4, True)])
def test_numpy_mlp_gives_the_networks_values_and_follows_its_weights(board_shape, extras, dueling):
    torch.manual_seed(0)
    q = QNetwork(ModelConfig(kind=ModelKind.mlp, hidden=[32, 16], dueling=dueling), board_shape, 5, extras, 4)
    fast = NumpyMLP(q)
    rng = np.random.default_rng(0)
    board = rng.integers(0, 5, size=(8, *board_shape)).astype(np.uint8)
    extra = rng.normal(size=(8, extras)).astype(np.float32)

    def agree() -> None:
        with torch.no_grad():
            expected = q(torch.from_numpy(board), torch.from_numpy(extra)).numpy()
        got = fast(board, extra)
        assert got.shape == (8, 4)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()

    agree()
    with torch.no_grad():  # the trainer copies the learner's weights into the network in place
        for p in q.parameters():
            p.copy_(torch.randn_like(p))
    agree()


def test_numpy_mlp_refuses_a_cnn():
    q = QNetwork(ModelConfig(kind=ModelKind.cnn, channels=[4]), (6, 6), 3, 0, 2)
    with pytest.raises(ValueError, match="MLP"):
        NumpyMLP(q)


@pytest.mark.parametrize(
    "strides,features", [([1, 2], 16 * 8 * 8), ([2, 2], 16 * 4 * 4), ([2], 16 * 4 * 4), ([1], 16 * 15 * 15)]
)
def test_cnn_layer_strides_follow_the_list_with_its_last_value_repeated(strides, features):
    q = QNetwork(ModelConfig(kind=ModelKind.cnn, channels=[8, 16], hidden=[32], strides=strides), (15, 15), 5, 0, 4)
    assert [conv.stride for conv in q.features if isinstance(conv, torch.nn.Conv2d)] == [
        (strides[min(i, len(strides) - 1)],) * 2 for i in range(2)
    ]
    assert q.trunk[0].in_features == features
    assert q(torch.zeros(3, 15, 15, dtype=torch.uint8), torch.zeros(3, 0)).shape == (3, 4)
