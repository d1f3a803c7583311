"""Recurrent graph networks: cells with an explicit step forward / backward, unrolled through time.

``RecurrentCell`` (cell.py) is the contract, ``Recurrent`` (sequence.py) the loop over time with
full or truncated backpropagation through time; each cell is one short file.
"""
from .cell import RecurrentCell  # noqa: F401
from .gconv_gru import GConvGRU  # noqa: F401
from .sequence import Recurrent  # noqa: F401
from .tgcn import TGCN  # noqa: F401
from .a3tgcn import A3TGCN  # noqa: F401
from .dcrnn import DCRNN  # noqa: F401
from .gconv_lstm import GConvLSTM  # noqa: F401
