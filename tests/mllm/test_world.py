import numpy as np
import pytest

from fedsim.errors import ConfigError
from fedsim.mllm.tokenizer import build_tokenizer
from fedsim.mllm.world import NUMBER_WORDS, WorldConfig, build_dataset, cell_name, digit_pool, vocabulary


def test_seeded_and_deterministic(world):
    a = build_dataset(world, world.upstream, 40, seed=5)
    b = build_dataset(world, world.upstream, 40, seed=5)
    c = build_dataset(world, world.upstream, 40, seed=6)
    assert (a.images == b.images).all() and a.questions == b.questions and a.answers == b.answers
    assert not (a.images == c.images).all()


def test_answers_agree_with_scenes(world):
    d = build_dataset(world, ("count", "digit_read", "digit_next", "horizontal", "color"), 300)
    for q, a, f, s in zip(d.questions, d.answers, d.families, d.scenes):
        if f == "count":
            shape = q.split()[2][:-1]
            assert a == NUMBER_WORDS[sum(o.shape == shape for o in s.objects)]
        elif f == "digit_read":
            assert a == NUMBER_WORDS[s.digit]
        elif f == "digit_next":
            assert a == NUMBER_WORDS[(s.digit + 1) % 10]
        elif f == "horizontal":
            (o,) = [o for o in s.objects if o.color == q.split()[2]]
            assert a == cell_name(o.cell, world.grid)[0]
        else:  # color: asked shape is unique in the scene
            (o,) = [o for o in s.objects if o.shape == q.split()[-2]]
            assert a == o.color


def test_digit_pixels_and_disjoint_splits(world):
    d = build_dataset(world, ("digit_read",), 20)
    side = world.image_size // world.grid
    for img, s in zip(d.images, d.scenes):
        r, c = divmod(s.digit_cell, world.grid)
        assert img[:, r * side:(r + 1) * side, c * side:(c + 1) * side].max() > 200  # the digit is drawn
    assert not set(digit_pool("train")) & set(digit_pool("test"))


def test_vocabulary_covers_everything_and_tokenizes_without_unk(world):
    d = build_dataset(world, (*world.upstream, *world.downstream, "caption"), 200)
    vocab = set(vocabulary())
    tok = build_tokenizer()
    for text in d.questions + d.answers + d.captions:
        assert set(text.split()) <= vocab
        assert tok.unk_token_id not in tok(text, add_special_tokens=False)["input_ids"]


def test_families_are_balanced_enough(world):
    d = build_dataset(world, world.upstream, 700)
    counts = {f: d.families.count(f) for f in world.upstream}
    assert min(counts.values()) > 60
    yes = np.mean([a == "yes" for a, f in zip(d.answers, d.families) if f == "exists"])
    assert 0.3 < yes < 0.7


def test_bad_config_names_the_key():
    with pytest.raises(ConfigError, match="world.upstream"):
        WorldConfig(upstream=("colour",))
    with pytest.raises(ConfigError, match="max_objects"):
        WorldConfig(max_objects=4, grid=2)
