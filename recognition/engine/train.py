"""Training of the small learned parts (TensorFlow): the masked/unmasked head, the masked-embedding
adapter and the masked faces' feature-map gain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .runtime import import_tensorflow


@dataclass(frozen=True)
class HeadFit:
    """A fitted logistic head: ``p = sigmoid(x @ weights + bias)`` and its held-out metrics."""

    weights: np.ndarray
    bias: float
    metrics: dict


def fit_logistic_head(x: np.ndarray, y: np.ndarray, *, seed: int = 0, epochs: int = 60,
                      l2: float = 1e-3, val_fraction: float = 0.2) -> HeadFit:
    """Fit a logistic regression in TensorFlow on ``x`` (NxD) and labels ``y`` (0/1).

    A seeded random ``val_fraction`` is held out for the reported accuracy; classes are
    re-weighted to balance them. Deterministic for a seed.
    """
    tf = import_tensorflow()

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = int(len(x) * val_fraction)
    val, tr = order[:n_val], order[n_val:]
    tf.keras.utils.set_random_seed(seed)
    pos = float(y[tr].mean())
    class_weight = {0: 0.5 / max(1 - pos, 1e-6), 1: 0.5 / max(pos, 1e-6)}
    model = tf.keras.Sequential([
        tf.keras.Input((x.shape[1],)),
        tf.keras.layers.Dense(1, activation="sigmoid", kernel_regularizer=tf.keras.regularizers.l2(l2)),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x[tr], y[tr], epochs=epochs, batch_size=64, verbose=0, class_weight=class_weight, shuffle=True)
    w, b = model.layers[-1].get_weights()
    p_val = 1 / (1 + np.exp(-(x[val] @ w[:, 0] + b[0])))
    metrics = {
        "n_train": int(len(tr)), "n_val": int(n_val),
        "val_accuracy": float(((p_val >= 0.5) == y[val]).mean()) if n_val else None,
        "val_accuracy_masked": float((p_val[y[val] == 1] >= 0.5).mean()) if (y[val] == 1).any() else None,
        "val_accuracy_unmasked": float((p_val[y[val] == 0] < 0.5).mean()) if (y[val] == 0).any() else None,
    }
    return HeadFit(w[:, 0].astype(np.float32), float(b[0]), metrics)


@dataclass(frozen=True)
class AdapterFit:
    """Weights of the masked-embedding adapter and its training metrics.

    ``f(x) = normalise(x + relu(x @ w1 + b1) @ w2 + b2)``; ``w1``: DxH, ``w2``: HxD.
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    metrics: dict


def _masked_vs_photo(m_emb: np.ndarray, u_emb: np.ndarray, pids: np.ndarray) -> tuple[float, float, float]:
    """Accuracy at the best threshold and TAR at FAR 1e-2 and 1e-4 (the kiosk's operating point, where a
    strong descriptor such as SFace still leaves room) of the masked x unmasked pairs of two different
    photos (a masked rendering meeting its own photo is left out: with a strong descriptor it passes
    nearly always and hid what a learned part did to other photos)."""
    from .evaluation import best_threshold, tar_at_far

    photo = np.unique(u_emb, axis=0, return_inverse=True)[1].ravel()
    other = (photo[:, None] != photo[None, :]).ravel()
    s = (m_emb @ u_emb.T).ravel()[other]
    same = (pids[:, None] == pids[None, :]).ravel()[other]
    if not same.any() or same.all():   # too few held-out people or photos to tell anything
        return float("nan"), float("nan"), float("nan")
    t = best_threshold(s, same)
    return float(((s >= t) == same).mean()), tar_at_far(s, same, 1e-2), tar_at_far(s, same, 1e-4)


