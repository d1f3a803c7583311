"""The embedding task: every method embeds the karate club well enough to separate its factions, options are
refused where they mean nothing, --save writes the embedding, and multi-label data is scored by F1."""
import numpy as np
import pytest

from gnn_scratch import cli
from gnn_scratch.data import MultiLabelGraph, karate_club
from gnn_scratch.tasks import get_task

SMALL = dict(deepwalk=dict(num_walks=5, walk_length=20, deterministic=True),
             node2vec=dict(num_walks=5, walk_length=20, p=0.5, q=2.0, deterministic=True),
             line=dict(samples=200_000), sdne=dict(epochs=10, sdne_hidden=(256, 64)), dgi=dict(dim=32, epochs=60))


@pytest.mark.parametrize("method", sorted(SMALL))
def test_every_method_embeds_the_karate_club(method):
    summary, Z = get_task("embedding").run(method, karate_club(), seed=0, **SMALL[method])
    assert Z.shape[0] == 34 and Z.dtype == np.float32 and np.all(np.isfinite(Z))
    # 24 test nodes, two factions: a random embedding scores about 0.5
    assert summary["scores"]["test_accuracy"]["mean"] >= 0.75, summary["scores"]


def test_deterministic_walk_embeddings_repeat_bit_for_bit():
    task = get_task("embedding")
    _, Z1 = task.run("node2vec", karate_club(), seed=3, **SMALL["node2vec"])
    _, Z2 = task.run("node2vec", karate_club(), seed=3, **SMALL["node2vec"])
    _, Z3 = task.run("node2vec", karate_club(), seed=4, **SMALL["node2vec"])
    np.testing.assert_array_equal(Z1, Z2)
    assert not np.array_equal(Z1, Z3)


def test_options_a_method_does_not_read_are_refused():
    task = get_task("embedding")
    with pytest.raises(ValueError, match="--p applies to node2vec, not sdne"):
        task.validate("sdne", hparams=dict(p=2.0))
    with pytest.raises(ValueError, match="--walk-length applies to"):
        task.validate("dgi", hparams=dict(walk_length=5))
    with pytest.raises(ValueError, match="not an embedding method"):
        task.validate("gcn")
    with pytest.raises(ValueError, match="embeds nodes without labels"):
        get_task("node").validate("deepwalk")
    with pytest.raises(ValueError, match="train_fraction"):
        task.validate("deepwalk", hparams=dict(train_fraction=0.0))


def _toy_multilabel(seed=0, n=60, labels=3):
    """Two dense communities; label 0 = community, labels 1, 2 random: F1 of label 0 is high, the rest chance."""
    rng = np.random.default_rng(seed)
    comm = np.arange(n) % 2
    src, dst = [], []
    for i in range(n):
        for j in range(i + 1, n):
            if rng.random() < (0.3 if comm[i] == comm[j] else 0.01):
                src += [i, j]
                dst += [j, i]
    order = np.lexsort((dst, src))
    Y = np.zeros((n, labels), dtype=bool)
    Y[:, 0] = comm == 1
    Y[:, 1] = comm == 0
    Y[:, 2] = rng.random(n) < 0.3
    return MultiLabelGraph(name="toy", edge_index=np.array([src, dst], dtype=np.int64)[:, order], labels=Y)


def test_multilabel_data_is_scored_by_macro_and_micro_f1():
    summary, Z = get_task("embedding").run("deepwalk", _toy_multilabel(), seed=0, num_walks=10, walk_length=20,
                                           deterministic=True, repeats=3)
    s = summary["scores"]
    assert set(s) == {"macro_f1", "micro_f1"}
    assert s["micro_f1"]["mean"] > 0.6


def test_dgi_needs_features():
    with pytest.raises(ValueError, match="has none"):
        get_task("embedding").run("dgi", _toy_multilabel(), epochs=2)


def test_cli_saves_the_embedding_as_npy(tmp_path, capsys):
    out = tmp_path / "emb"
    rc = cli.main(["train", "--task", "embedding", "--model", "deepwalk", "--dataset", "karate", "--num-walks", "2",
                   "--walk-length", "10", "--dim", "16", "--deterministic", "--quiet", "--save", str(out)])
    assert rc == 0
    Z = np.load(tmp_path / "emb.npy")
    assert Z.shape == (34, 16) and Z.dtype == np.float32
    assert "saved the last run's embedding" in capsys.readouterr().out


def test_cli_refuses_an_option_of_another_method(capsys):
    rc = cli.main(["train", "--task", "embedding", "--model", "line", "--q", "2"])
    assert rc == 2
    assert "--q applies to node2vec, not line" in capsys.readouterr().err
