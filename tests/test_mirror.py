"""The mirror-symmetric network's fold into plain layers (what ships) and its inverse (what fine-tunes)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def faces(lfw_faces):
    """Real faces at the network's 48x48."""
    import cv2

    return np.stack([cv2.resize(f, (48, 48), interpolation=cv2.INTER_LINEAR) for f in lfw_faces])


def _trained_looking_net(seed: int):
    """A mirror network whose batch norms hold statistics and parameters far from their initial values,
    as a trained one's do: an unfold that ignored any of them would not give the same function back. Scales
    stay within about 3x a layer, as trained ones do: steeper ones saturate the softmax of an untrained net,
    where float32 round-off alone moves a probability by 1e-2."""
    import keras

    from batchemo.training.mirror import build, custom_layers

    _, bn_cls = custom_layers()
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)  # the kernels too: the same network every run
    net = build()
    for layer in net.layers:
        if isinstance(layer, bn_cls):
            n = layer.bn.gamma.shape[0]
            layer.bn.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.bn.beta.assign(rng.normal(0, 0.3, n).astype(np.float32))
            layer.bn.moving_mean.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.bn.moving_variance.assign(rng.uniform(0.25, 2.0, n).astype(np.float32))
    return net


def test_unfold_gives_back_the_function_that_ships(faces):
    """plain -> unfold -> plain: the same predictions; the unfolded net in inference mode too, and in training
    mode (batch statistics) on faces like those it was unfolded with, nearly so (dropout aside)."""
    from batchemo.emotions.model import preprocess
    from batchemo.training.mirror import build, plain_copy, unfold

    plain = plain_copy(_trained_looking_net(0))
    x = preprocess(faces)
    net = unfold(plain, x)
    want = plain.predict(x, verbose=0)
    assert np.abs(plain_copy(net).predict(x, verbose=0) - want).max() < 1e-4
    assert np.abs(net.predict(x, verbose=0) - want).max() < 1e-4
    assert type(net.layers[-1]).__name__ == "Dense" and net.count_params() == build().count_params()
    # batch norm was set to undo the statistics it measured: training mode's batch statistics are the same
    net.layers[-2].rate = 0.0  # no dropout, to compare like with like
    got = np.asarray(net(x, training=True))
    assert np.abs(got - want).max() < 1e-3
    # each kernel pair carries a fresh He initialisation's scale (what Adam's step sizes suit)
    from batchemo.training.mirror import custom_layers

    conv_cls, _ = custom_layers()
    for layer in net.layers:
        if isinstance(layer, conv_cls):
            k = layer.kernel.numpy()
            rms = np.sqrt((k ** 2).mean((0, 1, 2)))
            assert np.allclose(rms, np.sqrt(2.0 / (9 * k.shape[2])), rtol=1e-4)


def test_unfold_refuses_a_network_that_is_not_mirror_symmetric(faces):
    from batchemo.emotions.model import preprocess
    from batchemo.training.mirror import plain_copy, unfold

    plain = plain_copy(_trained_looking_net(1))
    conv = plain.get_layer("conv2")
    k, b = conv.get_weights()
    k[0, 0, 0, 0] += 1.0  # one free kernel's weight moved without its mirror twin
    conv.set_weights([k, b])
    with pytest.raises(ValueError, match="conv2's kernels are not mirror pairs"):
        unfold(plain, preprocess(faces[:8]))
