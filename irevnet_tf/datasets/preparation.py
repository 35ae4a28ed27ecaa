"""Preparing a TensorFlow Datasets builder, or saying clearly why not."""

import os

import tensorflow_datasets as tfds

# Files the imagenet2012 builder needs in its manual download directory.
IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


def prepare(builder, manual_dir=None):
    """Downloads and prepares a tfds dataset, or says clearly why not."""
    if builder.is_prepared():
        return
    name = builder.info.name
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    if name == "digits":
        # Generated from scikit-learn: nothing to fetch from GCS.
        download_config = tfds.download.DownloadConfig(try_download_gcs=False)
    if name == "imagenet2012":
        manual_dir = manual_dir or os.path.join(
            builder.data_dir_root, "downloads", "manual"
        )
        missing = [
            f
            for f in IMAGENET_MANUAL_FILES
            if not os.path.isfile(os.path.join(manual_dir, f))
        ]
        if missing:
            raise ValueError(
                f"imagenet2012 is not prepared in {builder.data_dir_root} and "
                f"its manual download directory {manual_dir} lacks "
                f"{' and '.join(missing)}: download them from "
                "https://image-net.org and pass their folder as manual_dir "
                f"(--manual_dir). Received: manual_dir={manual_dir!r}"
            )
        download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    try:
        builder.download_and_prepare(download_config=download_config)
    except Exception as error:  # Network, disk, or archive errors.
        reason = str(error).strip().splitlines()[0] if str(error) else ""
        raise ValueError(
            f"Cannot download and prepare {name} in {builder.data_dir_root}: "
            f"{type(error).__name__}: {reason}. Received: dataset={name!r}"
        ) from None
