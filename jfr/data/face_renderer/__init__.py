"""Procedural face world: identity latents, nuisances and a vectorised NumPy renderer.

This package is the image source of the embedded ``synthetic_faces`` data set that every
jfr method trains and is evaluated on. It holds no paper equation; it builds the data
the papers need: identities (face recognition, all papers), identity attributes (the ten
"identity facial attributes" of Taherkhani et al., Sec. 5), landmarks and part
segmentation (semantic occlusion for the explainability papers), natural occluders
(eyeglasses, scarf) and video clips with drifting pose and motion blur (FAN).

Model (2.5D, all coordinates in "face units": x to the image right, y down, z toward
the camera; the cheeks are about 0.8 units from the midline, the eyes at y ~ -0.15,
the chin at y ~ 1):

* Head, neck, nose, ears, hair shell and scarf are *lofts*: at every height y the
  horizontal cross-section is an ellipse with centre (x0(y), z0(y)) and half-axes
  (a(y), c(y)). Yaw is a true rotation about the vertical axis and the projection is
  orthographic (weak perspective), so every pixel's viewing ray stays at constant y
  and meets a loft in closed form (one quadratic per pixel). The far side of the face
  therefore compresses, the nose shifts and can hide the far eye, the near ear shows.
* Eyes, brows, lips, mouth opening, nostrils, wrinkles, beard shadow, freckles and
  moles are painted onto the surface as signed-distance "decals" in face (x, y)
  coordinates of the visible 3D point, so they foreshorten with the surface.
* Shading: deferred; layers composite albedo and analytic loft normals into one
  buffer (back to front: hair interior, neck/shoulders, head, ears, nose, hair, then
  occluders), which is lit once with wrapped Lambert + a little specular, light
  direction and colour per image. Eyeglasses are a plane in front of the eyes plus two
  3D arms (depth-tested); the scarf is a loft around the lower face and neck.
* Every layer and decal is evaluated only on the pixels of its bounding region (flat
  pixel subsets), so the cost follows the covered area, not the image area.
* Antialiasing comes from signed distances (coverage = clamp(0.5 - d / pixel)), so no
  supersampling is needed; the background is rendered at 32x32 and upsampled.
* After shading: defocus (Gaussian) and linear motion blur (one FFT per image),
  Gaussian sensor noise, quantisation to uint8.
* Pitch is not modelled (it would break the constant-y rays); roll, scale and
  translation are 2D similarity transforms after the projection.

Conventions of the outputs of :func:`render`:

* ``landmarks``: float32 ``[n, 68, 2]``, (x, y) in pixels, the centre of pixel
  (row r, column c) is at (x=c, y=r); iBUG-68 order (0-16 jaw from the subject's right
  ear, i.e. image left for a frontal face, 17-21 right brow, 22-26 left brow, 27-35
  nose, 36-41 right eye, 42-47 left eye, 48-67 mouth). Jaw points lie on the visible
  head outline at fixed heights; the others are projected 3D surface points (a point
  hidden by the nose under strong yaw is still given at its projected position).
* ``segmentation``: uint8 ``[n, H, W]`` ids into :data:`PART_NAMES`. It is the parsing
  of the face *without occluders* (amodal): eyes behind sunglasses stay ``eyes``.
  Ears and neck are ``skin``. The visible parsing is
  ``np.where(occluder_mask, <occluder>, segmentation)``.
* ``occluder_mask``: bool ``[n, H, W]``, pixels covered by eyeglasses (frames, lenses,
  arms) or the scarf.

Nuisance fields (all with leading dimension n; see :func:`sample_nuisances`):
``yaw`` ``roll`` (degrees), ``scale``, ``shift`` [n, 2] (fraction of image size),
``light_azimuth`` ``light_elevation`` (degrees), ``light_strength``, ``ambient``,
``light_color`` [n, 3], ``smile`` ``mouth_open`` ``eye_open`` (0..1),
``background_seed`` ``noise_seed`` (uint32), ``noise_std`` (0..1 intensity units),
``defocus_sigma`` ``motion_blur`` (pixels of a 112-px image, scaled to the output
size), ``motion_angle`` (degrees), ``occluder`` (int8 index into
:data:`OCCLUDER_KINDS`), ``glasses_tint`` ``glasses_shape`` (0..1), ``glasses_color``
``scarf_color`` [n, 3], ``scarf_top`` (face-y of the scarf's upper edge),
``scarf_pattern`` (0 plain, else stripe frequency), ``clothing_color`` [n, 3].

The canonical frontal template (:func:`frontal_landmarks`) is the landmark set of
:func:`mean_latents` rendered with :func:`neutral_nuisances` (zero yaw/roll, scale 1,
centred, neutral expression): the mean identity's face centred with face-y 0.12 at the
image centre and 0.40 * image_size pixels per face unit.

Package layout (one responsibility per module; this package re-exports the public names):
:mod:`~jfr.data.face_renderer.constants` (names, scale), :mod:`~.latents` (identity
latents and attributes), :mod:`~.nuisances` (stills and video clips),
:mod:`~.geometry` (face layout, loft profiles, ray / loft intersection),
:mod:`~.albedo` (palettes and painted decals), :mod:`~.layers` (hair, neck, head, ears,
nose), :mod:`~.accessories` (eyeglasses, scarf), :mod:`~.landmarks` (iBUG-68, frontal
template), :mod:`~.compositing` (buffers, shading, background, blur, noise, :func:`render`),
:mod:`~.canonical` (each identity's canonical face, :func:`canonical_face`, for evaluation).
"""

from jfr.data.face_renderer.canonical import (
  FACE_REGION_PARTS,
  canonical_face,
  canonical_nuisances,
  clip_framing,
  image_framing,
)
from jfr.data.face_renderer.compositing import render
from jfr.data.face_renderer.constants import (
  ATTRIBUTE_NAMES,
  IDENTITY_ATTRIBUTES,
  NUM_LANDMARKS,
  NUM_MARKS,
  OCCLUDER_KINDS,
  PART_NAMES,
)
from jfr.data.face_renderer.landmarks import frontal_landmarks
from jfr.data.face_renderer.latents import identity_attributes, identity_latents, mean_latents
from jfr.data.face_renderer.nuisances import neutral_nuisances, sample_nuisances, video_nuisances

__all__ = [
  "ATTRIBUTE_NAMES",
  "FACE_REGION_PARTS",
  "IDENTITY_ATTRIBUTES",
  "NUM_LANDMARKS",
  "NUM_MARKS",
  "OCCLUDER_KINDS",
  "PART_NAMES",
  "canonical_face",
  "canonical_nuisances",
  "clip_framing",
  "frontal_landmarks",
  "identity_attributes",
  "identity_latents",
  "image_framing",
  "mean_latents",
  "neutral_nuisances",
  "render",
  "sample_nuisances",
  "video_nuisances",
]
