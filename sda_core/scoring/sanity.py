"""The sanity checks of a run: single models on single image sets, scored as the task scores them (top-1
or mIoU). The gates (sda_core.jobs.gates) read two of them."""

from sda_core.image_sets import CLEAN, SYNTHETIC_GENERATED, SYNTHETIC_MOD, adapted


def is_synthetic(image_set: str) -> bool:
    return image_set in (SYNTHETIC_GENERATED, SYNTHETIC_MOD)


# (check, model, image set)
SOURCE_CLEAN = "source on clean test"
GENERATOR_AGREEMENT = "source agrees with generator label"
SANITY_CHECKS = [
    (SOURCE_CLEAN, "source", CLEAN),
    ("source on clean after unguided diffusion (misalignment)", "source", adapted("unguided", CLEAN)),
    ("source on clean after DDA", "source", adapted("dda", CLEAN)),
    ("fine-tuned on clean test", "finetuned", CLEAN),
    ("fine-tuned on clean after unguided diffusion", "finetuned", adapted("unguided", CLEAN)),
    ("fine-tuned on clean after DDA", "finetuned", adapted("dda", CLEAN)),
    (GENERATOR_AGREEMENT, "source", SYNTHETIC_GENERATED),
    ("source agrees with label after MoD", "source", SYNTHETIC_MOD),
]


QUESTION_MARK = " (question "  # what a check's name carries after it for a vlm's other question


def question_check(check: str, question: str) -> str:
    """A sanity check of a vlm on another of its questions than the table's (sda_core.data.questions)."""
    return f"{check}{QUESTION_MARK}{question})"
