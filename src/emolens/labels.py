"""The label set: the one place that says which emotions exist and in which order.

The order is alphabetical, which is also the order of the class folders in the Kaggle
download, so `sorted(os.listdir("train"))` and `EMOTIONS` agree.
"""

from __future__ import annotations

from difflib import get_close_matches

from emolens.errors import ConfigError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_CLASSES = len(EMOTIONS)

# Index order of the `emotion` column of the original fer2013.csv (0=Angry ... 6=Neutral).
FER2013_CSV_ORDER: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Other spellings found in folder datasets (CK+, JAFFE, RAF-DB, AffectNet exports, users' own).
ALIASES: dict[str, str] = {
    "anger": "angry", "an": "angry",
    "disgusted": "disgust", "di": "disgust",
    "fearful": "fear", "afraid": "fear", "fe": "fear",
    "happiness": "happy", "joy": "happy", "ha": "happy",
    "neutrality": "neutral", "calm": "neutral", "ne": "neutral",
    "sadness": "sad", "sa": "sad",
    "surprised": "surprise", "su": "surprise",
}


def canonical_label(name: str, mapping: dict[str, str] | None = None) -> str | None:
    """Return the canonical emotion for a class name, or None if it is not one of the seven.

    `mapping` (user-given, e.g. ``{"happiness": "happy", "contempt": None}``) wins over the
    built-in aliases. Matching is case-insensitive.
    """
    key = name.strip().lower()
    if mapping is not None:
        lowered = {k.lower(): v for k, v in mapping.items()}
        if key in lowered:
            target = lowered[key]
            if target is None:
                return None
            if target not in EMOTIONS:
                raise ConfigError(
                    f"label mapping sends {name!r} to {target!r}, which is not an emotion; "
                    f"expected one of {', '.join(EMOTIONS)}"
                )
            return target
    if key in EMOTIONS:
        return key
    return ALIASES.get(key)


def label_index(name: str) -> int:
    """Index of a canonical emotion name in `EMOTIONS`, with a suggestion when misspelt."""
    try:
        return EMOTIONS.index(name)
    except ValueError:
        close = get_close_matches(name, EMOTIONS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown emotion {name!r}{hint} Expected one of {', '.join(EMOTIONS)}") from None
