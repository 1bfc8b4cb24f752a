"""The masked-embedding adapter's and the feature-map gain's training and the threshold calibration
(synthetic data, no models)."""

from __future__ import annotations

import numpy as np
import pytest

from recognition.engine.adapter import Adapter
from recognition.engine.embed import l2_normalise
from recognition.engine.evaluation import threshold_at_far
from recognition.engine.train import fit_adapter, fit_feature_gain


def synthetic_people(n_people: int = 120, per_person: int = 3, dim: int = 32, seed: int = 0):
    """Unmasked embeddings clustered by person; 'masked' ones are a fixed distortion of them
    (a shared linear mix plus noise), which an adapter can learn to undo."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, dim))
    person = np.repeat(np.arange(n_people), per_person)
    unmasked = centres[person] + 0.35 * rng.normal(size=(len(person), dim))
    mix = np.eye(dim) + 2.5 * rng.normal(size=(dim, dim)) / np.sqrt(dim)
    masked = unmasked @ mix + 0.3 * rng.normal(size=(len(person), dim))
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return norm(masked), norm(unmasked), person.astype(str)


@pytest.fixture(scope="module")
def data():
    return synthetic_people()


def test_adapter_improves_masked_to_unmasked_matching(data):
    masked, unmasked, person = data
    fit = fit_adapter(masked, unmasked, person, hidden=32, steps=300, batch_people=32, seed=0)
    m = fit.metrics
    assert m["val_tar_at_far_1e-2_before"] < 0.6  # the distortion really hurts matching
    assert m["val_tar_at_far_1e-2_after"] > m["val_tar_at_far_1e-2_before"] + 0.3
    assert fit.w1.shape == (32, 32) and fit.w2.shape == (32, 32)


def test_adapter_training_is_deterministic_for_a_seed(data):
    masked, unmasked, person = data
    a = fit_adapter(masked, unmasked, person, hidden=16, steps=40, batch_people=16, seed=3)
    b = fit_adapter(masked, unmasked, person, hidden=16, steps=40, batch_people=16, seed=3)
    assert np.allclose(a.w1, b.w1) and np.allclose(a.w2, b.w2)


def test_adapter_roundtrip_keeps_shape_and_norm(tmp_path, data):
    masked, unmasked, person = data
    fit = fit_adapter(masked, unmasked, person, hidden=16, steps=20, batch_people=16, seed=1)
    Adapter(fit.w1, fit.b1, fit.w2, fit.b2).save(tmp_path / "a.npz", fit.metrics)
    loaded = Adapter.load(tmp_path / "a.npz")
    out = loaded(masked[:5])
    assert out.shape == (5, 32)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert (tmp_path / "a.json").exists()


def test_threshold_calibration_hits_the_requested_false_accept_rate():
    rng = np.random.default_rng(0)
    impostor = rng.normal(0.1, 0.1, 100_000)
    for far in (1e-2, 1e-3, 1e-4):
        t = threshold_at_far(impostor, far)
        assert (impostor >= t).mean() <= far
        assert (impostor >= t - 0.01).mean() > far * 0.5  # not needlessly strict


def test_adapter_validation_leaves_out_a_rendering_against_its_own_photo():
    """Each photo has two masked renderings: one identical to the photo's own vector, one unrelated;
    a person's two photos are unrelated too. Counting a rendering against its own photo would make a
    quarter of the genuine pairs perfect matches (TAR >= 25% at any FAR); left out, TAR is chance."""
    rng = np.random.default_rng(0)
    dim, people = 32, 200

    def unit(n):
        v = rng.normal(size=(n, dim))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    photos = unit(people * 2)                      # two unrelated photos per person
    unmasked = np.repeat(photos, 2, axis=0)        # each photo twice: one row per rendering
    masked = unmasked.copy()
    masked[1::2] = unit(people * 2)                # the second rendering: unrelated to its photo
    person = np.repeat(np.arange(people), 4).astype(str)
    fit = fit_adapter(masked, unmasked, person, hidden=8, steps=1, batch_people=8, seed=0)
    assert fit.metrics["val_tar_at_far_1e-2_before"] < 0.15


def synthetic_maps(n_people: int = 150, per_person: int = 3, seed: int = 0):
    """Feature maps (4 channels x 3 rows x 3 columns) clustered by person and a random final linear
    layer; a 'mask' overwrites the bottom row of the masked faces' maps with a loud pattern of its own
    (a few mask types), which a gain can learn to turn down. Returns ``(masked maps, photo
    descriptors, person, weights, bias, mean)``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 4, 3, 3))
    person = np.repeat(np.arange(n_people), per_person)
    photos = centres[person] + 0.3 * rng.normal(size=(len(person), 4, 3, 3))
    masks = 3.0 * rng.normal(size=(4, 4, 3))
    masked = photos + 0.3 * rng.normal(size=photos.shape)
    masked[:, :, 2, :] = masks[rng.integers(0, 4, len(person))] + 0.5 * rng.normal(size=(len(person), 4, 3))
    weights, bias = rng.normal(size=(36, 16)) / 6, 0.1 * rng.normal(size=16)
    describe = lambda x: l2_normalise(x.reshape(len(x), -1) @ weights + bias).astype(np.float32)  # noqa: E731
    return (masked.astype(np.float32), describe(photos), person.astype(str), weights.astype(np.float32),
            bias.astype(np.float32), photos.mean(axis=0).astype(np.float32))


@pytest.fixture(scope="module")
def maps_data():
    return synthetic_maps()


def test_feature_gain_learns_to_turn_the_masked_rows_down(maps_data):
    fit = fit_feature_gain(*maps_data, steps=300, batch_people=32, seed=0)
    m = fit.metrics
    assert fit.gain.shape == fit.mean.shape == (4, 3, 3)
    assert m["val_tar_at_far_1e-2_after"] > m["val_tar_at_far_1e-2_before"] + 0.15
    assert m["val_best_accuracy_after"] > m["val_best_accuracy_before"]
    assert np.abs(fit.gain[:, 2]).mean() < np.abs(fit.gain[:, :2]).mean()   # the mask's row, not the face's


def test_feature_gain_is_deterministic_for_a_seed_and_starts_from_the_network(maps_data):
    a = fit_feature_gain(*maps_data, steps=30, batch_people=16, seed=4)
    b = fit_feature_gain(*maps_data, steps=30, batch_people=16, seed=4)
    np.testing.assert_array_equal(a.gain, b.gain)
    assert a.metrics == b.metrics
    untrained = fit_feature_gain(*maps_data, steps=0, seed=4)
    np.testing.assert_array_equal(untrained.gain, np.ones((4, 3, 3), np.float32))
    assert untrained.metrics["val_tar_at_far_1e-2_after"] == untrained.metrics["val_tar_at_far_1e-2_before"]
