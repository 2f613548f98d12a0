"""The FAN's stage-2 train step (Secs. 3.1-3.2): the generator on L_G (Eq. 5), the
discriminator on L_adv^D (Eq. 12), the identity centres by Eq. 10.

One step (:func:`make_train_step`): the generator is updated on L_G, then the discriminator
with the aggregated images held fixed (both gradients come from the same forward pass of the
aggregator, as in the usual alternating GAN step), then the identity centres move by Eq. 10
over the global batch (also under pmap). The state is
:func:`jfr.methods.fan.trainer.create_aggregator_state`'s.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax import lax

from jfr.losses import fan as fan_losses
from jfr.methods.fan.constants import VARIANTS
from jfr.train import state as state_lib
from jfr.train import steps


def _gather_replicas(tree: Any) -> Any:
  """All replicas' shares of a batch, concatenated (pmap); ``tree`` itself otherwise."""
  try:
    return jax.tree.map(lambda x: lax.all_gather(x, steps.BATCH_AXIS, tiled=True), tree)
  except NameError:  # the axis is unbound: jit or eager, one replica
    return tree


def make_train_step(config: ml_collections.ConfigDict, variant: str) -> steps.TrainStepFn:
  """The pure stage-2 step of ``variant`` (see the module docstring)."""
  if variant not in VARIANTS:
    raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
  terms = VARIANTS[variant]
  loss_cfg = config.loss

  def train_step(state: state_lib.TrainState, batch: dict, rng: jax.Array):
    del rng  # the step is deterministic; augmentation happens in the input pipeline
    frames, mask, labels = batch["frames"], batch["mask"], batch["label"]
    b, n = mask.shape

    def extract(images):
      return state.apply_fn["extractor"](state.frozen["extractor"], images, train=False)

    def discriminate(d_params, images):
      return state.apply_fn["discriminator"]({"params": d_params}, images)

    inputs = jnp.concatenate(
      [frames.reshape((b * n,) + frames.shape[2:]), batch["positive"], batch["negative"]]
    )
    feats = lax.stop_gradient(extract(inputs))
    f_inputs = feats[: b * n].reshape((b, n, -1))
    f_pos, f_neg = feats[b * n : b * n + b], feats[b * n + b :]
    centers = state.extras["centers"]

    def generator_objective(g_params):
      agg = state.apply_fn["generator"]({"params": g_params}, frames, mask)
      f_agg = extract(agg)
      dis = fan_losses.discriminative_loss(f_agg, f_pos, f_neg, f_inputs, mask, beta=loss_cfg.beta)
      if terms.reconstruction == "center":
        rec = fan_losses.reconstruction_loss_center(f_agg, centers, labels)
      else:
        rec = fan_losses.reconstruction_loss_avg(f_agg, f_inputs, mask)
      zero = jnp.zeros_like(dis)
      adv = (
        fan_losses.generator_adversarial_loss(discriminate(state.params["discriminator"], agg))
        if terms.adversarial
        else zero
      )
      tv = fan_losses.total_variation_loss(agg)
      total = fan_losses.generator_loss(
        dis,
        rec,
        adv,
        tv,
        lambda_dis=loss_cfg.lambda_dis,
        lambda_rec=loss_cfg.lambda_rec,
        lambda_adv=loss_cfg.lambda_adv if terms.adversarial else 0.0,
        lambda_tv=loss_cfg.lambda_tv if terms.total_variation else 0.0,
      )
      parts = {"dis": dis.mean(), "rec": rec.mean(), "adv": adv.mean(), "tv": tv.mean()}
      return total.mean(), (agg, parts)

    (g_loss, (agg, parts)), g_grads = jax.value_and_grad(generator_objective, has_aux=True)(
      state.params["generator"]
    )
    grads = {"generator": g_grads}
    metrics = {"loss_g": g_loss, **parts}
    loss = g_loss
    if terms.adversarial:
      fake = lax.stop_gradient(agg)

      def discriminator_objective(d_params):
        logits_fake = discriminate(d_params, fake)
        logits_real = discriminate(d_params, batch["positive"])
        d_loss = fan_losses.discriminator_loss(logits_fake, logits_real).mean()
        return d_loss, (jax.nn.sigmoid(logits_real).mean(), jax.nn.sigmoid(logits_fake).mean())

      (d_loss, (d_real, d_fake)), grads["discriminator"] = jax.value_and_grad(
        discriminator_objective, has_aux=True
      )(state.params["discriminator"])
      metrics.update(loss_d=d_loss, d_real=d_real, d_fake=d_fake)
      loss = loss + d_loss
    grads, metrics, loss = steps.cross_replica_mean((grads, metrics, loss))
    new_state = state_lib.apply_gradients(state, grads)
    all_labels, all_pos, all_inputs, all_mask = _gather_replicas((labels, f_pos, f_inputs, mask))
    new_centers = fan_losses.update_centers(
      centers, all_labels, all_pos, all_inputs, all_mask, rate=loss_cfg.center_rate
    )
    new_state = new_state.replace(extras={**state.extras, "centers": new_centers})
    state, nonfinite = state_lib.guarded_update(state, new_state, loss, grads)
    return state, {**metrics, "nonfinite": nonfinite}

  return train_step
