"""Reconstruction losses of Xu, Lu, Ebrahimi, "Discriminative Deep Feature Visualization for
Explainable Face Recognition" (Sec. III-C): the explanation flow rebuilds the input face
from the recognition network's last conv map, and both flows are trained on Eq. 2,
``L = L_id + lambda * L_rec``.

* :func:`reconstruction_loss`: ``L_rec`` per example, the mean squared error between a face
  and its reconstruction.
* :func:`joint_loss`: Eq. 2 per example.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def reconstruction_loss(images: jax.Array, reconstructions: jax.Array) -> jax.Array:
  """``L_rec`` of Eq. 2 per example: the MSE between a face and its reconstruction,
  ``L_rec[b] = (1 / (H W 3)) sum_{y, x, ch} (Recon(C)[b, y, x, ch] - I[b, y, x, ch])^2``.

  Args:
    images: ``[B, H, W, 3]`` input faces (model range [-1, 1]).
    reconstructions: ``[B, H, W, 3]`` decoder outputs.

  Returns:
    ``[B]`` float32 mean squared error over pixels and colours.
  """
  if images.shape != reconstructions.shape or images.ndim != 4:
    raise ValueError(
      f"reconstructions: expected the shape of images {images.shape} "
      f"[B, H, W, 3], got {reconstructions.shape}"
    )
  diff = reconstructions.astype(jnp.float32) - images.astype(jnp.float32)
  return jnp.mean(diff * diff, axis=(1, 2, 3))


def joint_loss(id_loss: jax.Array, rec_loss: jax.Array, rec_weight: float) -> jax.Array:
  """Eq. 2 per example: ``L[b] = L_id[b] + lambda * L_rec[b]``.

  Args:
    id_loss: ``[B]`` recognition loss (ArcFace in the paper).
    rec_loss: ``[B]`` :func:`reconstruction_loss`.
    rec_weight: ``lambda``, the trade-off weight (not given in the paper).

  Returns:
    ``[B]``.
  """
  if id_loss.shape != rec_loss.shape or id_loss.ndim != 1:
    raise ValueError(
      f"rec_loss: expected the shape of id_loss {id_loss.shape} [B], got {rec_loss.shape}"
    )
  return id_loss + rec_weight * rec_loss