def _split_people(person: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """``(is_val, train_rows_by_person)``: a seeded ``val_fraction`` of the people held out."""
    people = np.unique(person)
    rng.shuffle(people)
    val_people = set(people[:max(1, int(len(people) * val_fraction))].tolist())
    is_val = np.array([p in val_people for p in person])
    by_person: dict = {}
    for i in np.nonzero(~is_val)[0]:
        by_person.setdefault(person[i], []).append(i)
    return is_val, by_person


def fit_adapter(masked: np.ndarray, unmasked: np.ndarray, person: np.ndarray, *, hidden: int = 128,
                seed: int = 0, steps: int = 800, batch_people: int = 64, temperature: float = 0.3,
                lr: float = 1e-3, val_fraction: float = 0.15,
                progress: Callable[[int, int, float], None] | None = None) -> AdapterFit:
    """Train the adapter mapping masked-face embeddings towards the same person's unmasked ones.

    ``masked[i]`` and ``unmasked[i]`` are L2-normalised embeddings (NxD) of person
    ``person[i]`` (a masked photo and an unmasked photo; several rows per person).
    Loss: supervised contrastive (InfoNCE) between adapted masked embeddings and the
    unmasked embeddings of a batch of people, so the mapping pulls a person's masked
    face towards their unmasked faces *and* keeps other people apart. People are split
    into train/validation by a seeded permutation; the validation metrics compare the
    masked->unmasked verification before and after the adapter.
    """
    tf = import_tensorflow()

    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    people = np.unique(person)
    is_val, by_person = _split_people(person, val_fraction, rng)
    n_val, tr_idx = len(np.unique(person[is_val])), np.nonzero(~is_val)[0]
    train_people = np.array(sorted(by_person))
    dim = masked.shape[1]
    init = tf.keras.initializers.GlorotUniform(seed=seed)
    w1 = tf.Variable(init((dim, hidden)), name="w1")
    b1 = tf.Variable(tf.zeros(hidden), name="b1")
    w2 = tf.Variable(tf.zeros((hidden, dim)), name="w2")  # starts as the identity mapping
    b2 = tf.Variable(tf.zeros(dim), name="b2")
    variables = [w1, b1, w2, b2]
    opt = tf.keras.optimizers.Adam(lr)

    def adapt(x):
        return tf.math.l2_normalize(x + tf.nn.relu(x @ w1 + b1) @ w2 + b2, axis=1)

    @tf.function
    def step(m, u, pid):
        with tf.GradientTape() as tape:
            logits = adapt(m) @ tf.transpose(u) / temperature
            pos = tf.cast(tf.equal(pid[:, None], pid[None, :]), tf.float32)
            logp = tf.nn.log_softmax(logits, axis=1)
            loss = -tf.reduce_mean(tf.reduce_sum(pos * logp, 1) / tf.reduce_sum(pos, 1))
            loss += 1e-4 * tf.add_n([tf.nn.l2_loss(w1), tf.nn.l2_loss(w2)])
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss

    pid_map = {p: k for k, p in enumerate(people)}
    loss = float("nan")
    for s in range(steps):
        chosen = rng.choice(train_people, size=min(batch_people, len(train_people)), replace=False)
        rows = np.array([rng.choice(by_person[p]) for p in chosen] + [rng.choice(by_person[p]) for p in chosen])
        pids = np.array([pid_map[person[r]] for r in rows], np.int32)
        loss = float(step(tf.constant(masked[rows]), tf.constant(unmasked[rows]), tf.constant(pids)))
        if progress:
            progress(s + 1, steps, loss)

    val = np.nonzero(is_val)[0][:600]
    vp = np.array([pid_map[p] for p in person[val]])
    before = _masked_vs_photo(masked[val], unmasked[val], vp)
    after = _masked_vs_photo(adapt(tf.constant(masked[val])).numpy(), unmasked[val], vp)
    metrics = {"final_loss": loss, "steps": steps, "hidden": hidden, "seed": seed,
               "n_train_rows": int(len(tr_idx)), "n_val_rows": int(len(val)),
               "n_train_people": int(len(train_people)), "n_val_people": int(n_val),
               "val_best_accuracy_before": before[0], "val_best_accuracy_after": after[0],
               "val_tar_at_far_1e-2_before": before[1], "val_tar_at_far_1e-2_after": after[1],
               "val_tar_at_far_1e-4_before": before[2], "val_tar_at_far_1e-4_after": after[2]}
    return AdapterFit(w1.numpy(), b1.numpy(), w2.numpy(), b2.numpy(), metrics)


@dataclass(frozen=True)
class GainFit:
    """A masked face's feature-map gain and its training metrics: the descriptor's last feature map
    ``x`` becomes ``mean + gain * (x - mean)`` before the network's final linear layer."""

    gain: np.ndarray
    mean: np.ndarray
    metrics: dict


def fit_feature_gain(masked_maps: np.ndarray, photo_vectors: np.ndarray, person: np.ndarray,
                     weights: np.ndarray, bias: np.ndarray, mean: np.ndarray, *, seed: int = 0, steps: int = 400,
                     batch_people: int = 64, temperature: float = 0.3, l2: float = 1e-2, lr: float = 1e-2,
                     val_fraction: float = 0.15,
                     progress: Callable[[int, int, float], None] | None = None) -> GainFit:
    """Learn a gain for every element of a masked face's last feature map (TensorFlow).

    ``masked_maps[i]`` is the feature map (any shape, e.g. 1024x7x7) of a masked face of person
    ``person[i]``, ``photo_vectors[i]`` the L2-normalised descriptor of an unmasked photo of that
    person; ``weights`` (map size x D) and ``bias`` (D) are the network's final linear layer with its
    batch normalisation folded in, so that ``normalise(flatten(map) @ weights + bias)`` is the
    descriptor. The gain starts at 1 (the network as it is) and ``l2`` holds it there; the loss is
    :func:`fit_adapter`'s supervised-contrastive one between the gated masked descriptors and the
    photos' descriptors of a batch of people (two rows of each). A seeded ``val_fraction`` of the
    people is held out: the metrics compare masked-against-photo matching on them before and after.
    Deterministic for a seed.
    """
    tf = import_tensorflow()

    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    is_val, by_person = _split_people(person, val_fraction, rng)
    train_people = sorted(by_person)
    shape = masked_maps.shape[1:]
    w, b = tf.constant(weights, tf.float32), tf.constant(bias, tf.float32)
    mu = tf.constant(mean[None], tf.float32)
    delta = tf.Variable(tf.zeros((1, *shape)))
    opt = tf.keras.optimizers.Adam(lr)

    def describe(x):
        gated = mu + (1.0 + delta) * (x - mu)
        return tf.math.l2_normalize(tf.reshape(gated, (tf.shape(x)[0], -1)) @ w + b, axis=1)

    @tf.function
    def step(x, u, pid):
        with tf.GradientTape() as tape:
            logp = tf.nn.log_softmax(describe(x) @ tf.transpose(u) / temperature, axis=1)
            pos = tf.cast(tf.equal(pid[:, None], pid[None, :]), tf.float32)
            loss = -tf.reduce_mean(tf.reduce_sum(pos * logp, 1) / tf.reduce_sum(pos, 1))
            loss += l2 * tf.reduce_mean(tf.square(delta))
        opt.apply_gradients([(tape.gradient(loss, delta), delta)])
        return loss

    loss = float("nan")
    for s in range(steps):
        chosen = rng.choice(len(train_people), size=min(batch_people, len(train_people)), replace=False)
        rows = np.array([rng.choice(by_person[train_people[c]]) for c in chosen for _ in range(2)])
        loss = float(step(tf.constant(masked_maps[rows], tf.float32), tf.constant(photo_vectors[rows], tf.float32),
                          tf.constant(np.repeat(chosen, 2).astype(np.int32))))
        if progress:
            progress(s + 1, steps, loss)

    val = np.nonzero(is_val)[0][:600]
    codes = np.unique(person, return_inverse=True)[1].ravel()

    def vectors(x: np.ndarray) -> np.ndarray:
        return np.concatenate([describe(tf.constant(x[i:i + 256], tf.float32)).numpy() for i in range(0, len(x), 256)])

    after = _masked_vs_photo(vectors(masked_maps[val]), photo_vectors[val], codes[val])
    delta_now = delta.numpy()
    delta.assign(tf.zeros_like(delta))
    before = _masked_vs_photo(vectors(masked_maps[val]), photo_vectors[val], codes[val])
    metrics = {"final_loss": loss, "steps": steps, "seed": seed, "temperature": temperature, "l2": l2,
               "n_train_people": len(train_people), "n_val_people": int(len(np.unique(person[is_val]))),
               "n_val_rows": int(len(val)),
               "val_best_accuracy_before": before[0], "val_best_accuracy_after": after[0],
               "val_tar_at_far_1e-2_before": before[1], "val_tar_at_far_1e-2_after": after[1],
               "val_tar_at_far_1e-4_before": before[2], "val_tar_at_far_1e-4_after": after[2]}
    return GainFit((1.0 + delta_now[0]).astype(np.float32), mean.astype(np.float32), metrics)
