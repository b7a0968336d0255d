"""Tasks handed out on demand to a parallel loop's threads: ``take(counter)``.

Numba's ``prange`` gives each thread one contiguous share of the iterations, fixed before
the loop starts: its OpenMP layer (the one used here; TBB is not installed) ignores
``numba.set_parallel_chunksize`` (measured: with chunk size 1, 32 long iterations then 32
short ones ran as threads 0 and 1 taking one half each, 2x the time of an even split; with
TBB the same chunk size hands them out on demand). A loop whose tasks differ in cost (the
last block of positions, a phase with fewer kernel entries) or a thread the machine
delays (a busy neighbour on two shared cores) then leaves the other thread waiting.

The loops that matter run instead as one worker per thread, each taking the next task
number from a shared counter until none is left::

    counter = np.zeros(1, np.int64)
    for _ in prange(threads):
        while True:
            t = next_task(counter, n_tasks, threads)
            if t < 0:
                break
            ...  # task t, as the body of ``for t in prange(n_tasks)`` was

Tasks are not handed out in their own order: :func:`next_task` deals them in ``threads``
strands, the k-th number taken going to strand ``k % threads``, each strand walking its
own contiguous share. Neighbouring tasks write neighbouring outputs (a block of positions
and the next one share the cache lines at their border); handed out in order, two
threads always worked on neighbours, and those lines went back and forth between the
cores: a 1 x 1 strided forward pass (25 tasks of ~30 us) took 1.23-1.45x its time with
static halves. In strands, the threads work ``n_tasks / threads`` apart as static halves
did, and a thread that finishes early still takes over the rest.

Which thread runs a task never changes a result: every task writes its own outputs and
sums in a fixed order. ``take`` is an atomic fetch-and-add (LLVM ``atomicrmw add``,
monotonic: only the counter is shared); plain Python under ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload


def take(counter):
    """The next task number: ``counter[0]``, incremented (atomically when compiled)."""
    t = int(counter[0])
    counter[0] = t + 1
    return t


@intrinsic
def _fetch_add(typingctx, counter):
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary,
                                       [context.get_constant(types.intp, 0)])
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", ptr, one, "monotonic")

    return types.int64(counter), codegen


@overload(take)
def _take_impl(counter):
    return lambda counter: _fetch_add(counter)


@njit(inline="always", cache=True, nogil=True)
def next_task(counter, n_tasks, threads):
    """The next task in strands (see above), or -1 when none is left: number ``i`` taken
    from the counter is task ``(i % threads) * size + i // threads`` (``size``: tasks a
    strand), numbers past a short last strand skipped."""
    size = (n_tasks + threads - 1) // threads
    while True:
        i = take(counter)
        if i >= threads * size:
            return -1
        t = i % threads * size + i // threads
        if t < n_tasks:
            return t
