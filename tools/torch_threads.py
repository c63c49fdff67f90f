"""Pins the BLAS thread pools of a PyTorch benchmark to its --threads flag.

Import this module before `import torch`. torch.set_num_threads() sets PyTorch's own (OpenMP)
pool only; Debian's torch multiplies matrices in OpenBLAS (libopenblasp, a pthreads build), whose
pool is sized once, from OPENBLAS_NUM_THREADS or the core count, when the library loads. Without
this, a "--threads 1" PyTorch run kept multiplying on every core (measured: 268 vs 186 decode
tokens/s at batch 32 on 2 cores), and comparisons against it were not like for like.
"""

import os
import sys


def _threads_from_argv(argv):
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


_value = _threads_from_argv(sys.argv[1:])
if _value is not None and _value.isdigit() and int(_value) > 0:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _value
