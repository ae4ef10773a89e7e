"""Sentence BLEU reference values for kexue's summarization metrics (packages/models/src/metrics/
summary.ts), computed by NLTK's sentence_bleu with SmoothingFunction().method1, as T5 PEGASUS's
evaluation scores CSL titles (ALGORITHMS.md §4.4): characters as tokens, random pairs of 1 to 14
characters drawn from a small alphabet so that n-grams repeat and partly match.

Needs NLTK (Debian: apt-get install python3-nltk); writes packages/models/test/fixtures/bleu_nltk.json.
"""
import json
import os
import random

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

import common

ALPHABET = "的一是在不了有和人这中大为上个"
OUT = os.path.join(common.ROOT, "packages", "models", "test", "fixtures", "bleu_nltk.json")


def main():
    rng = random.Random(7)
    cases = []
    for _ in range(300):
        ref = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 14)))
        hyp = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 14)))
        bleu = sentence_bleu([list(ref)], list(hyp), smoothing_function=SmoothingFunction().method1)
        cases.append({"reference": ref, "prediction": hyp, "bleu": bleu})
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"nltk": "sentence_bleu, SmoothingFunction().method1", "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
