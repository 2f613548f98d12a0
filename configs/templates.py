r"""Identity-specific activation patterns (Ferrari, Berretti, Del Bimbo): Tables I and II.

  python -m jfr.main --config=configs/templates.py --workdir=/tmp/jfr_templates
  python -m jfr.main --config=configs/templates.py --workdir=... --mode=eval  # reuse backbone
  python -m jfr.main --config=configs/templates.py:tiny ...   # seconds; for tests
  python -m jfr.main --config=configs/templates.py:paper --workdir=... --mode=npy \
      --config.descriptors.npy_path=vggface_fc7.npy \
      --config.descriptors.keys_path=vggface_fc7_files.csv --config.ijba.root=/data/IJB-A

Mode ``all`` trains the descriptor network (a ResNet, :mod:`jfr.methods.recognition.trainer`, in
``<workdir>/backbone``; resumed if interrupted, skipped if finished), extracts
descriptors of the test identities' stills and video frames, arranges them into
IJB-A-like splits and prints both tables. Mode ``npy`` runs the same tables on a user's
descriptors with the real IJB-A split files.

Fields beyond the recognition blocks (see :mod:`jfr.methods.templates`):

* ``dataset.video_split``: the split with the test identities' video frames (``test_split``
  has their stills).
* ``descriptors.kind``: which activations are the descriptors ``d in R^k``:
  ``'conv_flat'`` (the flattened last conv map, post-ReLU, k = h w c), ``'conv_gap'``
  (its global average, post-ReLU, k = c) or ``'embedding'`` (the trained embedding,
  signed after the final BatchNorm). ``descriptors.batch_size``: extraction batch.
  ``descriptors.npy_path`` / ``keys_path``: mode ``npy``'s descriptors ``[n, k]`` and the
  CSV (``FILENAME[,SUBJECT_ID]``) naming the image of each row.
  ``descriptors.workdir``: take the network of that recognition run (e.g. an IResNet converted
  by ``jfr.convert``; nothing is trained, faces are resized to its input size);
  ``descriptors.layer``: the activations of that Flax module path (``''``: the last conv map;
  an IResNet r18's ``layer4_1``, ``layer4_1/prelu``, ``bn2`` ...); ``descriptors.rectify``:
  ``max(0, a)`` first (an IResNet's last conv map is signed: no activation follows its last
  block). ``:pretrained112`` sets these for a 112 px converted IResNet
  (``--config.descriptors.workdir=RUN``).
* ``protocol``: synthetic IJB-A-like splits (``num_splits``, ``seed``,
  ``out_of_gallery_fraction``, ``probe_templates_per_subject``,
  ``verify_templates_per_subject``, ``verify_subjects``, ``frames_per_video``; see
  :func:`jfr.eval.ijb.synthetic_splits`) and the operating points (``fpirs``,
  ``identification_fars``, ``ranks``, ``verification_fars``).
* ``ijba``: mode ``npy``'s split files: ``root`` joined with the four path patterns
  (``{split}`` is replaced by each entry of ``splits``).
* ``experiment``: ``masked_ms`` (Table I; clipped to k), ``binary_ms`` (Table II; clipped
  to k), ``random_seed`` (random masks), ``block_size`` (rows per block of the min-mean
  matcher), ``plot_metrics`` (one accuracy-vs-m PNG each).
"""

import ml_collections

from jfr.train import config_blocks as blocks

