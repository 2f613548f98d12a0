"""Real-data adapters: real face data sets as the features of ``synthetic_faces``.

* :mod:`~jfr.data.adapters.common` -- the feature dict, sentinels for missing ground
  truth (label -1, attributes False, landmarks NaN, segmentation 255, occluder mask
  False; flagged in :class:`AdapterInfo` and logged), image-file validation.
* :mod:`~jfr.data.adapters.celeb_a` -- CelebA via tfds ``celeb_a`` or the original files.
* :mod:`~jfr.data.adapters.image_folder` -- ``root/<identity>/<image>`` (CASIA-WebFace,
  MS1M exports, VGGFace2).
* :mod:`~jfr.data.adapters.video_folder` -- ``root/<identity>/<video>/<frame>`` (YouTube
  Faces, VoxCeleb frame dumps).
* :mod:`~jfr.data.adapters.ijb` -- IJB-A/B/C template metadata, verification pairs and
  1:N gallery/probe lists.

Every dataset function returns ``(tf.data.Dataset, AdapterInfo)``.
"""

from jfr.data.adapters.celeb_a import (
  CELEB_A_ATTRIBUTE_NAMES,
  celeb_a_dataset,
  celeb_a_example_to_features,
  celeb_a_folder_dataset,
  read_celeb_a_attributes,
  read_celeb_a_identities,
  read_celeb_a_partition,
)
from jfr.data.adapters.common import (
  JFR_ATTRIBUTE_NAMES,
  NO_LABEL,
  SEGMENTATION_UNKNOWN,
  AdapterInfo,
)
from jfr.data.adapters.ijb import (
  SearchProtocol,
  TemplateMetadata,
  TemplatePairs,
  pair_labels,
  read_search_protocol,
  read_template_metadata,
  read_template_metadata_splits,
  read_template_pairs,
)
from jfr.data.adapters.image_folder import (
  ImageFolderIndex,
  image_folder_dataset,
  index_image_folder,
)
from jfr.data.adapters.video_folder import (
  VideoFolderIndex,
  index_video_folder,
  video_folder_dataset,
)
