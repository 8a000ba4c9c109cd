"""Closed-set answering with LLaVA (sda_core.models.vlm) on a tiny random-weight model of the real
architecture: the cached, batched candidate scores against transformers' own loss, per candidate."""

import pytest
import torch

from sda_core.models.vlm import (
    candidate_log_likelihoods,
    closed_set_probabilities,
    closed_set_prompt,
    prompt_problems,
    tiny_llava,
    word_tokenizer,
)

PROMPT = "USER: <image> which digit is this ? ASSISTANT:"
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# answers of one, two and three words: the cache path must handle unequal lengths in one chunk
CANDIDATES = ["seven", "one", "nine zero", "two four six", "eight"]
SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


@pytest.fixture(scope="module")
def tokenizer():
    return word_tokenizer(PROMPT.split() + NUMBERS + ["even", "odd"])


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    text = dict(SIZES, num_key_value_heads=1, max_position_embeddings=64)
    return tiny_llava(tokenizer, image_size=16, patch_size=4, vision=SIZES, text=text).eval()


def transformers_log_likelihood(model, prompt, answer, image):
    """-(mean cross-entropy over the answer's tokens) * their count, from one full forward with labels."""
    ids = torch.tensor([[*prompt.prompt_ids, *answer]])
    labels = ids.clone()
    labels[0, : len(prompt.prompt_ids)] = -100
    with torch.no_grad():
        loss = model(input_ids=ids, pixel_values=image[None], labels=labels).loss
    return -loss.item() * len(answer)


@pytest.mark.parametrize("chunk", [1, 2, 64])
def test_cached_candidate_scores_equal_transformers_loss_per_candidate(model, tokenizer, chunk):
    prompt = closed_set_prompt(tokenizer, PROMPT, CANDIDATES, image_seq_length=16)
    torch.manual_seed(1)
    images = torch.randn(3, 3, 16, 16)
    scores = candidate_log_likelihoods(model, prompt, images, chunk=chunk)
    assert scores.shape == (3, len(CANDIDATES))
    for n, image in enumerate(images):
        expected = [transformers_log_likelihood(model, prompt, a, image) for a in prompt.candidate_ids]
        torch.testing.assert_close(scores[n], torch.tensor(expected), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(scores[0], scores[1])  # the image reaches the answer


def test_prompt_expands_the_image_token_and_ends_answers_with_eos(tokenizer):
    prompt = closed_set_prompt(tokenizer, PROMPT, CANDIDATES, image_seq_length=16)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert prompt.prompt_ids.count(image_id) == 16 and prompt.prompt_ids[0] == tokenizer.bos_token_id
    assert [len(a) for a in prompt.candidate_ids] == [2, 2, 3, 4, 2]
    assert all(a[-1] == tokenizer.eos_token_id for a in prompt.candidate_ids)
    assert tokenizer.decode(prompt.candidate_ids[2][:-1]) == "nine zero"


def test_probabilities_are_a_softmax_and_mean_normalisation_divides_by_length(model, tokenizer):
    prompt = closed_set_prompt(tokenizer, PROMPT, CANDIDATES, image_seq_length=16)
    images = torch.randn(2, 3, 16, 16)
    sums = candidate_log_likelihoods(model, prompt, images)
    means = candidate_log_likelihoods(model, prompt, images, normalisation="mean")
    lengths = torch.tensor([len(a) for a in prompt.candidate_ids], dtype=sums.dtype)
    torch.testing.assert_close(means, sums / lengths)
    probabilities = closed_set_probabilities(model, prompt, images)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2))
    torch.testing.assert_close(probabilities, sums.softmax(dim=1))
    with pytest.raises(ValueError, match="normalisation 'max'"):
        candidate_log_likelihoods(model, prompt, images, normalisation="max")


@pytest.mark.parametrize(
    ("template", "candidates", "message"),
    [
        ("USER: which digit ? ASSISTANT:", NUMBERS, "has no image token <image>"),
        ("<image> <image> which digit ?", NUMBERS, "has 2 image tokens"),
        (PROMPT, ["one", "two", "one"], "'one' is listed twice"),
        (PROMPT, ["one", " "], "a candidate answer is empty"),
        (PROMPT, ["one"], "at least two candidate answers"),
    ],
)
def test_template_and_candidate_mistakes_are_named(template, candidates, message):
    assert any(message in problem for problem in prompt_problems(template, candidates))


def test_candidates_the_tokenizer_cannot_tell_apart_are_refused(tokenizer):
    # two words outside the vocabulary both become <unk>: the model could not tell them apart
    with pytest.raises(ValueError, match="'cat' and 'dog' tokenise the same"):
        closed_set_prompt(tokenizer, PROMPT, ["one", "cat", "dog"], image_seq_length=16)
    with pytest.raises(ValueError, match="no image token"):
        closed_set_prompt(tokenizer, "which digit ?", NUMBERS, image_seq_length=16)
