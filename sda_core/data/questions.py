"""The questions a vision-language model (architectures[].kind: vlm) is asked about a world's images,
each with its closed set of candidate answers and the answer of every class. Torch-free: the workflow
checks them while it parses.

The first question of a model's `vlm.questions` is its table question: its candidates are the classes
in class order (its answer to an image of class k is candidate k), so its probability rows are the
record a classifier writes and every table, ensemble and gate applies. The others are asked in training
and scored per question type (the sanity table), so that the model answers questions, not a
classification renamed: their answers are not the class names.

The templates are ours (the paper's prompt is not public). `<image>` marks where the image's tokens go
(sda_core.models.vlm.IMAGE_TOKEN). The digits' templates are written in space-separated words for the
tiny model's word-level tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class Question:
    name: str
    template: str  # the prompt, holding one <image>
    candidates: tuple[str, ...]
    answer_of: Callable[[int], int]  # class -> index of its answer among the candidates
    of_classes: bool = False  # candidates are the classes in class order (a table question)

    def answers(self, labels) -> list[int]:
        return [self.answer_of(int(label)) for label in labels]


def _digit_question(template: str) -> Question:
    return Question("digit", template, DIGIT_NAMES, lambda label: label, of_classes=True)


# world -> its questions, by name (the first: the default table question)
WORLD_QUESTIONS: dict[str, dict[str, Question]] = {
    "digits": {
        question.name: question
        for question in (
            _digit_question("USER : <image> which digit is this ? ASSISTANT :"),
            Question(
                "parity", "USER : <image> is this digit even or odd ? ASSISTANT :", ("even", "odd"), lambda k: k % 2
            ),
        )
    },
}


def world_questions(world: str) -> dict[str, Question]:
    return WORLD_QUESTIONS.get(world, {})


def question_names(world: str, names: list[str] | None) -> list[str]:
    """A model's question list (vlm.questions): as given, or every question of the world (None)."""
    return list(world_questions(world)) if names is None else list(names)


def questions_of(world: str, names: list[str] | None) -> list[Question]:
    """The named questions of a world, in the given order (the first is the table question; None: all)."""
    known = world_questions(world)
    return [known[name] for name in question_names(world, names)]


def question_problems(world: str, names: list[str] | None, num_classes: int, where: str) -> list[str]:
    """What is wrong with a model's question list: unknown or repeated names, a first question whose
    answers are not the classes."""
    from sda_core.models.vlm import prompt_problems

    known = world_questions(world)
    if not known:
        return [f"{where}: world {world} has no questions for a vlm yet (sda_core.data.questions)"]
    names = question_names(world, names)
    problems = [
        f"{where}: unknown question {name!r}; valid for world {world}: {', '.join(known)}"
        for name in names
        if name not in known
    ]
    problems += [
        f"{where}: question {name!r} is listed twice" for name in sorted({n for n in names if names.count(n) > 1})
    ]
    if problems or not names:
        return problems or [f"{where}: no questions"]
    first = known[names[0]]
    if not first.of_classes or len(first.candidates) != num_classes:
        problems.append(
            f"{where}: the first question ({first.name}) is the table question: its answers must be the "
            f"{num_classes} classes (one of: {', '.join(q.name for q in known.values() if q.of_classes)})"
        )
    for name in names:
        problems += [
            f"{where}: question {name}: {p}" for p in prompt_problems(known[name].template, known[name].candidates)
        ]
    return problems


def vocabulary(questions: list[Question]) -> list[str]:
    """The words of the questions' templates and answers, in first-seen order: a word-level tokenizer's
    vocabulary (sda_core.models.vlm.word_tokenizer); `<image>` is its special token, not a word here."""
    words = []
    for question in questions:
        words += [w for w in question.template.split() if w != "<image>"]
        for candidate in question.candidates:
            words += candidate.split()
    return list(dict.fromkeys(words))
