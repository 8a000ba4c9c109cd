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
    in the vision tower's normalisation): one prefix forward for the N images together, then
    ceil(C / chunk) forwards of N x chunk candidate rows on copies of its cache."""
    import torch

    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation {normalisation!r}: one of {', '.join(NORMALISATIONS)}")
    device = pixel_values.device
    prefix = torch.tensor([prompt.prompt_ids], device=device).expand(len(pixel_values), -1)
    lengths = torch.tensor([len(a) for a in prompt.candidate_ids], device=device)
    with torch.no_grad():
        out = model(input_ids=prefix, pixel_values=pixel_values, use_cache=True)
        first = out.logits[:, -1].float().log_softmax(-1)  # (N, vocabulary): p(a_1 | x, q)
        scores = torch.cat(
            [
                _chunk_log_likelihoods(
                    model, out.cache, prefix.shape[1], first, prompt.candidate_ids[start : start + chunk]
                )
                for start in range(0, len(prompt.candidate_ids), chunk)
            ],
            dim=1,
        )
    return scores / lengths if normalisation == "mean" else scores


def _chunk_log_likelihoods(model, prefix_cache, prefix_length: int, first, answers):
    """(N, len(answers)): the sum of log p(a_j | ...) over each answer's tokens for each of N images; a_1
    from the prefix's last logits, the rest from one forward of every (image, answer) pair's tokens but
    the last (right-padded), on a copy of the prefix cache repeated per answer (rows image-major)."""
    import torch

    device = first.device
    images, count = first.shape[0], len(answers)
    longest = max(len(a) for a in answers)
    total = first[:, [a[0] for a in answers]]
    if longest == 1:
        return total
    inputs = torch.zeros(count, longest - 1, dtype=torch.long, device=device)
    targets = torch.zeros_like(inputs)
    valid = torch.zeros_like(inputs, dtype=torch.bool)
    for i, answer in enumerate(answers):
        n = len(answer) - 1
        inputs[i, :n] = torch.tensor(answer[:-1])
        targets[i, :n] = torch.tensor(answer[1:])
        valid[i, :n] = True
    cache = copy.deepcopy(prefix_cache)
    cache.batch_repeat_interleave(count)  # row i * count + j: image i, answer j
    inputs, targets, valid = inputs.repeat(images, 1), targets.repeat(images, 1), valid.repeat(images, 1)
    mask = torch.cat([torch.ones(len(inputs), prefix_length, dtype=torch.long, device=device), valid.long()], dim=1)
    logits = model(input_ids=inputs, attention_mask=mask, cache=cache, use_cache=True).logits
    picked = logits.float().log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    return total + (picked * valid).sum(dim=1).view(images, count)


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


# -- training -------------------------------------------------------------------------------------------
IGNORE_INDEX = -100  # transformers' label value that counts in no loss


def answering_batch(prompts: Sequence[ClosedSetPrompt], answers: Sequence[Sequence[int]], pad_id: int):
    """The teacher-forced sequences of every question for every image, question-major: prompt then the
    answer's tokens (ending with eos), right-padded; labels are the answer tokens only (IGNORE_INDEX on
    the prompt and the padding). answers[q][i]: the index of image i's answer among question q's
    candidates. Returns (input_ids, attention_mask, labels), each (Q * N, longest)."""
    import torch

    rows = [
        (prompt.prompt_ids, prompt.candidate_ids[answer])
        for prompt, question_answers in zip(prompts, answers, strict=True)
        for answer in question_answers
    ]
    longest = max(len(p) + len(a) for p, a in rows)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    mask = torch.zeros_like(input_ids)
    for row, (prompt_ids, answer) in enumerate(rows):
        end = len(prompt_ids) + len(answer)
        input_ids[row, :end] = torch.tensor([*prompt_ids, *answer])
        labels[row, len(prompt_ids) : end] = torch.tensor(answer)
        mask[row, :end] = 1
    return input_ids, mask, labels


def answering_loss(
    model, prompts: Sequence[ClosedSetPrompt], answers: Sequence[Sequence[int]], pixel_values, pad_id: int
):
    """Cross-entropy on the answer tokens of every question for every image (transformers' own loss of
    LlavaForConditionalGeneration given labels: the mean over the answer tokens), and how many of the
    Q x N answers the model gets exactly right when teacher-forced (its argmax at every answer token).
    Returns (loss, correct, answered)."""
    import torch

    input_ids, mask, labels = (t.to(pixel_values.device) for t in answering_batch(prompts, answers, pad_id))
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        pixel_values=pixel_values.repeat(len(prompts), 1, 1, 1),
        labels=labels,
    )
    with torch.no_grad():
        predicted = out.logits[:, :-1].argmax(-1)
        targets = labels[:, 1:]
        counted = targets != IGNORE_INDEX
        right = ((predicted == targets) | ~counted).all(dim=1)
    return out.loss, int(right.sum()), len(right)


# -- LoRA -------------------------------------------------------------------------------------------------
LORA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


def lora_config(rank: int, alpha: float, dropout: float, modules: Sequence[str], projector: bool):
    """peft's LoraConfig on the language model's `modules` (its attention projections by default) and,
    with `projector`, the two linear layers of the multimodal projector; the vision tower stays as is."""
    from peft import LoraConfig

    pattern = rf".*language_model\..*\.({'|'.join(modules)})"
    if projector:
        pattern = rf"({pattern}|.*multi_modal_projector\.linear_[12])"
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern, bias="none")


def with_lora(model, settings: dict):
    """`model` wrapped by peft with new LoRA adapters (settings: the config's vlm.lora); only the adapters train."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(**settings))


def save_lora(peft_model, path, metadata: dict[str, str]) -> None:
    """The adapters alone (peft's state dict of the LoRA weights) as safetensors, written atomically."""
    import json
    import os
    from pathlib import Path

    from peft import get_peft_model_state_dict
    from safetensors.torch import save

    from sda_core.checkpoints import CheckpointError, sorted_metadata_header

    state = {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(peft_model).items()}
    broken = [k for k, v in state.items() if not bool(v.isfinite().all())]
    if broken:
        raise CheckpointError(f"refusing to save {path}: NaN or Inf in LoRA tensor(s) {', '.join(broken[:5])}")
    config = peft_model.peft_config["default"]
    lora = {"r": config.r, "lora_alpha": config.lora_alpha, "target_modules": config.target_modules}
    header, tensors = sorted_metadata_header(memoryview(save(state, metadata={**metadata, "lora": json.dumps(lora)})))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        file.write(header)
        file.write(tensors)
    os.replace(tmp, path)


def safetensors_metadata(path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        return file.metadata() or {}


def load_lora(model, path):
    """`model` with the LoRA adapters of `path` merged into its weights; the adapters' rank, alpha and
    modules come from the file (save_lora writes them), a key or shape mismatch names it."""
    import json

    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    from sda_core.checkpoints import CheckpointError, key_mismatch, listed_keys, non_finite_tensors, read_state_dict

    state = read_state_dict(path)
    lora = safetensors_metadata(path).get("lora")
    if lora is None:
        raise CheckpointError(f"{path} holds no LoRA settings in its metadata: not LoRA adapters written here")
    peft_model = get_peft_model(model, LoraConfig(**json.loads(lora), lora_dropout=0.0, bias="none"))
    mismatch = key_mismatch(state, get_peft_model_state_dict(peft_model))
    if any(mismatch.values()):
        raise CheckpointError(f"LoRA adapters {path} do not fit the model; " + listed_keys(mismatch))
    broken = non_finite_tensors(state)
    if broken:
        raise CheckpointError(f"LoRA adapters {path} hold NaN or Inf in {', '.join(broken[:5])}")
    set_peft_model_state_dict(peft_model, state)
    return peft_model.merge_and_unload()
