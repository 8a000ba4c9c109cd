"""What closed-set answering costs per image (sda_core.models.vlm): tokens run, FLOPs and measured seconds,
for a closed set of C candidates scored on the prefix's cache, against what one full forward per
candidate would cost. FLOPs are counted by torch's FlopCounterMode on the real architecture's forward
passes (matrix products; on the meta device for LLaVA-1.5-7B, whose weights are not read); seconds are
measured on the tiny LLaVA of presets/digits.yaml (random weights) on this machine, and for the 7B
only where a GPU is given weights (not here). Writes benchmarks/results/<date>_vlm_costs_<hardware>.csv.

    python benchmarks/vlm_costs.py

LLaVA-1.5-7B's prompt is 576 image tokens and about 40 text tokens; its answers' token counts need its
tokenizer (not downloaded here): `--answer-tokens` (default 4 with the end token, a guess for
ImageNet's class names) is an assumption, marked as such in the CSV. The tiny model's are measured.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from record import write_results
from torch.utils.flop_counter import FlopCounterMode

from sda_core.data.questions import questions_of, vocabulary
from sda_core.models.vlm import (
    ClosedSetPrompt,
    candidate_log_likelihoods,
    closed_set_prompt,
    tiny_llava,
    word_tokenizer,
)

# LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf's config): CLIP ViT-L/14 at 336 px, Vicuna-7B (Llama-2 sizes)
LLAVA_7B_VISION = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, projection_dim=768
)
LLAVA_7B_TEXT = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
)
DIGITS_TINY = dict(  # the schema's tiny defaults (presets/digits.yaml)
    vision=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4),
    text=dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4
    ),
)


def counted_flops(function) -> int:
    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def synthetic_prompt(text_tokens: int, image_tokens: int, candidates: int, answer_tokens: int) -> ClosedSetPrompt:
    """A prompt of the given lengths (token ids 10.. for text, 5 for the image) and `candidates` answers of
    `answer_tokens` tokens each, all different: for counting, not for answering."""
    prompt = tuple([1, *range(10, 10 + text_tokens // 2), *([5] * image_tokens), *range(100, 100 + text_tokens // 2)])
    answers = tuple(
        tuple(200 + (k * answer_tokens + j) % 30000 for j in range(answer_tokens)) for k in range(candidates)
    )
    return ClosedSetPrompt(prompt, answers, tuple(str(k) for k in range(candidates)))


def full_forward_flops(model, prompt: ClosedSetPrompt, pixel_values) -> int:
    """One full forward of the prompt and one candidate's answer (what a per-candidate scoring pays, x C)."""
    ids = torch.tensor([[*prompt.prompt_ids, *prompt.candidate_ids[0]]], device=pixel_values.device)
    return counted_flops(lambda: model(input_ids=ids, pixel_values=pixel_values[:1]))


