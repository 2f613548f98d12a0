"""Identity-specific activation patterns for template-based face recognition.

Why one module over 400 lines: it is the whole method of one paper behind the public names
the conventions fix for ``jfr.templates``; half of it is the exact blockwise min-mean
kernel, whose pieces only make sense together.

Implements Ferrari, Berretti and Del Bimbo, "Discovering Identity Specific
Activation Patterns in Deep Descriptors for Template Based Face Recognition"
(paper 000 of the project's papers), Section III:

1. the un-normalised average descriptor of each template (`template_means`);
2. + 3. the binary mask of the m most active bins of that average
      (`activation_masks`; `random_masks` is the random control of Table I);
4. the masked descriptors, Eq. 1 (`mask_descriptors`);

and the two ways the paper matches templates:

* (i) descriptors (original or masked) with the *min-mean* cosine distance
    criterion, without PCA (`min_mean_distance`);
* (ii) one binary mask per template, compared by cosine distance
    (`mask_distance`, Table II).

Layout. A batch of templates is a flat `descriptors` array `[n, k]` plus
`template_ids` `[n]` (integers in `0 .. T-1`, every id used at least once), so
that tens of thousands of templates are handled without a Python loop over
templates.

Validation. Every public function checks shapes and dtypes and raises a
`ValueError` naming the argument. Checks that need array *values* (ids in range,
every template present, finite descriptors) run when the arrays are concrete;
when a function is traced under `jax.jit` only the shape/dtype checks can run.
`min_mean_distance` plans its blocks from the ids on the host and cannot be
traced.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_HIGHEST = lax.Precision.HIGHEST


# --------------------------------------------------------------------------- #
# input validation (host side)
# --------------------------------------------------------------------------- #
def _is_concrete(x: Any) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _int_in_range(value: Any, name: str, low: int = 1, high: int | None = None) -> int:
  """`value` as an int in `[low, high]` (no upper bound if None)."""
  expected = f"an integer in [{low}, {high}]" if high else f"an integer >= {low}"
  if isinstance(value, bool):
    raise ValueError(f"{name} must be {expected}, got {value!r}")
  try:
    value = operator.index(value)
  except TypeError:
    raise ValueError(f"{name} must be {expected}, got {value!r}") from None
  if value < low or (high is not None and value > high):
    raise ValueError(f"{name} must be {expected}, got {value}")
  return value


def _check_descriptors(descriptors: Any, name: str) -> None:
  shape, dtype = jnp.shape(descriptors), jnp.result_type(descriptors)
  if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
    raise ValueError(f"{name} must have shape [n, k] with n, k >= 1, got shape {shape}")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{name} must be a floating-point array, got {dtype}")
  if _is_concrete(descriptors) and not bool(jnp.all(jnp.isfinite(descriptors))):
    raise ValueError(f"{name} must be finite (found NaN or inf)")


def _check_templates(
  descriptors: Any,
  template_ids: Any,
  num_templates: Any,
  *,
  names: tuple[str, str, str] = ("descriptors", "template_ids", "num_templates"),
  require_all: bool = True,
) -> int:
  """Validates one template batch; returns `num_templates` as an int.

  Args:
      descriptors: `[n, k]` floating, finite.
      template_ids: `[n]` integers in `[0, num_templates)`.
      num_templates: positive int T.
      names: the caller's names of the three arguments, for error messages.
      require_all: also require that every id in `0 .. T-1` has a descriptor.
  """
  d_name, i_name, t_name = names
  num_templates = _int_in_range(num_templates, t_name)
  _check_descriptors(descriptors, d_name)
  shape, dtype = jnp.shape(template_ids), jnp.result_type(template_ids)
  if len(shape) != 1:
    raise ValueError(f"{i_name} must have shape [n], got shape {shape}")
  if not jnp.issubdtype(dtype, jnp.integer):
    raise ValueError(f"{i_name} must be an integer array, got {dtype}")
  n = jnp.shape(descriptors)[0]
  if shape[0] != n:
    raise ValueError(f"{i_name} must have one id per row of {d_name} ({n}), got {shape[0]}")
  if _is_concrete(template_ids):
    ids = np.asarray(template_ids)
    if ids.min() < 0 or ids.max() >= num_templates:
      raise ValueError(
        f"{i_name} must lie in [0, {t_name}={num_templates}), "
        f"got values in [{ids.min()}, {ids.max()}]"
      )
    if require_all:
      empty = np.flatnonzero(np.bincount(ids, minlength=num_templates) == 0)
      if empty.size:
        raise ValueError(
          f"{i_name} must contain every template id in [0, {num_templates})"
          f"; {empty.size} have no descriptors (first: {empty[0]})"
        )
  return num_templates


def _check_masks(masks: Any, name: str) -> None:
  shape, dtype = jnp.shape(masks), jnp.result_type(masks)
  if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
    raise ValueError(f"{name} must have shape [T, k] with T, k >= 1, got shape {shape}")
  if dtype != jnp.bool_:
    raise ValueError(f"{name} must be a bool array, got {dtype}")


# --------------------------------------------------------------------------- #
# steps 1-4 of Section III
# --------------------------------------------------------------------------- #
@functools.partial(jax.jit, static_argnums=2)
def _template_means(
  descriptors: jax.Array, template_ids: jax.Array, num_templates: int
) -> jax.Array:
  sums = jax.ops.segment_sum(descriptors, template_ids, num_templates)
  counts = jax.ops.segment_sum(
    jnp.ones(template_ids.shape, descriptors.dtype), template_ids, num_templates
  )
  return sums / counts[:, None]


def template_means(
  descriptors: jax.Array, template_ids: jax.Array, num_templates: int
) -> jax.Array:
  """Un-normalised average descriptor of each template (step 1, Section III).

  The descriptors are averaged as they are, not L2-normalised first: the paper
  relies on low-norm (ambiguous) images weighing less in the average.

  Args:
      descriptors: `[n, k]` float, the descriptors of all templates.
      template_ids: `[n]` int in `[0, T)`, the template of each descriptor; every
          template has at least one descriptor.
      num_templates: T.

  Returns:
      `[T, k]` float, row t = mean of the descriptors with id t.
  """
  num_templates = _check_templates(descriptors, template_ids, num_templates)
  return _template_means(jnp.asarray(descriptors), jnp.asarray(template_ids), num_templates)


def _top_bins(values: jax.Array, m: int) -> jax.Array:
  """Bool `[T, k]` marking the m largest entries of each row of `values`.

  `lax.top_k` is stable: among equal values the lower index wins.
  """
  _, idx = lax.top_k(values, m)
  rows = jnp.arange(values.shape[0])[:, None]
  return jnp.zeros(values.shape, jnp.bool_).at[rows, idx].set(True)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _activation_masks(
  descriptors: jax.Array, template_ids: jax.Array, num_templates: int, m: int
) -> jax.Array:
  return _top_bins(_template_means(descriptors, template_ids, num_templates), m)


def activation_masks(
  descriptors: jax.Array, template_ids: jax.Array, num_templates: int, m: int
) -> jax.Array:
  """Binary mask M of the m most active bins of each template (steps 2-3).

  "Most active" = largest value of the un-normalised template mean (the paper's
  descriptors are post-ReLU, so this is also the largest magnitude there).
  Ties are broken deterministically: among equal values the lower bin index is
  selected first.

  Args:
      descriptors: `[n, k]` float.
      template_ids: `[n]` int in `[0, T)`, every template present.
      num_templates: T.
      m: number of bins kept, `1 <= m <= k`.

  Returns:
      `[T, k]` bool with exactly m True entries per row.
  """
  num_templates = _check_templates(descriptors, template_ids, num_templates)
  m = _int_in_range(m, "m", 1, jnp.shape(descriptors)[1])
  return _activation_masks(jnp.asarray(descriptors), jnp.asarray(template_ids), num_templates, m)


@jax.jit
def _mask_descriptors(
  descriptors: jax.Array, template_ids: jax.Array, masks: jax.Array
) -> jax.Array:
  return jnp.where(masks[template_ids], descriptors, 0)


def mask_descriptors(
  descriptors: jax.Array, template_ids: jax.Array, masks: jax.Array
) -> jax.Array:
  """Keeps only the bins of each descriptor that its template's mask selects.

  Eq. 1: d̂_i = d_i ∧ M, i.e. every bin outside the m selected bins of the
  descriptor's template is set to zero; the selected bins keep their value.

  Args:
      descriptors: `[n, k]` float.
      template_ids: `[n]` int in `[0, T)`. Not every template needs descriptors
          here (masking a subset of a batch is fine).
      masks: `[T, k]` bool, e.g. from `activation_masks` or `random_masks`.

  Returns:
      `[n, k]` float, same dtype as `descriptors`.
  """
  _check_masks(masks, "masks")
  num_templates, k = jnp.shape(masks)
  _check_templates(
    descriptors,
    template_ids,
    num_templates,
    names=("descriptors", "template_ids", "masks.shape[0]"),
    require_all=False,
  )
  if jnp.shape(descriptors)[1] != k:
    raise ValueError(
      f"masks must have k={jnp.shape(descriptors)[1]} columns like descriptors, got {k}"
    )
  return _mask_descriptors(jnp.asarray(descriptors), jnp.asarray(template_ids), jnp.asarray(masks))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _random_masks(key: jax.Array, num_templates: int, k: int, m: int) -> jax.Array:
  return _top_bins(jax.random.uniform(key, (num_templates, k)), m)


def random_masks(key: jax.Array, num_templates: int, k: int, m: int) -> jax.Array:
  """Random-selection control of Table I: m bins per template chosen at random.

  Each row is an independent uniformly random m-subset of the k bins.

  Args:
      key: a `jax.random` key.
      num_templates: T.
      k: descriptor size.
      m: bins per mask, `1 <= m <= k`.

  Returns:
      `[T, k]` bool with exactly m True entries per row.
  """
  num_templates = _int_in_range(num_templates, "num_templates")
  k = _int_in_range(k, "k")
  m = _int_in_range(m, "m", 1, k)
  return _random_masks(key, num_templates, k, m)


# --------------------------------------------------------------------------- #
# matching
# --------------------------------------------------------------------------- #
def _unit_rows(x: jax.Array) -> jax.Array:
  """Rows scaled to unit L2 norm; all-zero rows stay zero (cosine 0 to all).

  Rows are first divided by their largest magnitude so that tiny (but
  non-zero) rows do not underflow when squared.
  """
  scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
  x = x / jnp.where(scale > 0, scale, 1)
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
  return x / jnp.where(norm > 0, norm, 1)


@jax.jit
def _mask_distance(masks_a: jax.Array, masks_b: jax.Array) -> jax.Array:
  a = masks_a.astype(jnp.float32)
  b = masks_b.astype(jnp.float32)
  overlap = lax.dot_general(a, b, (((1,), (1,)), ((), ())), precision=_HIGHEST)
  norms = jnp.sqrt(jnp.sum(a, 1))[:, None] * jnp.sqrt(jnp.sum(b, 1))[None, :]
  return 1 - overlap / jnp.where(norms > 0, norms, 1)


def mask_distance(masks_a: jax.Array, masks_b: jax.Array) -> jax.Array:
  """Cosine distance between binary template masks (Table II).

  d(M_a, M_b) = 1 - |M_a ∩ M_b| / sqrt(|M_a| |M_b|); for two masks of m bins
  each this is 1 - overlap / m. An empty mask has cosine 0 (distance 1) to
  every mask. Counts are exact in float32 for k < 2**24.

  Args:
      masks_a: `[num_a, k]` bool.
      masks_b: `[num_b, k]` bool.

  Returns:
      `[num_a, num_b]` float32 distances in [0, 1].
  """
  _check_masks(masks_a, "masks_a")
  _check_masks(masks_b, "masks_b")
  if jnp.shape(masks_a)[1] != jnp.shape(masks_b)[1]:
    raise ValueError(
      f"masks_b must have k={jnp.shape(masks_a)[1]} columns "
      f"like masks_a, got {jnp.shape(masks_b)[1]}"
    )
  return _mask_distance(jnp.asarray(masks_a), jnp.asarray(masks_b))


def _group_max(
  sim: jax.Array, local_ids: jax.Array, size: int | None, num_groups: int
) -> jax.Array:
  """Max over groups of consecutive rows of `sim` `[r, c]` -> `[num_groups, c]`.

  `size` given: all groups have `size` rows (a reshape, no scatter); otherwise
  `local_ids` `[r]` (sorted, in `[0, num_groups)`) names each row's group.
  Empty groups give -inf.
  """
  if size is not None:
    return sim.reshape(num_groups, size, -1).max(axis=1)
  return jax.ops.segment_max(sim, local_ids, num_groups, indices_are_sorted=True)


class _Side(NamedTuple):
  """Host-side plan for one side of `min_mean_distance` (static parts hashable).

  order: `[n + pad]` row order that sorts descriptors by template; the `pad`
      trailing entries repeat row 0 and are zeroed in the kernel.
  sorted_ids: `[n + pad]` int32 template ids in that order, `num` for padding.
  counts: `[num]` template sizes.
  rows: rows per block; `n + pad` is a multiple of it.
  size: the common template size, or None when sizes differ. With a common
      size `rows` is a multiple of it, so no template straddles two blocks.
  """

  order: np.ndarray
  sorted_ids: np.ndarray
  counts: np.ndarray
  rows: int
  size: int | None


def _plan_side(template_ids: np.ndarray, num_templates: int, block_size: int) -> _Side:
  counts = np.bincount(template_ids, minlength=num_templates)
  n = template_ids.shape[0]
  size = int(counts[0]) if counts.min() == counts.max() else None
  if size is None:
    rows = min(block_size, n)
  else:  # whole templates per block; one template if it exceeds block_size
    rows = min(max(block_size // size, 1) * size, n)
  pad = -n % rows
  order = np.argsort(template_ids, kind="stable")
  sorted_ids = np.concatenate([template_ids[order], np.full(pad, num_templates)]).astype(np.int32)
  order = np.concatenate([order, np.zeros(pad, order.dtype)])
  return _Side(order, sorted_ids, counts, rows, size)


def _sorted_unit_rows(
  descriptors: jax.Array, order: jax.Array, sorted_ids: jax.Array, num_templates: int
) -> jax.Array:
  """Float32 unit descriptors in `order`; padding rows (id T) are zero."""
  x = _unit_rows(descriptors[order].astype(jnp.float32))
  return jnp.where((sorted_ids < num_templates)[:, None], x, 0)


def _num_groups(shape: tuple[int, int | None]) -> int:
  """Most templates a block of `shape` = (rows, common size or None) covers."""
  rows, size = shape
  return rows // size if size else rows


def _tile_max(
  xa: jax.Array,
  ia: jax.Array,
  shape_a: tuple[int, int | None],
  xb: jax.Array,
  ib: jax.Array,
  shape_b: tuple[int, int | None],
  best: jax.Array,
) -> jax.Array:
  """Folds the max cosines of one block pair into `best` (running max).

  `xa` `[rows_a, k]` unit rows with sorted ids `ia`; `shape_a` = (rows_a,
  common template size or None); same for b. A block whose first row belongs
  to template t covers at most `_num_groups` templates t, t+1, ... (every
  template has >= 1 row), so its tile of results lands at `best[t_a:, t_b:]`.
  """
  sim = lax.dot_general(xa, xb, (((1,), (1,)), ((), ())), precision=_HIGHEST)
  tile = _group_max(sim, ia - ia[0], shape_a[1], _num_groups(shape_a))
  tile = _group_max(tile.T, ib - ib[0], shape_b[1], _num_groups(shape_b)).T
  old = lax.dynamic_slice(best, (ia[0], ib[0]), tile.shape)
  return lax.dynamic_update_slice(best, jnp.maximum(old, tile), (ia[0], ib[0]))


def _group_sum(x: jax.Array, sorted_ids: jax.Array, size: int | None, num_groups: int) -> jax.Array:
  """Per-template sums `[num_groups, k]` of rows `x` sorted by template.

  Rows with id `num_groups` (padding, at the end) are left out.
  """
  if size is not None:
    return x.reshape(-1, size, x.shape[1]).sum(axis=1)[:num_groups]
  return jax.ops.segment_sum(x, sorted_ids, num_groups + 1, indices_are_sorted=True)[:num_groups]


@functools.partial(jax.jit, static_argnames=("num_a", "num_b", "shape_a", "shape_b"))
def _min_mean_kernel(
  desc_a: jax.Array,
  order_a: jax.Array,
  ids_a: jax.Array,
  count_a: jax.Array,
  desc_b: jax.Array,
  order_b: jax.Array,
  ids_b: jax.Array,
  count_b: jax.Array,
  *,
  num_a: int,
  num_b: int,
  shape_a: tuple[int, int | None],
  shape_b: tuple[int, int | None],
) -> jax.Array:
  """Min-mean distances; `order_*`, `ids_*`, `shape_*` come from `_Side`.

  `shape_*` = (rows per block, common template size or None).
  """
  xa = _sorted_unit_rows(desc_a, order_a, ids_a, num_a)
  xb = _sorted_unit_rows(desc_b, order_b, ids_b, num_b)
  rows_a, rows_b = shape_a[0], shape_b[0]
  best = jnp.full(
    (num_a + _num_groups(shape_a), num_b + _num_groups(shape_b)), -jnp.inf, jnp.float32
  )

  def row_block(i, best):
    blk_a = lax.dynamic_slice_in_dim(xa, i * rows_a, rows_a)
    blk_ia = lax.dynamic_slice_in_dim(ids_a, i * rows_a, rows_a)

    def col_block(j, best):
      blk_b = lax.dynamic_slice_in_dim(xb, j * rows_b, rows_b)
      blk_ib = lax.dynamic_slice_in_dim(ids_b, j * rows_b, rows_b)
      return _tile_max(blk_a, blk_ia, shape_a, blk_b, blk_ib, shape_b, best)

    return lax.fori_loop(0, xb.shape[0] // rows_b, col_block, best)

  best = lax.fori_loop(0, xa.shape[0] // rows_a, row_block, best)
  max_cos = best[:num_a, :num_b]
  # mean_{i,j} cos(x_i, y_j) = <sum_i x̂_i, sum_j ŷ_j> / (n_a n_b).
  sum_a = _group_sum(xa, ids_a, shape_a[1], num_a)
  sum_b = _group_sum(xb, ids_b, shape_b[1], num_b)
  mean_cos = lax.dot_general(sum_a, sum_b, (((1,), (1,)), ((), ())), precision=_HIGHEST)
  mean_cos = mean_cos / (count_a[:, None] * count_b[None, :])
  return (1 - max_cos) + (1 - mean_cos)


def min_mean_distance(
  desc_a: jax.Array,
  ids_a: jax.Array,
  num_a: int,
  desc_b: jax.Array,
  ids_b: jax.Array,
  num_b: int,
  *,
  block_size: int = 1024,
) -> jax.Array:
  """Min-mean cosine distance between every pair of templates (Section III).

  The criterion of the paper (its ref. [26], without PCA) sums the minimum and
  the average of the image-to-image cosine distances between two templates:

      d(A, B) = min_{i,j} (1 - cos(x_i, y_j)) + mean_{i,j} (1 - cos(x_i, y_j))
              = 2 - max_{i,j} cos(x_i, y_j) - <sum_i x̂_i, sum_j ŷ_j> / (n_A n_B)

  with x̂ = x / ||x||. A zero descriptor (e.g. one whose non-zero bins were all
  masked away) has cosine 0, i.e. distance 1, to every descriptor.

  Computation: descriptors are sorted by template; image similarities are
  `[rows, k] x [k, rows]` matrix products over blocks of `block_size` rows of
  each side, reduced inside the block to per-template-pair maxima (a reshape
  when all templates of a side have one size, a sorted segment max otherwise;
  templates that straddle blocks are combined by a running max). Memory is
  O(block_size**2 + k (n_a + n_b) + num_a num_b), never O(n_a n_b). The mean
  term needs only per-template sums of unit descriptors. Computed in float32.
  The blocks are planned from the ids on the host, so the arguments must be
  concrete (the function cannot be traced by `jax.jit`).

  Args:
      desc_a: `[n_a, k]` float, descriptors of the first set of templates.
      ids_a: `[n_a]` int in `[0, num_a)`, every template present.
      num_a: number of templates in the first set.
      desc_b: `[n_b, k]` float, descriptors of the second set.
      ids_b: `[n_b]` int in `[0, num_b)`, every template present.
      num_b: number of templates in the second set.
      block_size: rows of each side per block (rounded down to whole templates
          when all templates of a side have one size, but at least one
          template).

  Returns:
      `[num_a, num_b]` float32 distances in [0, 4] (lower = more similar).
  """
  args, kwargs = _min_mean_args(desc_a, ids_a, num_a, desc_b, ids_b, num_b, block_size=block_size)
  return _min_mean_kernel(*args, **kwargs)


def _min_mean_args(
  desc_a: Any, ids_a: Any, num_a: Any, desc_b: Any, ids_b: Any, num_b: Any, *, block_size: Any
) -> tuple[tuple, dict]:
  """Validates `min_mean_distance`'s inputs; returns `_min_mean_kernel` args."""
  for x, name in ((desc_a, "desc_a"), (ids_a, "ids_a"), (desc_b, "desc_b"), (ids_b, "ids_b")):
    if not _is_concrete(x):
      raise ValueError(
        f"{name} must be a concrete array: min_mean_distance "
        "plans its blocks on the host and cannot be traced"
      )
  num_a = _check_templates(desc_a, ids_a, num_a, names=("desc_a", "ids_a", "num_a"))
  num_b = _check_templates(desc_b, ids_b, num_b, names=("desc_b", "ids_b", "num_b"))
  if jnp.shape(desc_a)[1] != jnp.shape(desc_b)[1]:
    raise ValueError(
      f"desc_b must have k={jnp.shape(desc_a)[1]} columns like desc_a, got {jnp.shape(desc_b)[1]}"
    )
  block_size = _int_in_range(block_size, "block_size")
  a = _plan_side(np.asarray(ids_a), num_a, block_size)
  b = _plan_side(np.asarray(ids_b), num_b, block_size)
  args = (
    jnp.asarray(desc_a),
    a.order,
    a.sorted_ids,
    a.counts.astype(np.float32),
    jnp.asarray(desc_b),
    b.order,
    b.sorted_ids,
    b.counts.astype(np.float32),
  )
  kwargs = dict(num_a=num_a, num_b=num_b, shape_a=(a.rows, a.size), shape_b=(b.rows, b.size))
  return args, kwargs


def similarity_from_distance(distance: jax.Array) -> jax.Array:
  """Score for the evaluation protocols, where higher means more similar.

  Args:
      distance: any shape, e.g. `[num_a, num_b]` from `min_mean_distance` or
          `mask_distance`.

  Returns:
      `-distance`, same shape.
  """
  return -jnp.asarray(distance)
