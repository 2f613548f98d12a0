"""Data augmentation ops for tf.data pipelines (pure TensorFlow, NumPy-friendly).

What lives here:

* Photometric/geometric training augmentation of the FAN paper (Hörmann et al., ICIP
  2021, Sec. 4.1: "left-right flipping, random contrast, brightness and saturation, and
  motion blur with a filter kernel size of up to 9 pixels with a probability of 50 %"):
  :func:`random_flip`, :func:`color_jitter`, :func:`motion_blur`, and the deterministic
  :func:`motion_blur_kernel` / :func:`apply_motion_blur` used for the FAN robustness table
  (Table 4, kernel sizes 7...17); plus :func:`gaussian_blur`.
* The warped synthetic occlusion of the interpretable-FR paper (Yin et al., ICCV 2019,
  Sec. 3.3 and Fig. 3; BlaS / GauD of Table 2): a rectangle placed on the frontal template
  face, its vertices expressed in barycentric coordinates of the template's landmark
  triangle mesh and mapped through the same coordinates to every face of a batch, so that
  one batch carries one *semantically equivalent* occluder whatever each face's pose:
  :func:`sample_occlusion_rectangle`, :func:`warp_rectangle_to_faces`,
  :func:`occlusion_masks`, :func:`apply_occlusion` and the all-in-one :func:`occlude_batch`.

Conventions shared by every function:

* Randomness: every random op takes an explicit stateless seed, an int32/int64 tensor of
  shape ``[2]`` (``tf.random.stateless_*``). Same seed -> same output, in eager mode and
  inside ``tf.data`` maps. Ops that draw several numbers split the seed with
  ``tf.random.experimental.stateless_split``.
* Images: ``uint8`` in [0, 255] (the dataset dtype) or floating point in [-1, 1] (the
  model range of the conventions). The output has the input's dtype; uint8 results are
  rounded and clipped. NumPy arrays are accepted; results are ``tf.Tensor``.
* Pixel coordinates: ``x`` (column) then ``y`` (row), in pixels, with the *centre* of
  pixel ``(row r, column c)`` at ``(x, y) = (c, r)`` (integer pixel centres). Hence a
  left-right flip maps ``x -> W - 1 - x``, and occlusion masks test pixel centres.
* Landmarks: 68 points in the iBUG / 300-W order (0-16 jaw, 17-26 brows, 27-35 nose,
  36-47 eyes, 48-67 mouth); "right eye" = the subject's right, on the image's left.

Modules (this package re-exports their public names): :mod:`~jfr.data.augment.flip`,
:mod:`~jfr.data.augment.color`, :mod:`~jfr.data.augment.blur`,
:mod:`~jfr.data.augment.occlusion` and :mod:`~jfr.data.augment.tensors` (shared checks).
"""

from jfr.data.augment.blur import apply_motion_blur, gaussian_blur, motion_blur, motion_blur_kernel
from jfr.data.augment.color import color_jitter
from jfr.data.augment.flip import (
  IBUG68_FLIP_PERMUTATION,
  flip_left_right,
  random_flip,
  random_flip_features,
)
from jfr.data.augment.occlusion import (
  DYNAMIC_OCCLUSION_RANGE,
  NOISE_FILL_MEAN,
  NOISE_FILL_STD,
  PAPER_TEMPLATE_SIZE,
  STATIC_OCCLUSION_SIZE,
  apply_occlusion,
  default_template_landmarks,
  occlude_batch,
  occlusion_masks,
  sample_occlusion_rectangle,
  warp_rectangle_to_faces,
)
from jfr.data.augment.tensors import ArrayLike, ImageSize
from jfr.data.face_mesh import locate_points_tf as barycentric_coordinates
from jfr.data.face_mesh import mesh_triangles

__all__ = [
  "ArrayLike",
  "DYNAMIC_OCCLUSION_RANGE",
  "IBUG68_FLIP_PERMUTATION",
  "ImageSize",
  "NOISE_FILL_MEAN",
  "NOISE_FILL_STD",
  "PAPER_TEMPLATE_SIZE",
  "STATIC_OCCLUSION_SIZE",
  "apply_motion_blur",
  "apply_occlusion",
  "barycentric_coordinates",
  "color_jitter",
  "default_template_landmarks",
  "flip_left_right",
  "gaussian_blur",
  "mesh_triangles",
  "motion_blur",
  "motion_blur_kernel",
  "occlude_batch",
  "occlusion_masks",
  "random_flip",
  "random_flip_features",
  "sample_occlusion_rectangle",
  "warp_rectangle_to_faces",
]
