"""Inductive prediction: a query's output depends only on it and the support set.

Transductive prediction (the papers' meta-test, and every training step) normalises the query
batch with its own statistics; the inductive mode records the support set's statistics at
adaptation and normalises each query with them.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from metalearn.algorithms import MAML, MatchingNet, ProtoNet, SiameseNet
from metalearn.algorithms.inductive import adapt_inductive, predict_inductive
from metalearn.applications.personalize import personalize
from metalearn.episode import Episode
from metalearn.nn.backbones import Conv4
from metalearn.nn.normalization import TaskBatchNorm, fixed_statistics, recording_statistics
from metalearn.training import meta_test

N_WAY = 3


def _learner(name, *, strided=False):
    torch.manual_seed(0)
    if name == "maml":
        model = Conv4(1, out_features=N_WAY, hidden_channels=8, image_size=28, strided=strided)
        return MAML(model, inner_lr=0.4, inner_steps=2).eval()
    encoder = Conv4(1, hidden_channels=8, image_size=28, strided=strided)
    if name == "matching":
        return MatchingNet(encoder, fce=True).eval()
    if name == "siamese":
        return SiameseNet(encoder).eval()
    return ProtoNet(encoder).eval()


def _episode(seed=0, n_query=4):
    g = torch.Generator().manual_seed(seed)
    support_y = torch.arange(N_WAY).repeat(2)
    query_y = torch.arange(N_WAY).repeat(n_query)
    centres = torch.rand(N_WAY, 1, 28, 28, generator=g)
    support_x = centres[support_y] + 0.3 * torch.rand(len(support_y), 1, 28, 28, generator=g)
    query_x = centres[query_y] + 0.3 * torch.rand(len(query_y), 1, 28, 28, generator=g)
    return Episode(support_x, support_y, query_x, query_y, N_WAY)


@pytest.mark.parametrize("name", ["protonet", "maml"])
def test_an_inductive_prediction_is_the_same_alone_and_inside_any_batch(name):
    learner, episode = _learner(name), _episode()
    noise = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    state = adapt_inductive(learner, episode.support_x, episode.support_y, N_WAY)
    queries = episode.query_x
    with torch.no_grad():
        alone = torch.cat([predict_inductive(learner, state, q[None]) for q in queries])
        batches = {
            "all": predict_inductive(learner, state, queries),
            "reversed": predict_inductive(learner, state, queries.flip(0)).flip(0),
            "beside noise": predict_inductive(learner, state, torch.cat([queries, noise]))[:12],
        }
    for batch, outputs in batches.items():
        assert torch.equal(outputs, alone), batch
    # the transductive mode, for contrast: the same image scores differently beside noise
    plain = learner.adapt(episode.support_x, episode.support_y, N_WAY)
    with torch.no_grad():
        alone_t = learner.predict(plain, queries)
        beside_noise = learner.predict(plain, torch.cat([queries, noise]))[:12]
    assert (alone_t - beside_noise).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["protonet", "maml", "matching", "siamese"])
@pytest.mark.parametrize("strided", [False, True], ids=["pooled", "strided"])
def test_inductive_queries_equal_to_the_support_set_give_the_transductive_outputs(name, strided):
    # normalised with their own statistics or with the support set's: the same when they are
    # the support set (so the recorded statistics are those of the support set, per layer)
    learner, episode = _learner(name, strided=strided), _episode()
    support = episode.support_x, episode.support_y, N_WAY
    with torch.no_grad():
        state = adapt_inductive(learner, *support)
        expected = learner.predict(learner.adapt(*support), episode.support_x)
        assert_close(predict_inductive(learner, state, episode.support_x), expected)


def test_fixed_statistics_normalise_as_batch_norm_with_those_running_statistics():
    norm = TaskBatchNorm(3).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
        norm.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    support, query = torch.randn(6, 3, 4, 4).double(), torch.randn(2, 3, 4, 4).double()
    with recording_statistics(norm) as statistics:
        norm(support)
    with fixed_statistics(norm, statistics):
        y = norm(query)
    mean, var = support.mean((0, 2, 3)), support.var((0, 2, 3), unbiased=False)
    expected = F.batch_norm(query, mean, var, norm.weight, norm.bias, training=False, eps=1e-5)
    assert_close(y, expected)
    assert norm.per_batch  # both modes end with their block
    assert_close(norm(query), F.batch_norm(query, None, None, norm.weight, norm.bias, True))


def test_fixed_statistics_must_cover_every_layer():
    with (
        pytest.raises(ValueError, match="no recorded statistics"),
        fixed_statistics(TaskBatchNorm(2), {}),
    ):
        pass


@pytest.mark.parametrize("name", ["protonet", "maml"])
@pytest.mark.parametrize("path", ["default", "vmap", "threads"])
def test_meta_test_scores_both_modes_and_transductive_is_the_default(name, path):
    learner, episodes = _learner(name), [_episode(seed) for seed in range(4)]
    if path != "default":  # ProtoNet loops by default, MAML runs such tasks on threads
        learner.batched = True
        learner.chunk_size, learner.task_threads = (None, 1) if path == "vmap" else (1, 2)
    transductive = meta_test(learner, episodes, batch_size=2)
    assert torch.equal(meta_test(learner, episodes, transductive=True).values, transductive.values)
    expected = []
    with torch.no_grad():
        for e in episodes:
            logits = learner.predict(learner.adapt(e.support_x, e.support_y, N_WAY), e.query_x)
            expected.append((logits.argmax(-1) == e.query_y).double().mean())
    assert torch.equal(transductive.values, torch.stack(expected))
    inductive = meta_test(learner, episodes, transductive=False, batch_size=2)
    one_by_one = meta_test(learner, episodes, transductive=False)
    assert torch.equal(inductive.values, one_by_one.values)
    assert inductive.n == 4


def test_meta_test_sweeps_inner_steps_in_inductive_mode():
    learner, episodes = _learner("maml"), [_episode(seed) for seed in range(2)]
    sweep = meta_test(learner, episodes, inner_steps=[0, 2], transductive=False)
    with torch.no_grad():
        e = episodes[0]
        state = adapt_inductive(learner, e.support_x, e.support_y, N_WAY, steps=0)
        logits = predict_inductive(learner, state, e.query_x)
    first = (logits.argmax(-1) == e.query_y).double().mean()
    assert sweep.by_steps[0][0] == first


def test_personal_predictions_are_inductive():
    learner, episode = _learner("protonet"), _episode()
    personal = personalize(learner, episode.support_x, episode.support_y, ["a", "b", "c"])
    queries = episode.query_x
    together = personal.predict_proba(torch.cat([queries, torch.rand(3, 1, 28, 28)]))[:12]
    alone = torch.cat([personal.predict_proba(q[None]) for q in queries])
    assert torch.equal(together, alone)
