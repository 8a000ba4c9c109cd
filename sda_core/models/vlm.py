"""Vision-language models answering from a closed set: LLaVA (transformers) scored on candidate answers.

A question is posed as a prompt holding the image token; its answer is one of a fixed list of
candidates. The model's probability over the candidates is the softmax of their log-likelihoods, the
log-probability of each candidate's answer tokens followed by the end-of-sequence token, given the
image and the prompt:

    log p(a | x, q) = sum_j log p(a_j | x, q, a_<j),   a = tokens(candidate) + [eos]        (1)
    P(candidate k | x, q) = softmax_k(log p(a_k | x, q))                                      (2)

Length: (1) is the probability that the model writes exactly that answer and stops, which is what a
closed set asks; its sum is not divided by the answer's length by default, since a per-token mean is
not a probability of anything and favours long answers whose later tokens are near-certain once the
first is chosen (`normalisation: mean` offers it). The end token makes "seven" and "seventy" two
answers rather than one a prefix of the other.

Cost: the prompt and image prefix is run once per image; the candidates are scored on copies of its
key/value cache, `chunk` candidates per forward (each pass is a few tokens against the cached prefix),
never one full forward per candidate. Torch and transformers are imported inside the functions (the
workflow reads this module's checks while it parses).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

IMAGE_TOKEN = "<image>"
NORMALISATIONS = ("sum", "mean")


@dataclass(frozen=True)
class ClosedSetPrompt:
    """The token ids a question is scored with: the prompt (image token expanded to the model's
    image sequence length, as LlavaProcessor does) and each candidate's answer tokens ending with eos."""

    prompt_ids: tuple[int, ...]
    candidate_ids: tuple[tuple[int, ...], ...]
    candidates: tuple[str, ...]


def prompt_problems(template: str, candidates: Sequence[str]) -> list[str]:
    """What is wrong with a question template and its candidate answers, before any tokenizer is loaded."""
    problems = []
    if IMAGE_TOKEN not in template:
        problems.append(f"the question template {template!r} has no image token {IMAGE_TOKEN}")
    elif template.count(IMAGE_TOKEN) > 1:
        problems.append(
            f"the question template {template!r} has {template.count(IMAGE_TOKEN)} image tokens; one image is scored"
        )
    if len(candidates) < 2:
        problems.append(f"a closed set needs at least two candidate answers, got {list(candidates)}")
    seen = set()
    for candidate in candidates:
        if not candidate.strip():
            problems.append(f"a candidate answer is empty ({candidate!r})")
        elif candidate in seen:
            problems.append(f"the candidate answer {candidate!r} is listed twice")
        seen.add(candidate)
    return problems


def closed_set_prompt(tokenizer, prompt: str, candidates: Sequence[str], image_seq_length: int) -> ClosedSetPrompt:
    """Tokenise a prompt and its candidates; refuses what would score wrongly, naming it.

    A candidate's tokens are those the tokenizer gives the prompt followed by the candidate, less the
    prompt's own: tokenised alone, a word may get other tokens than after the prompt (SentencePiece's
    leading-space marker). A candidate whose tokens would merge with the prompt's end, that adds no
    token, or that tokenises like another is refused."""
    problems = prompt_problems(prompt, candidates)
    if problems:
        raise ValueError("; ".join(problems))
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if image_id is None or image_id == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {IMAGE_TOKEN} token")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no end-of-sequence token: answers could not be told from their prefixes")
    base = tokenizer(prompt).input_ids
    answers, seen = [], {}
    for candidate in candidates:
        full = tokenizer(f"{prompt} {candidate}").input_ids
        if full[: len(base)] != base:
            raise ValueError(f"the candidate answer {candidate!r} changes how the prompt's end is tokenised")
        answer = tuple(full[len(base) :])
        if not answer:
            raise ValueError(f"the candidate answer {candidate!r} tokenises to nothing")
        if answer in seen:
            raise ValueError(
                f"the candidate answers {seen[answer]!r} and {candidate!r} tokenise the same: {list(answer)}"
            )
        seen[answer] = candidate
        answers.append((*answer, tokenizer.eos_token_id))
    expanded = []
    for token in base:
        expanded.extend([token] * image_seq_length if token == image_id else [token])
    return ClosedSetPrompt(tuple(expanded), tuple(answers), tuple(candidates))