VARIANTS = ("default", "paper", "tiny", "pretrained112")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "default"
  if variant not in VARIANTS:
    raise ValueError(f"configs/templates.py: unknown variant {variant!r}; known: {VARIANTS}")
  config = ml_collections.ConfigDict()
  config.method = "templates"
  # The descriptor network. The paper uses VGG-Face, a plain softmax (cross-entropy)
  # identity classifier, whose post-ReLU fc7 activations are the descriptors.
  blocks.engine(
    config, num_train_steps=700, batch_size=32, log_every_steps=100, checkpoint_every_steps=350
  )
  config.dataset = blocks.dataset("synthetic_faces/small")
  config.dataset.video_split = "video"
  # 64 px -> a 4x4x96 last conv map: 'conv_flat' descriptors have k = 1536 > 1024, the
  # largest m of Table I (12 filters: ~4x cheaper to train on a CPU than 16).
  config.model = blocks.resnet((1, 1, 1, 1), num_filters=12, embedding_dim=128)
  config.head = ml_collections.ConfigDict(dict(kind="softmax", scale=32.0, margin=0.3))
  config.optimizer = blocks.optimizer_config(
    "sgd", 0.1, schedule="cosine", warmup_steps=50, weight_decay=5e-4
  )
  config.augment = blocks.augment()
  config.descriptors = ml_collections.ConfigDict(
    dict(
      kind="conv_flat",
      batch_size=256,
      npy_path="",
      keys_path="",
      # A recognition run whose network gives the descriptors instead of training one here
      # (a jfr.convert run, a baseline run or a FAN run's extractor).
      workdir=ml_collections.FieldReference(None, field_type=str),
      layer="",  # Flax module path of the activations ('' = the last conv map)
      rectify=False,  # max(0, a) before the reduction (IResNet maps are signed)
    )
  )
  config.protocol = ml_collections.ConfigDict(
    dict(
      num_splits=10,
      seed=0,
      out_of_gallery_fraction=1 / 3,
      probe_templates_per_subject=4,
      verify_templates_per_subject=4,
      verify_subjects=ml_collections.FieldReference(40, field_type=int),
      frames_per_video=ml_collections.FieldReference(4, field_type=int),
      fpirs=(0.1, 0.01),
      identification_fars=(1e-4, 1e-5),
      ranks=(1, 10),
      verification_fars=(0.1, 0.01, 0.001),
    )
  )
  config.ijba = ml_collections.ConfigDict(
    dict(
      root="",
      search_gallery="IJB-A_1N_sets/split{split}/search_gallery_{split}.csv",
      search_probe="IJB-A_1N_sets/split{split}/search_probe_{split}.csv",
      verify_metadata="IJB-A_11_sets/split{split}/verify_metadata_{split}.csv",
      verify_comparisons="IJB-A_11_sets/split{split}/verify_comparisons_{split}.csv",
      splits=tuple(range(1, 11)),
    )
  )
  config.experiment = ml_collections.ConfigDict(
    dict(
      masked_ms=(50, 150, 250, 500, 1024),
      binary_ms=(150, 250, 500),
      random_seed=0,
      block_size=1024,
      plot_metrics=("TPIR@FPIR=0.1", "Rank-1", "1:1 TAR@FAR=0.01"),
    )
  )
  if variant == "tiny":  # seconds; for tests
    config.dataset.name = "synthetic_faces/tiny"
    config.num_train_steps = 4
    config.batch_size = 8
    config.log_every_steps = 2
    config.checkpoint_every_steps = 2
    # 32 px -> a 2x2x32 last map: conv_flat gives k = 128.
    config.model = blocks.resnet((1, 1, 1, 1), num_filters=4, embedding_dim=16)
    config.descriptors.batch_size = 32
    config.protocol.num_splits = 3
    config.protocol.probe_templates_per_subject = 2
    config.protocol.verify_subjects = None
    config.protocol.frames_per_video = None
    config.experiment.masked_ms = (8, 16, 32, 200)
    config.experiment.binary_ms = (16, 32)
    config.experiment.block_size = 64
  elif variant == "paper":
    # IJB-A with the paper's descriptors (VGG-Face fc7, k = 4096) in mode npy; mode all
    # trains a ResNet-50 on the 112 px synthetic faces (GPU) and takes its post-ReLU
    # global-average conv descriptor (k = 2048).
    config.dataset.name = "synthetic_faces/default"
    config.model = blocks.resnet(
      (3, 4, 6, 3), num_filters=64, embedding_dim=512, block="bottleneck"
    )
    config.batch_size = 256
    config.num_train_steps = 40_000
    config.checkpoint_every_steps = 2000
    config.descriptors.kind = "conv_gap"
    config.protocol.verify_subjects = None
    config.protocol.frames_per_video = None
    config.experiment.block_size = 4096
  elif variant == "pretrained112":
    # A converted 112 px IResNet (--config.descriptors.workdir=RUN, required): the
    # descriptors are its last conv map (the last block's output, 7x7x512 for released
    # models) averaged over positions after max(0, .) (k = 512), the closest reading of
    # the paper's post-ReLU fc7; see README "Use a pretrained recognizer".
    config.dataset.name = "synthetic_faces/default"
    config.num_train_steps = 0
    config.descriptors.kind = "conv_gap"
    config.descriptors.rectify = True
    config.protocol.verify_subjects = None
    config.protocol.frames_per_video = None
    config.experiment.masked_ms = (50, 150, 250, 500)
    config.experiment.binary_ms = (150, 250, 500)
  return config