def measure(name, model, prompt, pixel_values, chunk, seconds: bool, assumed: bool) -> list[dict]:
    images, candidates = len(pixel_values), len(prompt.candidate_ids)
    tokens_cached = len(prompt.prompt_ids) + sum(len(a) - 1 for a in prompt.candidate_ids)
    tokens_full = candidates * (len(prompt.prompt_ids) + len(prompt.candidate_ids[0]))
    with torch.no_grad():
        cached = counted_flops(lambda: candidate_log_likelihoods(model, prompt, pixel_values, chunk)) / images
        full = full_forward_flops(model, prompt, pixel_values) * candidates
    row = {
        "model": name,
        "candidates": candidates,
        "prompt_tokens": len(prompt.prompt_ids),
        "answer_tokens": len(prompt.candidate_ids[0]),
        "answer_tokens_assumed": assumed,
        "chunk": chunk,
        "tokens_per_image_cached": tokens_cached,
        "tokens_per_image_full_forwards": tokens_full,
        "gflops_per_image_cached": round(cached / 1e9, 3),
        "gflops_per_image_full_forwards": round(full / 1e9, 3),
        "flops_ratio": round(full / cached, 1),
    }
    if seconds:
        with torch.no_grad():
            candidate_log_likelihoods(model, prompt, pixel_values, chunk)  # warm-up
            start = time.perf_counter()
            candidate_log_likelihoods(model, prompt, pixel_values, chunk)
        row["seconds_per_image_cached"] = round((time.perf_counter() - start) / images, 6)
        row["batch"] = images
    print(row)
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answer-tokens", type=int, default=4, help="LLaVA-1.5-7B's tokens per answer (assumed)")
    parser.add_argument("--k", type=int, nargs="+", default=[1000, 10], help="closed-set sizes for the 7B")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    questions = questions_of("digits", None)
    tokenizer = word_tokenizer(vocabulary(questions))
    tiny = tiny_llava(tokenizer, 16, 8, DIGITS_TINY["vision"], DIGITS_TINY["text"]).eval()
    for question in questions:
        prompt = closed_set_prompt(tokenizer, question.template, question.candidates, tiny.config.image_seq_length)
        rows += measure(f"tiny LLaVA ({question.name})", tiny, prompt, torch.randn(256, 3, 16, 16), 64, True, False)
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    config = LlavaConfig(
        vision_config=CLIPVisionConfig(image_size=336, patch_size=14, **LLAVA_7B_VISION),
        text_config=LlamaConfig(vocab_size=32064, **LLAVA_7B_TEXT),
        image_token_index=5,
        image_seq_length=576,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    with torch.device("meta"):
        big = LlavaForConditionalGeneration(config).eval()
    for k in args.k:
        rows += measure_on_meta(big, k, args.answer_tokens, text_tokens=40, chunk=64)
    write_results("vlm_costs", rows)


def measure_on_meta(llava, candidates: int, answer_tokens: int, text_tokens: int, chunk: int) -> list[dict]:
    """The same passes as candidate_log_likelihoods, counted part by part on the meta device (LLaVA's
    own forward checks the image tokens' count with .item(), which meta tensors cannot answer): the
    vision tower and projector once, the language model over the prefix, then over the candidates'
    tokens on a cache of the prefix, `chunk` candidates per pass; and one full forward per candidate."""
    inner, image_tokens = llava.model, llava.config.image_seq_length
    prefix = image_tokens + text_tokens
    hidden = llava.config.text_config.hidden_size

    def prefix_pass():
        features = inner.vision_tower(torch.empty(1, 3, 336, 336, device="meta"), output_hidden_states=True)
        inner.multi_modal_projector(features.hidden_states[-2][:, 1:])
        out = inner.language_model(inputs_embeds=torch.empty(1, prefix, hidden, device="meta"), use_cache=True)
        llava.lm_head(out.last_hidden_state[:, -1:])
        return out.past_key_values

    def candidate_passes(cache):
        for start in range(0, candidates, chunk):
            rows = min(chunk, candidates - start)
            repeated = copy.deepcopy(cache)  # as sda_core.models.vlm does
            repeated.batch_repeat_interleave(rows)
            ids = torch.zeros(rows, answer_tokens - 1, dtype=torch.long, device="meta")
            out = inner.language_model(input_ids=ids, cache=repeated, use_cache=True)
            llava.lm_head(out.last_hidden_state)

    def full_pass():
        inner.vision_tower(torch.empty(1, 3, 336, 336, device="meta"), output_hidden_states=True)
        out = inner.language_model(inputs_embeds=torch.empty(1, prefix + answer_tokens, hidden, device="meta"))
        llava.lm_head(out.last_hidden_state)

    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            cache = prefix_pass()
        prefix_flops = counter.get_total_flops()
        cached = prefix_flops + counted_flops(lambda: candidate_passes(cache))
        full = counted_flops(full_pass) * candidates
    row = {
        "model": f"LLaVA-1.5-7B ({candidates}-way)",
        "candidates": candidates,
        "prompt_tokens": prefix,
        "answer_tokens": answer_tokens,
        "answer_tokens_assumed": True,
        "chunk": chunk,
        "tokens_per_image_cached": prefix + candidates * (answer_tokens - 1),
        "tokens_per_image_full_forwards": candidates * (prefix + answer_tokens),
        "gflops_per_image_cached": round(cached / 1e9, 3),
        "gflops_per_image_full_forwards": round(full / 1e9, 3),
        "flops_ratio": round(full / cached, 1),
    }
    print(row)
    return [row]


if __name__ == "__main__":
    main()
