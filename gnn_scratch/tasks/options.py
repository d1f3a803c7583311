"""The checks of every user-given value, one per kind of value: the command line's argparse types and the API's.

Each kind (``positive_int``, ``non_negative_int``, ``finite_positive_float``, ``non_negative_float``,
``probability``, ``fraction``, ``fanouts``) is one test and one phrase saying what is expected. The same test serves
two callers:

* the command line: ``positive_int`` (and the others) are argparse ``type=`` functions; a bad value
  makes argparse say ``argument --epochs: expected a positive integer, got '0'``, before any work
  (in one line: ``Parser``, the parser every command line of the package uses);
* the Python API: ``check(kind, value, name)`` returns the value or raises ValueError
  ``epochs must be a positive integer, got 0`` (``tasks.node`` checks its training
  hyper-parameters this way before it builds anything).

The file-path kinds of the command line (``--save``, ``--load``, ``--data-root``) are here too, so
that every option's value is checked in this module (the .npz naming rule itself is ``io``'s). No
other module of the package is imported at module level: the tasks and the command line both sit
above this floor.
"""
from __future__ import annotations

import argparse
import math
import numbers
import os


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on standard error (no usage block), exit status 2:
    ``PROG: error: argument --lr: expected a finite number > 0, got 'nan' (see PROG --help)``. Its
    subparsers are of this class too (argparse makes them of the parent's class)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


# kind: (parse a command-line string, test a parsed value, what is expected)
KINDS = {
    "positive_int": (int, lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "non_negative_int": (int, lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "finite_float": (float, lambda v: _is_real(v) and math.isfinite(v), "a finite number"),
    "finite_positive_float": (float, lambda v: _is_real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "non_negative_float": (float, lambda v: _is_real(v) and math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "probability": (float, lambda v: _is_real(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "fraction": (float, lambda v: _is_real(v) and 0 < v < 1, "a fraction in (0, 1)"),
    "fanouts": (lambda s: [int(f) for f in s.split(",")],
                lambda v: len(v) > 0 and all(_is_int(f) and (f >= 1 or f == -1) for f in v),
                "comma-separated fan-outs, each a positive integer or -1 (all neighbours), such as 25,10"),
}


def expected(kind):
    """What a value of ``kind`` must be, as a phrase ("a positive integer")."""
    return KINDS[kind][2]


def check(kind, value, name):
    """``value`` when it is a valid ``kind``; else ValueError "``name`` must be <expected>, got <value>"."""
    _, test, what = KINDS[kind]
    probe = list(value) if kind == "fanouts" and isinstance(value, (list, tuple)) else value
    if not test(probe):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def _argtype(kind):
    parse, test, what = KINDS[kind]

    def convert(text):
        try:
            value = parse(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    convert.__name__ = kind
    return convert


positive_int = _argtype("positive_int")
non_negative_int = _argtype("non_negative_int")
finite_float = _argtype("finite_float")
finite_positive_float = _argtype("finite_positive_float")
non_negative_float = _argtype("non_negative_float")
probability = _argtype("probability")
fraction = _argtype("fraction")
fanouts = _argtype("fanouts")


def names(allowed, what):
    """An argparse type: comma-separated names among ``allowed``, case ignored, returned as the same text with each
    name spelled as in ``allowed`` (``--graphs random-1m`` -> "random-1M"); ArgumentTypeError "expected
    comma-separated <what> among ..." otherwise."""
    spelled = {a.lower(): a for a in allowed}

    def convert(text):
        items = text.lower().split(",")
        if not all(item in spelled for item in items):
            raise argparse.ArgumentTypeError(f"expected comma-separated {what} among {', '.join(allowed)}, got {text!r}")
        return ",".join(spelled[item] for item in items)
    convert.__name__ = what
    return convert


# ============================================================================== files and folders
def output_file(path):
    """--out and the like: ``path`` when its folder exists and is writable and it is not itself a folder, else
    ArgumentTypeError -- checked when the command line is read, not after the work that writes it."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"expected a file in an existing folder, but folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"expected a file in a writable folder, but {folder!r} is not writable")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"expected a file name, but {path!r} is a folder")
    return path


def model_output(text):
    """--save: the .npz path written (suffix added as numpy adds it); its folder must exist and be writable."""
    from ..io import npz_path
    return output_file(npz_path(text))


def array_output(text):
    """--save of an array (an embedding): the .npy path written (suffix added as numpy.save adds it); its folder
    must exist and be writable. A name ending in .npz is refused (numpy.save would write NAME.npz.npy)."""
    if text.endswith(".npz"):
        raise argparse.ArgumentTypeError(f"the embedding is one array, written with numpy.save to NAME.npy; got "
                                         f"{text!r}, an .npz name (give NAME or NAME.npy)")
    return output_file(text if text.endswith(".npy") else text + ".npy")


def model_input(text):
    """--load: an existing model file, given with or without its .npz suffix (as --save was given)."""
    from ..io import find_model_file
    try:
        return find_model_file(text)
    except IsADirectoryError as e:
        raise argparse.ArgumentTypeError(f"expected a saved model file (FILE or FILE.npz), but {e}")
    except FileNotFoundError as e:
        raise argparse.ArgumentTypeError(f"expected a saved model file (FILE or FILE.npz), but there is {e}")


def existing_folder(text):
    """--data-root: an existing folder."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected an existing folder, got {text!r}")
    return text


def check_heads_share_width(model_name, model_kw):
    """ValueError (naming both options) when ``model_kw``'s heads do not divide its hidden_channels: the models
    whose heads split one width (han, gt, gps) need hidden_channels % heads == 0. Absent keys: nothing to check."""
    hidden, heads = model_kw.get("hidden_channels"), model_kw.get("heads")
    if hidden is not None and heads is not None and hidden % heads:
        raise ValueError(f"hidden_channels (--hidden) must be divisible by heads (--heads): {model_name}'s "
                         f"{heads} heads share its {hidden} channels, got {hidden} % {heads} = {hidden % heads}")