def candidate_log_likelihoods(
    model, prompt: ClosedSetPrompt, pixel_values, chunk: int = 64, normalisation: str = "sum"
):
    """(N, C) log-likelihoods (1) of the C candidates for N images (pixel_values: (N, 3, H, W), already
    in the vision tower's normalisation), one prefix forward per image and ceil(C / chunk) candidate
    forwards on its cache."""
    import torch

    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation {normalisation!r}: one of {', '.join(NORMALISATIONS)}")
    device = pixel_values.device
    prefix = torch.tensor([prompt.prompt_ids], device=device)
    lengths = torch.tensor([len(a) for a in prompt.candidate_ids], device=device)
    rows = []
    with torch.no_grad():
        for image in pixel_values:
            out = model(input_ids=prefix, pixel_values=image[None], use_cache=True)
            first = out.logits[0, -1].float().log_softmax(-1)  # p(a_1 | x, q)
            row = []
            for start in range(0, len(prompt.candidate_ids), chunk):
                answers = prompt.candidate_ids[start : start + chunk]
                row.append(_chunk_log_likelihoods(model, out.cache, prefix.shape[1], first, answers))
            rows.append(torch.cat(row))
    scores = torch.stack(rows)
    return scores / lengths if normalisation == "mean" else scores


def _chunk_log_likelihoods(model, prefix_cache, prefix_length: int, first, answers):
    """Sum of log p(a_j | ...) over each answer's tokens: a_1 from the prefix's last logits, the rest from
    one forward of the answers' tokens but their last (right-padded) on a copy of the prefix cache."""
    import torch

    device = first.device
    longest = max(len(a) for a in answers)
    total = torch.stack([first[a[0]] for a in answers])
    if longest == 1:
        return total
    inputs = torch.zeros(len(answers), longest - 1, dtype=torch.long, device=device)
    targets = torch.zeros_like(inputs)
    valid = torch.zeros_like(inputs, dtype=torch.bool)
    for i, answer in enumerate(answers):
        n = len(answer) - 1
        inputs[i, :n] = torch.tensor(answer[:-1])
        targets[i, :n] = torch.tensor(answer[1:])
        valid[i, :n] = True
    cache = copy.deepcopy(prefix_cache)
    cache.batch_repeat_interleave(len(answers))
    mask = torch.cat([torch.ones(len(answers), prefix_length, dtype=torch.long, device=device), valid.long()], dim=1)
    logits = model(input_ids=inputs, attention_mask=mask, cache=cache, use_cache=True).logits
    picked = logits.float().log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    return total + (picked * valid).sum(dim=1)


def closed_set_probabilities(model, prompt: ClosedSetPrompt, pixel_values, chunk: int = 64, normalisation: str = "sum"):
    """(N, C) probabilities (2): the record a classifier writes, so tables, ensembles and studies apply."""
    return candidate_log_likelihoods(model, prompt, pixel_values, chunk, normalisation).softmax(dim=1)


def word_tokenizer(words: Sequence[str]):
    """A word-level tokenizer over `words` (whitespace-split, no hub download): the tiny LLaVA's, whose
    vocabulary is its templates' words. Special tokens: <pad> 0, <unk> 1, <s> 2, </s> 3, <image> 4."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN]
    vocab = {word: index for index, word in enumerate(dict.fromkeys([*specials, *words]))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens=[IMAGE_TOKEN],
    )


def tiny_llava(tokenizer, image_size: int, patch_size: int, vision: dict, text: dict):
    """A LLaVA of the real architecture (CLIP vision tower, two-layer projector, Llama) built from
    transformers' configs with random weights: `vision` and `text` give CLIPVisionConfig's and
    LlamaConfig's sizes. Its image sequence is the patches without the class token (LLaVA-1.5's
    `default` feature selection)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision_config = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, **vision)
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **text,
    )
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    return LlavaForConditionalGeneration(config)
