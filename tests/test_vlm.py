"""Closed-set answering with LLaVA (sda_core.models.vlm) on a tiny random-weight model of the real
architecture: the cached, batched candidate scores against transformers' own loss, per candidate."""

import copy

import pytest
import torch

from sda_core.models.vlm import (
    LORA_ATTENTION,
    answering_loss,
    candidate_log_likelihoods,
    closed_set_probabilities,
    closed_set_prompt,
    load_lora,
    prompt_problems,
    save_lora,
    tiny_llava,
    with_lora,
    word_tokenizer,
)

PROMPT = "USER: <image> which digit is this ? ASSISTANT:"
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# answers of one, two and three words: the cache path must handle unequal lengths in one chunk
CANDIDATES = ["seven", "one", "nine zero", "two four six", "eight"]
SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


@pytest.fixture(scope="module")
def tokenizer():
    return word_tokenizer(PROMPT.split() + NUMBERS + ["even", "odd", "or"])


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


def test_images_scored_together_equal_images_scored_alone(model, tokenizer):
    prompt = closed_set_prompt(tokenizer, PROMPT, CANDIDATES, image_seq_length=16)
    torch.manual_seed(2)
    images = torch.randn(4, 3, 16, 16)
    together = candidate_log_likelihoods(model, prompt, images, chunk=2)
    alone = torch.cat([candidate_log_likelihoods(model, prompt, image[None], chunk=2) for image in images])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_the_training_loss_is_the_mean_answer_token_loss_the_scores_give(model, tokenizer):
    """answering_loss (transformers' loss over the answer tokens of every question) equals minus the
    scored log-likelihoods of the right answers over their token count: training and scoring agree."""
    digit = closed_set_prompt(tokenizer, PROMPT, NUMBERS, image_seq_length=16)
    parity = closed_set_prompt(tokenizer, "USER: <image> even or odd ? ASSISTANT:", ["even", "odd"], 16)
    torch.manual_seed(3)
    images, labels = torch.randn(3, 3, 16, 16), [7, 2, 4]
    answers = [labels, [k % 2 for k in labels]]
    loss, correct, answered = answering_loss(model, [digit, parity], answers, images, tokenizer.pad_token_id)
    scores = [candidate_log_likelihoods(model, prompt, images) for prompt in (digit, parity)]
    picked = torch.stack([scores[q][torch.arange(3), torch.tensor(answers[q])] for q in range(2)])
    tokens = sum(len(prompt.candidate_ids[a]) for prompt, question in zip((digit, parity), answers) for a in question)
    torch.testing.assert_close(loss.detach(), -picked.sum() / tokens, atol=1e-5, rtol=1e-5)
    assert answered == 6 and 0 <= correct <= 6


def test_lora_adapters_train_alone_and_load_back_to_the_same_outputs(tokenizer, tmp_path):
    torch.manual_seed(4)
    text = dict(SIZES, num_key_value_heads=1, max_position_embeddings=64)
    base = tiny_llava(tokenizer, image_size=16, patch_size=4, vision=SIZES, text=text).eval()
    adapted = with_lora(copy.deepcopy(base), dict(rank=4, alpha=8, dropout=0.0, modules=LORA_ATTENTION, projector=True))
    trainable = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert any("multi_modal_projector" in name for name in trainable)
    assert not any("vision_tower" in name for name in trainable)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.normal_()  # B starts at zero: make the adapters change the outputs
    save_lora(adapted, tmp_path / "lora.safetensors", {"kind": "vlm"})
    prompt = closed_set_prompt(tokenizer, PROMPT, CANDIDATES, image_seq_length=16)
    images = torch.randn(2, 3, 16, 16)
    loaded = load_lora(copy.deepcopy(base), tmp_path / "lora.safetensors").eval()
    expected = candidate_log_likelihoods(adapted.eval(), prompt, images)
    torch.testing.assert_close(candidate_log_likelihoods(loaded, prompt, images), expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(expected, candidate_log_likelihoods(base, prompt, images), atol=1e-3)
    from sda_core.checkpoints import CheckpointError, save_weights

    save_weights(base, tmp_path / "full.safetensors")
    with pytest.raises(CheckpointError, match="holds no LoRA settings"):
        load_lora(copy.deepcopy(base), tmp_path / "full.safetensors")
