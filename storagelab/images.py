"""`storagelab images build`: the images the lab needs, made on this machine, no registry.

busybox is Debian's static busybox copied into a `FROM scratch` image whose build step
installs the applet links, tagged `busybox:latest`; on a machine with a registry a user
would simply pull it. The build context is a temporary directory holding only the binary.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

BUSYBOX_BINARY = Path("/bin/busybox")
BUSYBOX_TAG = "busybox:latest"
DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
"""


class ImageBuildError(Exception):
    """An image could not be built; the message says what is missing or what Docker said."""


def _is_static(binary: Path) -> bool:
    # A dynamically linked busybox would not run in an empty image: ELF PT_INTERP says so.
    return b"/lib64/ld-linux" not in binary.read_bytes()[:4096]


def build_busybox(tag: str = BUSYBOX_TAG, binary: Path = BUSYBOX_BINARY) -> str:
    """Build and tag busybox from a static binary; returns the image id."""
    import docker
    import docker.errors
    if not binary.exists() or not _is_static(binary):
        raise ImageBuildError(f"{binary}: a static busybox is needed "
                              f"(apt-get install busybox-static)")
    with tempfile.TemporaryDirectory() as context:
        shutil.copy2(binary, Path(context) / "busybox")
        (Path(context) / "Dockerfile").write_bytes(DOCKERFILE)
        try:
            image, _ = docker.from_env(timeout=120).images.build(path=context, tag=tag, rm=True)
        except (docker.errors.BuildError, docker.errors.APIError) as e:
            raise ImageBuildError(f"building {tag}: {e}") from e
    return str(image.id)


def run(args: argparse.Namespace) -> int:
    """`storagelab images build`: build every image the lab needs (today: busybox)."""
    image_id = build_busybox()
    print(f"storagelab: built {BUSYBOX_TAG} ({image_id[:19]})")
    return 0
